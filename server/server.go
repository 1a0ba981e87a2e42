// Package server assembles a running erasure server from a registry.Config: the store and the
// record store, the pipeline (executor, service, sweeper), the HTTP API with its metrics and,
// when a connector wants it, NATS.
//
// Open opens and wires everything and runs nothing. What runs in the background is split into
// components that start and stop on their own (see Component): the API, the executor, the
// acknowledgement listener, the sweep units worker, the deliverer of notifications, and the work
// done once per deployment (LeaderParts: sweep schedule and resume, overdue watcher, canary
// schedule, grace windows, retention, notifier, checkpoints), which runs under a Leadership: in
// one elected process of those sharing a store. Server.Start runs the API and the rest in this
// process, as `erasure serve` does; Server.StartWorker runs all but the API, as `erasure worker`
// does:
//
//	s, err := server.Open(ctx, cfg, logger)
//	...
//	defer s.Close()
//	err = s.Start(ctx, cfg.Server.Addr) // returns once serving; s.URL() is the API
//
// The store is the one cfg.Store names (package store; this package offers sqlite and
// postgres). SQLite is owned by one process: Open locks the data dir, Start takes over every
// lease of the processes before it, and the process is always the leader. PostgreSQL is shared
// by any number of processes: nothing is taken over at start but what expired, and a leader is
// elected through the store (sqlstore.LeaderLock).
//
// Connectors are built by the registry before Open: the binary imports the connector packages
// it offers, which register themselves.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/connector/files"
	kafkaconn "erasure/connector/kafka"
	natsconn "erasure/connector/nats"
	recordsconn "erasure/connector/records"
	"erasure/drp"
	"erasure/pipeline"
	"erasure/registry"
	"erasure/store"
	"erasure/store/sqlrecords"
	"erasure/store/sqlstore"
	"erasure/web"
)

// OverdueEvery is how often the overdue watcher counts the requests past their deadline.
const OverdueEvery = time.Minute

// Server is one erasure server: what Open opened and wired. Its fields are for the components
// and for tests; they are set by Open and not changed after.
type Server struct {
	Config *registry.Config
	Logger *slog.Logger

	Store *sqlstore.DB
	// Shared reports whether the store is shared by several processes (PostgreSQL).
	Shared  bool
	Records *sqlrecords.Store
	// NATS is the connection of the async datasets; nil when no connector wants one.
	NATS *natsconn.Conn
	// Kafka is the connection of the kafka datasets; nil when none is registered.
	Kafka *kafkaconn.Conn
	// Deployment is the deployment id the store generated once (see erasure.DispatchID).
	Deployment string
	// Owner names this process in the leases it takes (host:pid).
	Owner       string
	Engine      *pipeline.Engine
	Service     *pipeline.Service
	Sweeper     *pipeline.Sweeper
	SweepWorker *pipeline.SweepWorker
	// Policies runs legal holds, grace windows, the suppression list, retention and replay.
	Policies *pipeline.Policies
	// Canaries runs the datasets' canaries (its schedule is the CanarySchedule component).
	Canaries *pipeline.Canaries
	API      *api.Server
	Metrics  *prometheus.Registry
	// DRP speaks the Data Rights Protocol on the API's listener; nil without a drp section.
	// DRP.Subscriber() is the status callbacks' outbox subscriber.
	DRP *drp.Server
	// Certifier signs erasure certificates; UI is the dashboard mounted at /ui/ (ui.go).
	Certifier *pipeline.Certifier
	UI        *web.Handler
	// Health is the executor's view of each dataset's recent attempts.
	Health *pipeline.Health
	// Notifications turns the audit trail into outbox messages for the subscribers, and
	// Deliveries sends them (see Subscribe).
	Notifications *pipeline.Notifier
	Deliveries    *pipeline.Deliverer

	// prune is poked when a command may have stopped waiting (AckListener).
	prune chan struct{}

	// What Start started, for Close.
	mu         sync.Mutex
	http       *HTTP
	running    []Component
	leadership *Leadership
	cancel     context.CancelFunc
	closed     bool
	dirLock    *os.File
}

