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
	"sync/atomic"
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
	// ackParallel is how many acknowledgements ListenAcks applies at once (1: in stream order).
	ackParallel int
	maxAge      time.Duration
	replicas    int
	deployment  string
	log         *slog.Logger

	// Embedded server only: its options (users are added as datasets are bound) and the key
	// its passwords derive from.
	srvOpts *server.Options
	key     []byte
	// bound maps the datasets bound to this Conn (Bind) to their command subjects.
	bound map[string]string

	closed chan struct{} // closed when nc is closed

	natsOpts []nats.Option // extra options of a connection to an external server

	mu        sync.Mutex
	listeners []jetstream.ConsumeContext
	// msgTTL is set once the stream is known to honour per-message TTLs (EnsureStream).
	msgTTL atomic.Bool
}

// Option changes how Connect sets up a Conn.
type Option func(*Conn)

// WithAckPrefix sets the subject prefix of acknowledgements (default: the configuration's
// nats.ack_prefix, else "erasure.ack"). Tests use a random one so that they can share a NATS
// server.
func WithAckPrefix(prefix string) Option { return func(c *Conn) { c.ackPrefix = prefix } }

// WithAckConsumer sets the name of the durable consumer reading acknowledgements (default: the
// configuration's nats.consumer, else DefaultAckConsumer followed by "-" and the first 12
// characters of the deployment id when WithDeployment gave one).
func WithAckConsumer(name string) Option { return func(c *Conn) { c.ackName = name } }

// WithNATSOptions adds options to the connection to an external server (for instance the user
// of another program's credentials).
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *Conn) { c.natsOpts = append(c.natsOpts, opts...) }
}

// WithDeployment tells the Conn the deployment id (erasure.Store.Deployment). It names the
// default ack consumer, so that deployments sharing a stream each read every acknowledgement,
// and it marks the stream as this deployment's, so that a second deployment started on the
// same stream while the first runs is refused with a clear message (EnsureStream).
func WithDeployment(id string) Option { return func(c *Conn) { c.deployment = id } }

// WithAckParallel makes ListenAcks apply up to n acknowledgements at once instead of one at a
// time in stream order, so that a store applying them in groups (one transaction for the
// acknowledgements waiting) gets groups. The server uses AckParallel.
func WithAckParallel(n int) Option { return func(c *Conn) { c.ackParallel = max(n, 1) } }

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
		stream:    orDefault(cfg.Stream, DefaultStream),
		ackPrefix: orDefault(cfg.AckPrefix, DefaultAckPrefix),
		ackName:   cfg.Consumer,
		maxAge:    DefaultMaxAge,
		replicas:  1,
		log:       log.WithGroup("nats"),
		closed:    make(chan struct{}),
		bound:     map[string]string{},
	}
	for _, o := range opts {
		o(c)
	}
	if c.ackName == "" {
		c.ackName = DefaultAckConsumer
		if len(c.deployment) >= 12 {
			c.ackName += "-" + c.deployment[:12]
		}
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
	key, err := LoadKey(dataDir)
	if err != nil {
		return err
	}
	c.key = key
	c.srvOpts = &server.Options{
		ServerName: "erasure",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		// The ack listener and the publishers are on loopback; a large payload is a bug.
		MaxPayload: 1 << 20,
		// Nobody connects without credentials: erasure's user, and one user per dataset once
		// the datasets are bound (EnsureStream).
		Users: c.users(),
	}
	srv, err := server.NewServer(c.srvOpts.Clone())
	if err != nil {
		return erasure.Errorf(erasure.EINVALID, "embedded nats: %v", err)
	}
	c.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return erasure.Errorf(erasure.EUNAVAILABLE, "embedded nats did not start on 127.0.0.1:%d (is the port taken?)", cfg.Port)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("erasure"), nats.InProcessServer(srv), nats.UserInfo(AdminUser, password(key, AdminUser)),
		nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.ClosedHandler(c.onClosed))
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
		// No publish is buffered while disconnected: a command whose publish timed out must
		// not reach the stream later, behind the publication of its next attempt.
		nats.ReconnectBufSize(-1),
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
		if isCredentialsJSON(cfg.Credentials) {
			creds, err := ReadCredentials(cfg.Credentials)
			if err != nil {
				return err
			}
			opts = append(opts, creds.Options()...)
		} else {
			opts = append(opts, nats.UserCredentials(cfg.Credentials))
		}
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
	nc, err := nats.Connect(cfg.URL, append(opts, c.natsOpts...)...)
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
// storage are left as the operator set them. Subjects must be valid (ValidSubject) and not
// under the ack prefix. On the embedded server it also admits the users of the datasets bound
// so far (Bind), with their permissions (DatasetPermissions).
//
// With a deployment id (WithDeployment) the stream is marked as this deployment's. A stream
// marked by another deployment is taken over when that deployment's ack consumer is idle (it
// is not running: a re-install), and refused while it is reading: two deployments at once need
// their own stream, ack prefix and command subjects.
//
// Errors: EINVALID for a bad subject, a subject that another stream captures, or a stream in
// use by another running deployment, each saying what to configure; EUNAVAILABLE when
// JetStream does not answer.
func (c *Conn) EnsureStream(ctx context.Context, subjects []string) error {
	want := []string{c.ackPrefix + ".>"}
	for _, s := range subjects {
		if err := ValidSubject(s); err != nil {
			return erasure.Errorf(erasure.EINVALID, "%v", err)
		}
		if under(s, c.ackPrefix) {
			return erasure.Errorf(erasure.EINVALID, "subject %s is under the ack prefix %s, where acknowledgements go", s, c.ackPrefix)
		}
		if !slices.Contains(want, s) {
			want = append(want, s)
		}
	}
	if err := c.admitDatasets(); err != nil {
		return err
	}
	for _, s := range want {
		if err := c.checkOverlap(ctx, s); err != nil {
			return err
		}
	}
	info, err := c.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        c.stream,
			Description: c.description(),
			Subjects:    want,
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.replicas,
			MaxAge:      c.maxAge,
			Duplicates:  DuplicateWindow,
			Discard:     jetstream.DiscardOld,
			AllowMsgTTL: true,
		})
		if err != nil {
			return c.streamError("creating", err)
		}
		c.log.Info("stream created", "stream", c.stream, "subjects", len(want))
		return c.checkMsgTTL(ctx)
	case err != nil:
		return c.streamError("reading", err)
	}
	cfg := info.Config
	changed := false
	if c.deployment != "" {
		if owner, consumer := parseDescription(cfg.Description); owner != c.deployment {
			if owner != "" {
				if err := c.checkIdle(ctx, owner, consumer); err != nil {
					return err
				}
				c.log.Warn("taking over a stream of another erasure deployment, which is not running; acknowledgements of its commands will be rejected",
					"stream", c.stream, "previous_deployment", owner)
			}
			cfg.Description, changed = c.description(), true
		}
	}
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
	if !cfg.AllowMsgTTL {
		cfg.AllowMsgTTL, changed = true, true
	}
	if !changed {
		return c.checkMsgTTL(ctx)
	}
	if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
		if !cfg.AllowMsgTTL || info.Config.AllowMsgTTL {
			return c.streamError("updating", err)
		}
		// A server that cannot turn per-message TTLs on: update the rest without them.
		cfg.AllowMsgTTL = false
		if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
			return c.streamError("updating", err)
		}
	}
	c.log.Info("stream updated", "stream", c.stream, "subjects", len(cfg.Subjects))
	return c.checkMsgTTL(ctx)
}

