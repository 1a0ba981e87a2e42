package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"erasure"
	kafkaconn "erasure/connector/kafka"
	natsconn "erasure/connector/nats"
	"erasure/pipeline"
)

// Component is one part of a server that works in the background: the API (HTTP), the
// executor, the acknowledgement listener, the sweep units worker, the sweeps, the overdue
// watcher, the canary schedule, the notifier and deliverer, and the leadership that runs the
// once-per-deployment ones in one process. Each can run in any process that opened the server,
// alone or with the others.
type Component interface {
	// Start starts the component's work and returns once it runs, or with the error that
	// keeps it from running (then nothing of it runs). The work goes on until ctx is
	// cancelled. Start is called once.
	Start(ctx context.Context) error
	// Wait returns once the work has stopped after ctx was cancelled, having finished what
	// it had in hand; at once when Start was not called or failed.
	Wait()
}

// Run starts c, waits until ctx is cancelled and c has stopped: a component's whole life,
// for a process (or a leader) that runs it until told to stop.
func Run(ctx context.Context, c Component) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	c.Wait()
	return nil
}

// group runs the goroutines of one component.
type group struct{ wg sync.WaitGroup }

func (g *group) goRun(f func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}

// Wait waits for the component's goroutines.
func (g *group) Wait() { g.wg.Wait() }

// HTTP serves the API: Listen, then Start.
type HTTP struct {
	Handler http.Handler
	Logger  *slog.Logger
	// ShutdownTimeout bounds how long requests in flight may take to finish once ctx is
	// cancelled (default 10 s).
	ShutdownTimeout time.Duration

	group
	ln net.Listener
}

// HTTP returns the API component of s.
func (s *Server) HTTP() *HTTP {
	return &HTTP{Handler: s.API.Handler(), Logger: s.Logger}
}

// Listen listens on addr (":0" picks a port); EUNAVAILABLE when it cannot.
func (h *HTTP) Listen(addr string) error {
	ln, err := Listen(addr)
	if err != nil {
		return err
	}
	h.ln = ln
	return nil
}

// Listen listens on addr for the API (":0" picks a port); EUNAVAILABLE, naming the address,
// when it cannot (the port is taken, the address is not this machine's).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "cannot listen on %s: %v", addr, err)
	}
	return ln, nil
}

// Use makes the API serve on ln, a listener the caller opened (erasure serve binds its port
// before it opens anything else).
func (h *HTTP) Use(ln net.Listener) { h.ln = ln }

// URL is the base URL of the API, "http://" and the address listened on.
func (h *HTTP) URL() string { return "http://" + h.ln.Addr().String() }

// Start serves on the listener (listening on 127.0.0.1:0 when Listen was not called) until
// ctx is cancelled, then shuts down: no new connection, requests in flight finish.
func (h *HTTP) Start(ctx context.Context) error {
	if h.ln == nil {
		if err := h.Listen("127.0.0.1:0"); err != nil {
			return err
		}
	}
	timeout := h.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	srv := &http.Server{Handler: h.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	h.goRun(func() {
		if err := srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && h.Logger != nil {
			h.Logger.Error("http server stopped", "err", err)
		}
	})
	h.goRun(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		srv.Shutdown(sctx)
	})
	return nil
}

// Executor runs the engine: it leases due tasks and carries them through their connectors.
type Executor struct {
	Engine *pipeline.Engine
	group
}

// Executor returns the executor component of s.
func (s *Server) Executor() *Executor { return &Executor{Engine: s.Engine} }

// Start runs the engine until ctx is cancelled; the tasks in hand are finished and committed.
func (e *Executor) Start(ctx context.Context) error {
	e.goRun(func() { e.Engine.Run(ctx) })
	return nil
}

// AckListener applies the acknowledgements async datasets' owners publish on NATS or Kafka,
// and removes from the NATS stream the commands that no longer wait for one.
type AckListener struct {
	NATS    *natsconn.Conn
	Kafka   *kafkaconn.Conn
	Service *pipeline.Service
	Logger  *slog.Logger
	// Prune is poked when a task was acknowledged or cancelled (Service.Ended).
	Prune chan struct{}
	// Subjects are the command subjects of the nats datasets.
	Subjects []string
	group
}

// AckListener returns the acknowledgement listener of s; its Start fails when s has neither a
// NATS nor a Kafka connection (no dataset is async).
func (s *Server) AckListener() *AckListener {
	return &AckListener{NATS: s.NATS, Kafka: s.Kafka, Service: s.Service, Logger: s.Logger, Prune: s.prune, Subjects: natsSubjects(s.Config.Datasets)}
}

// Start reads acknowledgements until ctx is cancelled: with the NATS stream's durable consumer,
// and from Kafka's ack topic with the deployment's group, each bound to its task by its
// dispatch id. Errors: EINVALID without a connection, EUNAVAILABLE when a broker does not
// answer.
func (a *AckListener) Start(ctx context.Context) error {
	if a.NATS == nil && a.Kafka == nil {
		return erasure.Errorf(erasure.EINVALID, "no NATS or Kafka connection: no dataset is async")
	}
	if a.NATS != nil {
		err := a.NATS.ListenAcks(ctx, func(ctx context.Context, dataset string, ack erasure.Ack) error {
			_, err := a.Service.Ack(ctx, dataset, ack, "nats:"+dataset)
			return err
		})
		if err != nil {
			return err
		}
	}
	if a.Kafka != nil {
		err := a.Kafka.ListenAcks(ctx, func(ctx context.Context, ack erasure.Ack) error {
			_, err := a.Service.AckByDispatch(ctx, ack, "kafka")
			return err
		})
		if err != nil {
			return err
		}
	}
	if a.NATS != nil {
		a.goRun(func() { a.pruneCommands(ctx) })
	}
	// The consumer stops by itself once ctx is cancelled (natsconn does not say when it has;
	// an acknowledgement being applied then finishes on its own, and closing the connection
	// ends the rest): Wait waits for the cancellation only.
	a.goRun(func() { <-ctx.Done() })
	return nil
}