// Open opens the store cfg.Store names (SQLite in cfg.Server.DataDir, created mode 0700 and
// locked for this process; or a shared PostgreSQL) and the record store beside it, connects
// NATS when a connector wants it (an embedded server unless cfg.NATS.URL is set) with the
// stream its datasets publish on, provides both to the connectors that asked (cfg.Resources),
// and wires the pipeline and the API. Nothing runs until Start, or the components are started.
// Errors: EINVALID for a store driver this build lacks, a bad audit key, or a shared store
// without what every process must share (audit.key, audit.signing_key, an external NATS);
// ECONFLICT when another process owns the SQLite data dir; EUNAVAILABLE when the store or NATS
// cannot be reached. What is opened before a failure is closed.
func Open(ctx context.Context, cfg *registry.Config, log *slog.Logger) (_ *Server, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Config: cfg, Logger: log, Owner: owner(), prune: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	driver, err := store.Lookup(cfg.Store.Driver)
	if err != nil {
		return nil, err
	}
	s.Shared = driver.Shared
	if s.Shared {
		if cfg.Audit.Key == "" {
			return nil, erasure.Errorf(erasure.EINVALID, "audit.key is required with a shared store: every process must seal the audit trail with the same key (audit: { key: \"${ERASURE_AUDIT_KEY}\" })")
		}
		if cfg.Audit.SigningKey == "" {
			return nil, erasure.Errorf(erasure.EINVALID, "audit.signing_key is required with a shared store: every process must sign certificates and checkpoints with the same key (audit: { signing_key: \"${ERASURE_SIGNING_KEY}\" })")
		}
		if cfg.NATS.URL == "" && natsconn.SharedConn.Wanted(cfg.Resources) {
			return nil, erasure.Errorf(erasure.EINVALID, "nats.url is required with a shared store: the processes must share one NATS (an embedded server is one process's own)")
		}
	} else {
		if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if s.dirLock, err = lockDataDir(cfg.Server.DataDir); err != nil {
			return nil, err
		}
	}
	key, err := audit.LoadKey(cfg.Audit.Key, cfg.Server.DataDir)
	if err != nil {
		return nil, err
	}
	hasher, err := audit.NewHasher(key)
	if err != nil {
		return nil, err
	}
	registry.IndexKey.Provide(cfg.Resources, audit.IndexKey(key))
	pol, err := openPolicies(cfg, key)
	if err != nil {
		return nil, err
	}
	s.Store, _, err = store.Open(ctx, store.Config{Driver: cfg.Store.Driver, DSN: cfg.Store.DSN, DataDir: cfg.Server.DataDir,
		Hasher: hasher, Chain: hasher.Chain(), Completion: pol.completion, Suppression: pol.suppression, Escrow: pol.escrow, Logger: log})
	if err != nil {
		return nil, err
	}
	if r := s.Store.RestoredTriggers(); len(r) > 0 {
		log.Error("the append-only triggers of the audit trail were missing, disabled or changed, and are restored: someone changed the database; verify the trail against a checkpoint kept elsewhere (erasure audit verify --checkpoint FILE)", "triggers", r)
	}
	signingKey, err := audit.LoadSigningKey(cfg.Audit.SigningKey, cfg.Server.DataDir)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "audit signing key: %v", err)
	}
	s.Records, err = sqlrecords.Open(ctx, s.Store.SQL(), sqlrecords.Options{
		AppendAudit: s.Store.AppendAudit, ReadDB: s.Store.ReadSQL(), Dialect: s.Store.Dialect(), Hasher: hasher,
		MaxArchiveShare: cfg.Records.MaxArchiveShare, MaxReconcileShare: cfg.Records.MaxReconcileShare,
		Logger: log, // the record store logs in its group, records
	})
	if err != nil {
		return nil, err
	}
	recordsconn.SharedStore.Provide(cfg.Resources, s.Records)
	if s.Deployment, err = s.Store.Deployment(ctx); err != nil {
		return nil, err
	}
	if err := s.connectNATS(ctx); err != nil {
		return nil, err
	}
	if err := s.connectKafka(ctx); err != nil {
		return nil, err
	}

	s.Metrics = prometheus.NewRegistry()
	s.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := pipeline.NewMetrics(s.Metrics)
	byName := map[string]*erasure.Dataset{}
	for _, d := range cfg.Datasets {
		byName[d.Name] = d
	}
	s.Health = pipeline.NewHealth(log.WithGroup("executor"))
	lease := cfg.Server.Lease
	s.Engine = &pipeline.Engine{Store: s.Store, Datasets: byName, Owner: s.Owner, Workers: cfg.Server.Workers, LeaseMargin: lease,
		Hasher: hasher, Logger: log, Metrics: m, Health: s.Health}
	s.Service = &pipeline.Service{Store: s.Store, Hasher: hasher, Chain: hasher.Chain(), Signer: audit.NewSigner(signingKey, s.Deployment), Registered: cfg.Datasets,
		Identifiers: cfg.Identifiers, IdentifierTypes: cfg.IdentifierTypes,
		DefaultDeadline: cfg.Defaults.Deadline, DefaultGrace: cfg.Defaults.Grace, MaxDeadline: cfg.MaxDeadline,
		Engine: s.Engine, Logger: log.WithGroup("service"), Metrics: m, Health: s.Health,
		Ended: func() {
			select {
			case s.prune <- struct{}{}:
			default:
			}
		}}
	s.Policies = &pipeline.Policies{Store: s.Store, Datasets: cfg.Datasets, Identifiers: cfg.Identifiers, IdentifierTypes: cfg.IdentifierTypes,
		Hasher: hasher, Suppression: pol.suppression, DefaultDeadline: cfg.Defaults.Deadline, Engine: s.Engine, Logger: log.WithGroup("policies")}
	s.openNotifications(log, m)
	s.Sweeper = &pipeline.Sweeper{Store: s.Store, Datasets: byName, Owner: s.Owner, Lease: lease, Logger: log, Export: files.WriteExport, Metrics: m}
	s.SweepWorker = &pipeline.SweepWorker{Store: s.Store, Datasets: byName, Owner: s.Owner, Lease: lease, Logger: log}
	s.API = api.New(api.Config{Service: s.Service, Tokens: apiTokens(cfg.Auth.Tokens), MaxBodyBytes: cfg.Server.MaxBodyBytes, Logger: log, Metrics: s.Metrics})
	s.API.Mount("/v1/records/", api.RecordsHandler(s.Records, s.API.Authorize, api.WithMaxBodyBytes(cfg.Server.MaxBodyBytes)))
	for pattern, h := range api.SweepRoutes(s.API, &pipeline.SweepService{Sweeper: s.Sweeper}) {
		s.API.Mount(pattern, h)
	}
	s.Canaries = &pipeline.Canaries{Store: s.Store, Datasets: cfg.Datasets, Hasher: hasher, Engine: s.Engine, Sweeper: s.Sweeper,
		Logger: log, Metrics: m}
	for pattern, h := range api.CanaryRoutes(s.API, s.Canaries) {
		s.API.Mount(pattern, h)
	}
	if cfg.DRP != nil {
		if s.DRP, err = openDRP(cfg, s, hasher, log); err != nil {
			return nil, err
		}
		for pattern, h := range s.DRP.Routes() {
			s.API.Mount(pattern, h)
		}
		// Status callbacks leave through the outbox, like webhooks.
		s.Subscribe(s.DRP.Subscriber())
	}
	if err := s.mountUI(key); err != nil {
		return nil, err
	}
	for pattern, h := range api.PolicyRoutes(s.API, s.Policies) {
		s.API.Mount(pattern, h)
	}
	for pattern, h := range api.OutboxRoutes(s.API, &pipeline.OutboxService{Store: s.Store, Deliverer: s.Deliveries}) {
		s.API.Mount(pattern, h)
	}
	for pattern, h := range api.ResolveRoutes(s.API, s.Service) {
		s.API.Mount(pattern, h)
	}
	for pattern, h := range api.AuditRoutes(s.API, s.Service) {
		s.API.Mount(pattern, h)
	}
	return s, nil
}

