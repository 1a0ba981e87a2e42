package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/registry"
)

// Defaults of the `nats` configuration section.
const (
	// DefaultPort is where the embedded server listens. It is not NATS's usual 4222 so that an
	// embedded server never collides with a NATS already running on the machine.
	DefaultPort = 4233
	// DefaultStream is the JetStream stream holding commands and acknowledgements.
	DefaultStream = "ERASURE"
	// DefaultAckPrefix is the subject prefix of acknowledgements: a dataset's acks go to
	// DefaultAckPrefix + "." + dataset.
	DefaultAckPrefix = "erasure.ack"
	// DefaultAckConsumer is the durable consumer the server reads acknowledgements with.
	DefaultAckConsumer = "erasure-acks"
	// DefaultMaxAge is how long the stream keeps a message: longer than the default 30-day
	// deadline. A command lost to age is published again by the ack timeout anyway.
	DefaultMaxAge = 35 * 24 * time.Hour
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id.
	DuplicateWindow = 10 * time.Minute
)

// Conn is erasure's connection to NATS JetStream: an embedded server it started, or an
// external server or cluster. Connectors bound to it (Bind) publish through it, and it reads
// acknowledgements (ListenAcks). It is safe for concurrent use.
type Conn struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	srv       *server.Server // nil when external
	stream    string
	ackPrefix string
	ackName   string
	maxAge    time.Duration
	replicas  int
	log       *slog.Logger

	closed chan struct{} // closed when nc is closed

	mu        sync.Mutex
	listeners []jetstream.ConsumeContext
}

// Option changes how Connect sets up a Conn.
type Option func(*Conn)

// WithAckPrefix sets the subject prefix of acknowledgements (default "erasure.ack"). Tests use
// a random one so that they can share a NATS server.
func WithAckPrefix(prefix string) Option { return func(c *Conn) { c.ackPrefix = prefix } }

// WithAckConsumer sets the name of the durable consumer reading acknowledgements.
func WithAckConsumer(name string) Option { return func(c *Conn) { c.ackName = name } }

// WithMaxAge sets how long the stream keeps messages (default DefaultMaxAge; 0 keeps them
// until removed by hand). It applies when the stream is created.
func WithMaxAge(d time.Duration) Option { return func(c *Conn) { c.maxAge = d } }

// WithReplicas sets the stream's replica count on a cluster (default 1).
func WithReplicas(n int) Option { return func(c *Conn) { c.replicas = n } }

// Connect opens erasure's NATS connection. With cfg.URL empty it starts an embedded NATS server
// with JetStream, storing under dataDir/nats and listening on 127.0.0.1:cfg.Port (0 means
// DefaultPort, -1 a random free port); otherwise it connects to cfg.URL with cfg.Credentials
// (a .creds file) and cfg.TLS. It performs no JetStream call: EnsureStream does.
//
// Errors are *erasure.Error: EINVALID for a bad configuration (unreadable credentials or TLS
// files, a bad stream name), EUNAVAILABLE when the server cannot be started or reached.
func Connect(cfg registry.NATS, dataDir string, log *slog.Logger, opts ...Option) (*Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Conn{
		stream:    cfg.Stream,
		ackPrefix: DefaultAckPrefix,
		ackName:   DefaultAckConsumer,
		maxAge:    DefaultMaxAge,
		replicas:  1,
		log:       log.WithGroup("nats"),
		closed:    make(chan struct{}),
	}
	if c.stream == "" {
		c.stream = DefaultStream
	}
	for _, o := range opts {
		o(c)
	}
	if !validName(c.stream) {
		return nil, erasure.Errorf(erasure.EINVALID, "nats.stream %q is not a valid stream name (letters, digits, - and _)", c.stream)
	}
	if !validName(c.ackName) {
		return nil, erasure.Errorf(erasure.EINVALID, "ack consumer name %q is not valid", c.ackName)
	}
	if err := ValidSubject(c.ackPrefix); err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "ack prefix: %v", err)
	}
	var err error
	if cfg.URL == "" {
		err = c.startEmbedded(cfg, dataDir)
	} else {
		err = c.dial(cfg)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.js, err = jetstream.New(c.nc)
	if err != nil {
		c.Close()
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "nats: %v", err)
	}
	return c, nil
}