// pruneCommands removes the commands of tasks that no longer wait for them from the stream,
// every natsconn.PruneEvery and soon after an acknowledgement or a cancellation.
func (a *AckListener) pruneCommands(ctx context.Context) {
	t := time.NewTicker(natsconn.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.Prune:
			// Let a burst of acknowledgements settle into one pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		n, err := a.NATS.PruneCommands(ctx, a.Subjects, a.Service.CommandPending)
		switch {
		case err != nil && ctx.Err() == nil && a.Logger != nil:
			a.Logger.Warn("pruning commands of ended tasks", "err", erasure.ErrorMessage(err))
		case n > 0 && a.Logger != nil:
			a.Logger.Debug("commands of ended tasks removed from the stream", "commands", n)
		}
	}
}

// Sweeps runs the sweeps of offline datasets on their schedule, and resumes the sweeps no
// process holds (a previous run stopped during them, or the process running them died): at
// start and then every ResumeEvery. It is work for one process of a deployment (the leader).
// The sweeps it starts or resumes belong to the Sweeper's process, which Server.Start gives
// its lifetime (Sweeper.Start).
type Sweeps struct {
	Sweeper *pipeline.Sweeper
	Logger  *slog.Logger
	// ResumeEvery is how often sweeps left by dead processes are looked for (default: the
	// Sweeper's lease, the time after which such a sweep can be taken over).
	ResumeEvery time.Duration
	group
}

// Sweeps returns the sweeps component of s.
func (s *Server) Sweeps() *Sweeps { return &Sweeps{Sweeper: s.Sweeper, Logger: s.Logger} }

// Start resumes the sweeps no process holds and runs the schedule, when some dataset is
// offline, until ctx is cancelled. A failure to resume is logged, not returned: those sweeps
// are tried again at the next look.
func (sw *Sweeps) Start(ctx context.Context) error {
	offline := false
	for _, d := range sw.Sweeper.Datasets {
		offline = offline || d.Method == erasure.MethodOffline
	}
	if !offline {
		return nil
	}
	log := sw.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := sw.ResumeEvery
	if every <= 0 {
		every = sw.Sweeper.Lease
	}
	if every <= 0 {
		every = pipeline.DefaultSweepLease
	}
	resume := func() {
		if n, err := sw.Sweeper.Resume(ctx); err != nil && ctx.Err() == nil {
			log.Error("sweeps left by other runs not resumed; trying again later", "err", err)
		} else if n > 0 {
			log.Info("resumed sweeps left by other runs", "sweeps", n)
		}
	}
	resume()
	sw.goRun(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				resume()
			}
		}
	})
	sw.goRun(func() { sw.Sweeper.Schedule(ctx) })
	return nil
}

// SweepUnits prepares units of the sweeps shared by the processes of a deployment (a
// pipeline.SweepWorker): every process on a shared store runs one.
type SweepUnits struct {
	Worker *pipeline.SweepWorker
	group
}

// SweepUnits returns the sweep units component of s.
func (s *Server) SweepUnits() *SweepUnits { return &SweepUnits{Worker: s.SweepWorker} }

// Start works units until ctx is cancelled; units in hand are then given back.
func (u *SweepUnits) Start(ctx context.Context) error {
	u.goRun(func() { u.Worker.Run(ctx) })
	return nil
}

// OverdueWatcher counts the requests past their deadline, for the logs and the metrics.
type OverdueWatcher struct {
	Service *pipeline.Service
	Every   time.Duration
	group
}

// OverdueWatcher returns the overdue watcher of s, counting every interval.
func (s *Server) OverdueWatcher(every time.Duration) *OverdueWatcher {
	return &OverdueWatcher{Service: s.Service, Every: every}
}

// Start counts now and every interval until ctx is cancelled.
func (o *OverdueWatcher) Start(ctx context.Context) error {
	o.goRun(func() { o.Service.WatchOverdue(ctx, o.Every) })
	return nil
}

// CanarySchedule runs the datasets' canaries on their schedule (see pipeline.Canaries): one
// process should run it (a leader), since the schedule reads the store's last results and two
// schedulers would both find a canary due. Canaries run on demand through the API in any
// process.
type CanarySchedule struct {
	Canaries *pipeline.Canaries
	group
}

// CanarySchedule returns the canary schedule of s.
func (s *Server) CanarySchedule() *CanarySchedule { return &CanarySchedule{Canaries: s.Canaries} }

// Start runs the schedule until ctx is cancelled, when some dataset declares a canary (and
// does nothing otherwise). Canaries running when ctx is cancelled stop, unrecorded.
func (c *CanarySchedule) Start(ctx context.Context) error {
	if !c.Canaries.Any() {
		return nil
	}
	c.goRun(func() { c.Canaries.Schedule(ctx) })
	return nil
}