// openDRP builds the Data Rights Protocol's server from the drp section.
func openDRP(cfg *registry.Config, s *Server, hasher erasure.Hasher, log *slog.Logger) (*drp.Server, error) {
	d := cfg.DRP
	agents := make([]drp.Agent, len(d.Agents))
	for i, a := range d.Agents {
		agents[i] = drp.Agent{ID: a.ID, VerifyKey: a.VerifyKey, Claims: a.Identifiers, Unverified: a.Unverified}
	}
	return drp.New(drp.Config{
		BusinessID: d.BusinessID, Agents: agents, Deadline: d.Deadline, ClockSkew: d.ClockSkew,
		MaxMessageLifetime: d.MaxMessageLifetime, AllowHTTPCallbacks: d.AllowHTTPCallbacks,
		Service: s.Service, Store: s.Store, Hasher: hasher, IdentifierTypes: cfg.IdentifierTypes,
		NewID: pipeline.NewRequestID, MaxBodyBytes: min(s.API.MaxBodyBytes(), drp.DefaultMaxBodyBytes), Logger: log,
	})
}

// owner names this process in leases: host:pid.
func owner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// apiTokens converts the configuration's tokens into the API's.
func apiTokens(ts []registry.Token) []api.Token {
	out := make([]api.Token, len(ts))
	for i, t := range ts {
		out[i] = api.Token{Name: t.Name, Secret: t.Secret, Roles: t.Roles}
	}
	return out
}