// checkMsgTTL reads whether the stream honours per-message TTLs (NATS 2.11 and later), so
// that commands are published with one; without, the stream's maximum age bounds how long a
// command is kept, and a warning says so.
func (c *Conn) checkMsgTTL(ctx context.Context) error {
	info, err := c.streamInfo(ctx)
	if err != nil {
		return c.streamError("reading", err)
	}
	c.msgTTL.Store(info.Config.AllowMsgTTL)
	if !info.Config.AllowMsgTTL {
		c.log.Warn("the stream does not allow per-message TTLs (NATS older than 2.11?): commands are kept until acknowledged and pruned, or for the stream's maximum age",
			"stream", c.stream, "max_age", info.Config.MaxAge)
	}
	return nil
}

// description is the stream description that marks it as this deployment's (stream metadata
// would do, but servers before 2.10 drop it).
func (c *Conn) description() string {
	d := "erasure: commands to async datasets and their acknowledgements"
	if c.deployment != "" {
		d += "; deployment " + c.deployment + "; acks read by " + c.ackName
	}
	return d
}

// parseDescription reads the deployment id and ack consumer out of a description written by
// description; "" when it has none.
func parseDescription(d string) (deployment, consumer string) {
	_, rest, ok := strings.Cut(d, "; deployment ")
	if !ok {
		return "", ""
	}
	deployment, consumer, _ = strings.Cut(rest, "; acks read by ")
	return deployment, consumer
}