func (c *Conn) startEmbedded(cfg registry.NATS, dataDir string) error {
	port := cfg.Port
	switch {
	case port == 0:
		port = DefaultPort
	case port == -1:
		port = server.RANDOM_PORT
	case port < 0 || port > 65535:
		return erasure.Errorf(erasure.EINVALID, "nats.port %d is not a port", cfg.Port)
	}
	if dataDir == "" {
		return erasure.Errorf(erasure.EINVALID, "the embedded NATS server needs a data dir")
	}
	dir := filepath.Join(dataDir, "nats")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "nats store dir: %v", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "erasure",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		// The ack listener and the publishers are on loopback; a large payload is a bug.
		MaxPayload: 1 << 20,
	})
	if err != nil {
		return erasure.Errorf(erasure.EINVALID, "embedded nats: %v", err)
	}
	c.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return erasure.Errorf(erasure.EUNAVAILABLE, "embedded nats did not start on 127.0.0.1:%d (is the port taken?)", cfg.Port)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("erasure"), nats.InProcessServer(srv),
		nats.MaxReconnects(-1), nats.ClosedHandler(c.onClosed))
	if err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "embedded nats: %v", err)
	}
	c.nc = nc
	c.log.Info("embedded NATS server started", "url", srv.ClientURL(), "store", dir)
	return nil
}

func (c *Conn) dial(cfg registry.NATS) error {
	opts := []nats.Option{
		nats.Name("erasure"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted()) }),
		nats.ClosedHandler(c.onClosed),
	}
	if cfg.Credentials != "" {
		if _, err := os.Stat(cfg.Credentials); err != nil {
			return erasure.Errorf(erasure.EINVALID, "nats.credentials: %v", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.Credentials))
	}
	if cfg.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CA))
	}
	if (cfg.TLS.Cert == "") != (cfg.TLS.Key == "") {
		return erasure.Errorf(erasure.EINVALID, "nats.tls: cert and key go together")
	}
	if cfg.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.Cert, cfg.TLS.Key))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, nats.ErrNoServers) {
			return erasure.Errorf(erasure.EUNAVAILABLE, "nats: cannot reach %s: %v", redactURL(cfg.URL), err)
		}
		return erasure.Errorf(erasure.EINVALID, "nats: connecting to %s: %v", redactURL(cfg.URL), err)
	}
	c.nc = nc
	c.log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
	return nil
}

// redactURL drops user information from a URL for messages.
func redactURL(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "***@" + u[at+1:]
		}
	}
	return u
}

// ClientURL returns the URL services use to reach the server: the embedded server's loopback
// URL, or the URL of the external server connected to.
func (c *Conn) ClientURL() string {
	if c.srv != nil {
		return c.srv.ClientURL()
	}
	return c.nc.ConnectedUrlRedacted()
}

// NATS returns the underlying connection (for the demo's in-process mutator, for instance).
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream returns the JetStream context of the connection.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// Stream returns the name of the stream holding commands and acknowledgements.
func (c *Conn) Stream() string { return c.stream }

// AckSubject returns the subject on which dataset's acknowledgements are published.
func (c *Conn) AckSubject(dataset string) string { return c.ackPrefix + "." + dataset }