// connectNATS connects NATS when a connector asked for it, provides it, and makes sure the
// stream captures every command subject.
func (s *Server) connectNATS(ctx context.Context) error {
	if !natsconn.SharedConn.Wanted(s.Config.Resources) {
		return nil
	}
	var err error
	s.NATS, err = natsconn.Connect(s.Config.NATS, s.Config.Server.DataDir, s.Logger, natsconn.WithDeployment(s.Deployment), natsconn.WithAckParallel(natsconn.AckParallel)) // it logs in group nats
	if err != nil {
		return err
	}
	natsconn.SharedConn.Provide(s.Config.Resources, s.NATS)
	if err := s.NATS.EnsureStream(ctx, natsSubjects(s.Config.Datasets)); err != nil {
		return err
	}
	s.Logger.Info("nats ready", "url", s.NATS.ClientURL(), "stream", s.NATS.Stream())
	return nil
}

// connectKafka connects to the configured Kafka cluster when a dataset uses it, binds the kafka
// datasets and creates their topics.
func (s *Server) connectKafka(ctx context.Context) error {
	wanted := false
	for _, d := range s.Config.Datasets {
		if _, ok := d.Conn.(*kafkaconn.Connector); ok {
			wanted = true
		}
	}
	if !wanted {
		return nil
	}
	var err error
	s.Kafka, err = kafkaconn.Connect(s.Config.Kafka, s.Logger, kafkaconn.WithDeployment(s.Deployment))
	if err != nil {
		return err
	}
	if err := s.Kafka.EnsureTopics(ctx, kafkaconn.Bind(s.Config.Datasets, s.Kafka)); err != nil {
		return err
	}
	s.Logger.Info("kafka ready", "ack_topic", s.Kafka.AckTopic(), "group", s.Kafka.AckGroup())
	return nil
}

// natsSubjects returns the command subjects of the nats connectors among ds, once each, for
// the stream to capture.
func natsSubjects(ds []*erasure.Dataset) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range ds {
		if c, ok := d.Conn.(*natsconn.Connector); ok && !seen[c.Subject()] {
			seen[c.Subject()] = true
			out = append(out, c.Subject())
		}
	}
	return out
}

// TakeOverLeases releases every lease of the store: tasks, sweeps, sweep units and outbox
// messages. On SQLite, which one process owns, this server owns what the servers before it were
// running (and the notifications they were delivering) when they stopped; Start calls it there.
// A process sharing a store with others must not: it would take their work from under them
// (Start does not, on a shared store).
func (s *Server) TakeOverLeases(ctx context.Context) error {
	n, err := s.Store.ReleaseLeases(ctx)
	if err != nil {
		return err
	}
	sweeps, err := s.Store.ReleaseSweepLeases(ctx)
	if err != nil {
		return err
	}
	if n+sweeps > 0 {
		s.Logger.Info("took over the work of a previous run", "tasks", n, "sweeps", sweeps)
	}
	if n, err = s.Store.ReleaseOutboxLeases(ctx); err != nil {
		return err
	} else if n > 0 {
		s.Logger.Info("took over notifications a previous run was delivering", "notifications", n)
	}
	return nil
}