// checkIdle returns EINVALID when the ack consumer of deployment owner is reading the stream:
// that deployment is running.
func (c *Conn) checkIdle(ctx context.Context, owner, consumer string) error {
	if consumer == "" || consumer == c.ackName && owner == c.deployment {
		return nil
	}
	cons, err := c.js.Consumer(ctx, c.stream, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	} else if err != nil {
		return c.streamError("reading the ack consumer of", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return c.streamError("reading the ack consumer of", err)
	}
	if info.NumWaiting > 0 || info.PushBound {
		return erasure.Errorf(erasure.EINVALID, "nats: stream %s is in use by another erasure deployment that is running (deployment %s, reading acknowledgements as %s); "+
			"give this deployment its own stream, ack prefix and command subjects: nats: { stream: ..., ack_prefix: ... } and each async dataset's nats.subject", c.stream, short(owner), consumer)
	}
	return nil
}

// checkOverlap returns EINVALID when subject is captured by a stream other than this Conn's.
func (c *Conn) checkOverlap(ctx context.Context, subject string) error {
	name, err := c.js.StreamNameBySubject(ctx, subject)
	if err != nil || name == c.stream {
		return nil // none captures it (or the server cannot tell): creating the stream will say
	}
	whose := "another stream"
	if s, err := c.js.Stream(ctx, name); err == nil {
		if owner, _ := parseDescription(s.CachedInfo().Config.Description); owner != "" {
			whose = "the stream of erasure deployment " + short(owner)
		}
	}
	return erasure.Errorf(erasure.EINVALID, "nats: subject %s is already captured by stream %s (%s), and a subject can be in one stream only; "+
		"give this deployment its own subjects (each async dataset's nats.subject, and nats.ack_prefix) or use stream %s (nats.stream)", subject, name, whose, name)
}

// short shortens a deployment id for messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

// users returns the embedded server's users: erasure's, and one per bound dataset.
func (c *Conn) users() []*server.User {
	out := []*server.User{{Username: AdminUser, Password: password(c.key, AdminUser)}}
	names := make([]string, 0, len(c.bound))
	for d := range c.bound {
		names = append(names, d)
	}
	slices.Sort(names)
	for _, d := range names {
		out = append(out, &server.User{Username: d, Password: password(c.key, d),
			Permissions: DatasetPermissions(c.stream, DatasetConsumer(d), c.bound[d], c.AckSubject(d), InboxPrefix(d))})
	}
	return out
}

// admitDatasets gives the embedded server a user for every dataset bound so far.
func (c *Conn) admitDatasets() error {
	if c.srv == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	consumers := map[string]string{}
	for d := range c.bound {
		if other, dup := consumers[DatasetConsumer(d)]; dup {
			return erasure.Errorf(erasure.EINVALID, "datasets %s and %s would share the consumer name %s on the embedded NATS server; rename one", other, d, DatasetConsumer(d))
		}
		consumers[DatasetConsumer(d)] = d
	}
	users := c.users()
	if len(users) == len(c.srvOpts.Users) {
		return nil
	}
	c.srvOpts.Users = users
	if a, ok := c.srv.Addr().(*net.TCPAddr); ok {
		c.srvOpts.Port = a.Port // the port chosen when a random one was asked for
	}
	if err := c.srv.ReloadOptions(c.srvOpts.Clone()); err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "embedded nats: admitting the datasets' users: %v", err)
	}
	return nil
}

// Credentials returns the credentials of dataset's user on the embedded server, with the URL
// it listens on. Errors as DatasetCredentials's; EINVALID for an external server.
func (c *Conn) Credentials(dataset string) (Credentials, error) {
	if c.srv == nil {
		return Credentials{}, erasure.Errorf(erasure.EINVALID, "an external NATS server's users are configured there")
	}
	cr := Credentials{URL: c.srv.ClientURL(), User: dataset, Password: password(c.key, dataset), InboxPrefix: InboxPrefix(dataset),
		Dataset: dataset, Stream: c.stream, AckSubject: c.AckSubject(dataset), Consumer: DatasetConsumer(dataset)}
	c.mu.Lock()
	cr.Subject = c.bound[dataset]
	c.mu.Unlock()
	return cr, nil
}

// AdminCredentials returns erasure's own credentials on the embedded server, for tools and
// tests that act as erasure. EINVALID for an external server.
func (c *Conn) AdminCredentials() (Credentials, error) {
	if c.srv == nil {
		return Credentials{}, erasure.Errorf(erasure.EINVALID, "an external NATS server's users are configured there")
	}
	return Credentials{URL: c.srv.ClientURL(), User: AdminUser, Password: password(c.key, AdminUser)}, nil
}

// AckConsumer returns the name of the durable consumer that reads acknowledgements.
func (c *Conn) AckConsumer() string { return c.ackName }

func (c *Conn) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

func (c *Conn) streamError(doing string, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == jsStreamSubjectOverlap {
		return erasure.Errorf(erasure.EINVALID, "nats: %s stream %s: its subjects overlap another stream's (another erasure deployment's?): give this deployment its own subjects (each async dataset's nats.subject, and nats.ack_prefix)", doing, c.stream)
	}
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

// jsStreamSubjectOverlap is the JetStream error code of a stream whose subjects overlap
// another stream's (the server's JSStreamSubjectOverlapErr).
const jsStreamSubjectOverlap jetstream.ErrorCode = 10065
