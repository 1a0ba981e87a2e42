// Package server assembles a running erasure server from a registry.Config: the store and the
// record store, the pipeline (executor, service, sweeper), the HTTP API with its metrics and,
// when a connector wants it, NATS.
//
// Open opens and wires everything and runs nothing. What runs in the background is split into
// components that start and stop on their own (see Component): the API, the executor, the
// acknowledgement listener, the sweeps (resume and schedule), the overdue watcher and the canary
// schedule, so that a deployment can run some in every worker process and others in one elected
// leader.
// Server.Start runs them all in this process, as `erasure serve` does:
//
//	s, err := server.Open(ctx, cfg, logger)
//	...
//	defer s.Close()
//	err = s.Start(ctx, cfg.Server.Addr) // returns once serving; s.URL() is the API
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
	"path/filepath"
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
	"erasure/store/sqlite"
	"erasure/store/sqlrecords"
	"erasure/web"
)

// OverdueEvery is how often the overdue watcher counts the requests past their deadline.
const OverdueEvery = time.Minute

// Server is one erasure server: what Open opened and wired. Its fields are for the components
// and for tests; they are set by Open and not changed after.
type Server struct {
	Config *registry.Config
	Logger *slog.Logger

	Store   *sqlite.DB
	Records *sqlrecords.Store
	// NATS is the connection of the async datasets; nil when no connector wants one.
	NATS *natsconn.Conn
	// Kafka is the connection of the kafka datasets; nil when none is registered.
	Kafka *kafkaconn.Conn
	// Deployment is the deployment id the store generated once (see erasure.DispatchID).
	Deployment string
	Engine     *pipeline.Engine
	Service    *pipeline.Service
	Sweeper    *pipeline.Sweeper
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

	// What Start started, for Close.
	// prune is poked when a command may have stopped waiting (AckListener).
	prune chan struct{}

	mu      sync.Mutex
	http    *HTTP
	running []Component
	cancel  context.CancelFunc
	closed  bool
}

// Open opens the store in cfg.Server.DataDir (created, mode 0700) and the record store, connects
// NATS when a connector wants it (an embedded server unless cfg.NATS.URL is set) with the
// stream its datasets publish on, provides both to the connectors that asked (cfg.Resources),
// and wires the pipeline and the API. Nothing runs until Start, or the components are started.
// Errors: EINVALID for a store driver other than sqlite or a bad audit key, EUNAVAILABLE when
// NATS cannot be reached; what is opened before a failure is closed.
func Open(ctx context.Context, cfg *registry.Config, log *slog.Logger) (_ *Server, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Config: cfg, Logger: log, prune: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			s.Close()
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
	pol, err := openPolicies(cfg, key)
	if err != nil {
		return nil, err
	}
	s.Store, err = sqlite.Open(ctx, filepath.Join(cfg.Server.DataDir, "erasure.db"), sqlite.Options{Hasher: hasher, Chain: hasher.Chain(),
		Completion: pol.completion, Suppression: pol.suppression, Escrow: pol.escrow})
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
		AppendAudit: s.Store.AppendAudit, ReadDB: s.Store.ReadSQL(), Hasher: hasher,
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
	s.Engine = &pipeline.Engine{Store: s.Store, Datasets: byName, Workers: cfg.Server.Workers, Hasher: hasher, Logger: log, Metrics: m, Health: s.Health}
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
	s.Sweeper = &pipeline.Sweeper{Store: s.Store, Datasets: byName, Logger: log, Export: files.WriteExport, Metrics: m}
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

// TakeOverLeases releases every lease of the store, of tasks and of outbox messages: SQLite is
// single-node, so this server owns the tasks that servers before it were running, and the
// notifications they were delivering, when they stopped. Start calls it; a
// deployment of several workers on a shared store must not.
func (s *Server) TakeOverLeases(ctx context.Context) error {
	n, err := s.Store.ReleaseLeases(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		s.Logger.Info("took over running tasks of a previous run", "tasks", n)
	}
	if n, err = s.Store.ReleaseOutboxLeases(ctx); err != nil {
		return err
	} else if n > 0 {
		s.Logger.Info("took over notifications a previous run was delivering", "notifications", n)
	}
	return nil
}

// Start takes over the leases of previous runs and starts every component in this process:
// the API listening on addr (":0" or "127.0.0.1:0" picks a port), the executor, the
// acknowledgement listener when NATS is connected, the sweeps, the overdue watcher, the
// notifier and the deliverer. It
// returns once they run; they stop with ctx or Close. On an error, what it started is stopped.
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
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	if err := s.TakeOverLeases(ctx); err != nil {
		ln.Close()
		return err
	}
	h := s.HTTP()
	h.Use(ln)
	s.mu.Lock()
	s.http = h
	s.mu.Unlock()
	parts := []Component{h, s.Executor()}
	if s.NATS != nil || s.Kafka != nil {
		parts = append(parts, s.AckListener())
	}
	parts = append(parts, s.Sweeps(), s.OverdueWatcher(OverdueEvery), s.CanarySchedule(), s.GraceWindows(GraceEvery), s.Retention(RetentionEvery),
		s.Notifier(), s.Deliverer(), s.Checkpointer())
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
	return errors.Join(errs...)
}