// EnsureStream creates the stream, or updates it, so that it captures subjects (the command
// subjects of every async dataset) and the acknowledgement subjects (prefix.>). An existing
// stream keeps the subjects it had (commands in flight on a subject no dataset uses any more
// stay readable) and gets a duplicate window of at least DuplicateWindow; its retention and
// storage are left as the operator set them. Subjects must be valid (ValidSubject).
//
// Errors: EINVALID for a bad subject or one that another stream captures; EUNAVAILABLE when
// JetStream does not answer.
func (c *Conn) EnsureStream(ctx context.Context, subjects []string) error {
	want := []string{c.ackPrefix + ".>"}
	for _, s := range subjects {
		if err := ValidSubject(s); err != nil {
			return erasure.Errorf(erasure.EINVALID, "%v", err)
		}
		if !slices.Contains(want, s) {
			want = append(want, s)
		}
	}
	info, err := c.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        c.stream,
			Description: "erasure: commands to async datasets and their acknowledgements",
			Subjects:    want,
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.replicas,
			MaxAge:      c.maxAge,
			Duplicates:  DuplicateWindow,
			Discard:     jetstream.DiscardOld,
		})
		if err != nil {
			return c.streamError("creating", err)
		}
		c.log.Info("stream created", "stream", c.stream, "subjects", len(want))
		return nil
	case err != nil:
		return c.streamError("reading", err)
	}
	cfg := info.Config
	changed := false
	for _, s := range want {
		if !slices.Contains(cfg.Subjects, s) {
			cfg.Subjects = append(cfg.Subjects, s)
			changed = true
		}
	}
	if cfg.Duplicates < DuplicateWindow {
		cfg.Duplicates = DuplicateWindow
		changed = true
	}
	if !changed {
		return nil
	}
	if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
		return c.streamError("updating", err)
	}
	c.log.Info("stream updated", "stream", c.stream, "subjects", len(cfg.Subjects))
	return nil
}

func (c *Conn) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

func (c *Conn) streamError(doing string, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		// The server refused the configuration (subjects overlapping another stream, limits).
		return erasure.Errorf(erasure.EINVALID, "nats: %s stream %s: %s", doing, c.stream, api.Description)
	}
	return erasure.Errorf(erasure.EUNAVAILABLE, "nats: %s stream %s: %v", doing, c.stream, err)
}

// DeleteStream deletes the stream with everything in it. It is for tests and tools that own a
// stream of their own; the server never calls it.
func (c *Conn) DeleteStream(ctx context.Context) error {
	err := c.js.DeleteStream(ctx, c.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}

// Close stops the acknowledgement listeners, drains the connection and stops the embedded
// server. It is safe to call more than once.
func (c *Conn) Close() error {
	c.mu.Lock()
	ls := c.listeners
	c.listeners = nil
	c.mu.Unlock()
	for _, l := range ls {
		l.Stop()
	}
	if c.nc != nil && !c.nc.IsClosed() {
		if err := c.nc.Drain(); err != nil {
			c.nc.Close()
		}
		// Drain is asynchronous; wait for it so the embedded server is not stopped under it.
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
			c.nc.Close()
		}
	}
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
		c.srv = nil
	}
	return nil
}

func (c *Conn) onClosed(*nats.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
}

// validName reports whether s is usable as a stream or consumer name.
func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ValidSubject returns an error saying what is wrong when s is not a literal NATS subject
// usable for commands: dot-separated non-empty tokens of printable ASCII without wildcards
// (* and >), at most 255 bytes, not starting with "$" (system subjects).
func ValidSubject(s string) error {
	if s == "" {
		return fmt.Errorf("subject is empty")
	}
	if len(s) > 255 {
		return fmt.Errorf("subject is longer than 255 bytes")
	}
	if s[0] == '$' {
		return fmt.Errorf("subject %q is a system subject", s)
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("subject %q has an empty token", s)
		}
		if tok == "*" || tok == ">" {
			return fmt.Errorf("subject %q has a wildcard", s)
		}
		for i := 0; i < len(tok); i++ {
			if b := tok[i]; b <= ' ' || b >= 0x7f || b == '*' || b == '>' {
				return fmt.Errorf("subject %q has a character that is not allowed", s)
			}
		}
	}
	return nil
}
