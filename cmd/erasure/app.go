package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"erasure"
	"erasure/api"
	"erasure/audit"
	kafkaconn "erasure/connector/kafka"
	natsconn "erasure/connector/nats"
	"erasure/pipeline"
	"erasure/records"
	"erasure/registry"
	"erasure/store/sqlite"
)

// app is one running erasure server: store, pipeline, API and, when async datasets exist,
// NATS. serve and demo run it; end-to-end tests run the binary.
type app struct {
	cfg     *registry.Config
	log     *slog.Logger
	store   *sqlite.DB
	records *records.Store
	nats    *natsconn.Conn
	kafka   *kafkaconn.Conn
	engine  *pipeline.Engine
	svc     *pipeline.Service
	api     *api.Server
	metrics *prometheus.Registry
	srv     *http.Server
	ln      net.Listener

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// openApp opens the store and wires the pipeline and the API for cfg. Nothing runs yet.
func openApp(ctx context.Context, cfg *registry.Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if cfg.Store.Driver != "" && cfg.Store.Driver != "sqlite" {
		return nil, erasure.Errorf(erasure.EINVALID, "store driver %q is not available in this build (sqlite only)", cfg.Store.Driver)
	}
	if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	key, err := audit.LoadKey(cfg.Audit.Key, cfg.Server.DataDir)
	if err != nil {
		return nil, err
	}
	hasher, err := audit.NewHasher(key)
	if err != nil {
		return nil, err
	}
	a.store, err = sqlite.Open(ctx, filepath.Join(cfg.Server.DataDir, "erasure.db"), sqlite.Options{Hasher: hasher})
	if err != nil {
		return nil, err
	}
	a.records, err = records.Open(ctx, a.store.SQL(), records.Options{
		AppendAudit: a.store.AppendAudit, ReadDB: a.store.ReadSQL(),
		MaxArchiveShare: cfg.Records.MaxArchiveShare, MaxReconcileShare: cfg.Records.MaxReconcileShare,
		Logger: log.WithGroup("records"),
	})
	if err != nil {
		return nil, err
	}
	bindRecords(cfg.Datasets, a.records)

	a.metrics = prometheus.NewRegistry()
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := pipeline.NewMetrics(a.metrics)
	byName := map[string]*erasure.Dataset{}
	for _, d := range cfg.Datasets {
		byName[d.Name] = d
	}
	a.engine = &pipeline.Engine{Store: a.store, Datasets: byName, Workers: cfg.Server.Workers, Hasher: hasher, Logger: log, Metrics: m}
	a.svc = &pipeline.Service{Store: a.store, Hasher: hasher, Registered: cfg.Datasets, Identifiers: cfg.Identifiers, DefaultDeadline: cfg.Defaults.Deadline,
		Engine: a.engine, Logger: log.WithGroup("service"), Metrics: m}
	a.api = api.New(api.Config{Service: a.svc, Tokens: cfg.Auth.Tokens, MaxBodyBytes: cfg.Server.MaxBodyBytes, Logger: log, Metrics: a.metrics})
	a.api.Mount("/v1/records/", records.Handler(a.records, a.api.Authorize))
	return a, nil
}

// hasAsync reports whether any dataset is erased through NATS.
func hasAsync(ds []*erasure.Dataset) bool {
	for _, d := range ds {
		if _, ok := d.Conn.(*natsconn.Connector); ok {
			return true
		}
	}
	return false
}

// start listens on addr (":0" picks a port), connects NATS when needed, and runs the
// executor, the acknowledgement listener and the overdue watcher in the background.
func (a *app) start(ctx context.Context, addr string) error {
	ctx, a.cancel = context.WithCancel(ctx)
	// SQLite is single-node: this server owns every lease of the servers before it.
	if n, err := a.store.ReleaseLeases(ctx); err != nil {
		return err
	} else if n > 0 {
		a.log.Info("took over running tasks of a previous run", "tasks", n)
	}
	if hasAsync(a.cfg.Datasets) {
		deployment, err := a.store.Deployment(ctx)
		if err != nil {
			return err
		}
		a.nats, err = natsconn.Connect(a.cfg.NATS, a.cfg.Server.DataDir, a.log.WithGroup("nats"), natsconn.WithDeployment(deployment))
		if err != nil {
			return err
		}
		subjects := natsconn.Bind(a.cfg.Datasets, a.nats)
		if err := a.nats.EnsureStream(ctx, subjects); err != nil {
			return err
		}
		if err := a.nats.ListenAcks(ctx, func(ctx context.Context, dataset string, ack erasure.Ack) error {
			_, err := a.svc.Ack(ctx, dataset, ack, "nats:"+dataset)
			return err
		}); err != nil {
			return err
		}
		a.log.Info("nats ready", "url", a.nats.ClientURL(), "stream", a.nats.Stream())
	}
	if err := a.startKafka(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "listen on %s: %v", addr, err)
	}
	a.ln = ln
	a.srv = &http.Server{Handler: a.api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	a.wg.Add(3)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	go func() { defer a.wg.Done(); a.engine.Run(ctx) }()
	go func() { defer a.wg.Done(); a.svc.WatchOverdue(ctx, time.Minute) }()
	a.startSweeps(ctx)
	return nil
}

// URL is the base URL of the API.
func (a *app) URL() string { return "http://" + a.ln.Addr().String() }

// close stops everything and closes the store.
func (a *app) close() {
	if a.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a.srv.Shutdown(sctx)
		cancel()
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.nats != nil {
		a.nats.Close()
	}
	if a.kafka != nil {
		a.kafka.Close()
	}
	for _, d := range a.cfg.Datasets {
		if d.Conn != nil {
			d.Conn.Close()
		}
	}
	if a.store != nil {
		a.store.Close()
	}
}

// newLogger returns the process logger: text on stderr, or JSON with ERASURE_LOG=json.
func newLogger(w *os.File, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("ERASURE_LOG") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// randomToken returns a random secret for in-process clients.
func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}