// Start runs this process's share of the server: the API listening on addr (":0" or
// "127.0.0.1:0" picks a port), the executor, the acknowledgement listener when NATS or Kafka
// is connected, the sweep units worker on a shared store, the deliverer, and the leadership,
// which runs the LeaderParts while this process leads (always, on SQLite, after taking over
// the leases of previous runs). It returns once they run; they stop with ctx or Close. On an
// error, what it started is stopped.
func (s *Server) Start(ctx context.Context, addr string) error {
	ln, err := Listen(addr)
	if err != nil {
		return err
	}
	return s.StartOn(ctx, ln)
}

// StartOn is Start with the API serving on ln, a listener the caller opened before Open (so
// that a port already taken is found before anything else is touched). ln is closed on an
// error.
func (s *Server) StartOn(ctx context.Context, ln net.Listener) error {
	return s.start(ctx, ln)
}

// StartWorker is Start without the API: what `erasure worker` runs. EINVALID on a store that
// is not shared (on SQLite, `erasure serve` is the one process).
func (s *Server) StartWorker(ctx context.Context) error {
	if !s.Shared {
		return erasure.Errorf(erasure.EINVALID, "a worker needs a shared store (store.dsn, PostgreSQL): on SQLite one `erasure serve` runs everything")
	}
	return s.start(ctx, nil)
}

// start runs the components of this process, the API on ln when ln is not nil.
func (s *Server) start(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	if !s.Shared {
		if err := s.TakeOverLeases(ctx); err != nil {
			if ln != nil {
				ln.Close()
			}
			return err
		}
	}
	// Sweeps started here (through the API, or resumed as the leader) live as long as the
	// process: a sweep is held by its process, not by its leader's term.
	s.Sweeper.Start(ctx)
	var parts []Component
	if ln != nil {
		h := s.HTTP()
		h.Use(ln)
		s.mu.Lock()
		s.http = h
		s.mu.Unlock()
		parts = append(parts, h)
	}
	parts = append(parts, s.Executor())
	if s.NATS != nil || s.Kafka != nil {
		parts = append(parts, s.AckListener())
	}
	if s.Shared {
		parts = append(parts, s.SweepUnits())
	}
	parts = append(parts, s.Deliverer())
	l := s.Leadership()
	s.mu.Lock()
	s.leadership = l
	s.mu.Unlock()
	parts = append(parts, l)
	for _, c := range parts {
		if err := c.Start(ctx); err != nil {
			s.stop()
			return err
		}
		s.mu.Lock()
		s.running = append(s.running, c)
		s.mu.Unlock()
	}
	return nil
}

// Leading reports whether this process leads now (false before Start).
func (s *Server) Leading() bool {
	s.mu.Lock()
	l := s.leadership
	s.mu.Unlock()
	return l != nil && l.Leading()
}

// URL is the base URL of the API that Start serves; "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http == nil {
		return ""
	}
	return s.http.URL()
}

// stop cancels what Start started and waits until it has stopped.
func (s *Server) stop() {
	s.mu.Lock()
	cancel, running := s.cancel, s.running
	s.cancel, s.running = nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, c := range running {
		c.Wait()
	}
	if s.Sweeper != nil {
		s.Sweeper.Wait()
	}
}

// Close stops what Start started, then closes NATS, the datasets' connectors and the store.
// Components started by the caller must be stopped before. It returns the errors of closing;
// closing again does nothing.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return nil
	}
	var errs []error
	if s.Kafka != nil {
		s.Kafka.Close()
	}
	if s.NATS != nil {
		errs = append(errs, s.NATS.Close())
	}
	if s.Config != nil {
		for _, d := range s.Config.Datasets {
			if d.Conn != nil {
				errs = append(errs, d.Conn.Close())
			}
		}
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	if s.dirLock != nil {
		errs = append(errs, unlockDataDir(s.dirLock))
	}
	return errors.Join(errs...)
}
