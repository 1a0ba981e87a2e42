package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"erasure"
	"erasure/internal/words"
	"erasure/registry"
	"erasure/server"
	"erasure/store"
)

func init() {
	command("serve", "run the API and the pipeline (reads --config)", runServe)
}

// Main is `erasure serve` (and, with Worker, `erasure worker`) as a value, the way the tests
// run it too: ParseFlags reads the command line, Run opens the server and starts its
// components, Close stops and closes it.
type Main struct {
	// Worker runs all but the API (Server.StartWorker): `erasure worker`.
	Worker bool
	// ConfigPath is the configuration file; Config, when set, is used instead of reading it.
	ConfigPath string
	Config     *registry.Config
	// Addr and DataDir, when set, override the configuration's server.addr and
	// server.data_dir.
	Addr, DataDir string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger

	// Server is the running server, once Run has opened it.
	Server *server.Server
}

// NewMain returns a Main reading erasure.yaml.
func NewMain() *Main { return &Main{ConfigPath: "erasure.yaml"} }

// ParseFlags reads serve's (or worker's) flags; the logger logs on stderr (text, or JSON with
// ERASURE_LOG=json) at info level, debug with --debug. Usage errors are usageErrors.
func (m *Main) ParseFlags(args []string, stderr io.Writer) error {
	name := "serve"
	if m.Worker {
		name = "worker"
	}
	fs := flags(name, stderr)
	fs.StringVar(&m.ConfigPath, "config", m.ConfigPath, "configuration `file`")
	if !m.Worker {
		fs.StringVar(&m.Addr, "addr", "", "listen `address` (overrides server.addr)")
	}
	fs.StringVar(&m.DataDir, "data-dir", "", "data `directory` (overrides server.data_dir)")
	debug := fs.Bool("debug", false, "log at debug level")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError(name + " takes no arguments, only flags: erasure " + name + " --config FILE")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	m.Logger = newLogger(os.Stderr, level)
	return nil
}

// Run loads the configuration when Config is nil, binds the API's address (unless a Worker),
// opens the server and starts it (without the API for a Worker). It returns once the server
// runs (Server.URL serves, unless a Worker); the server runs until ctx is cancelled or Close.
// The address is bound first: a port already taken is reported before NATS is started or the
// store is touched.
func (m *Main) Run(ctx context.Context) error {
	if m.Config == nil {
		cfg, err := loadConfig(m.ConfigPath)
		if err != nil {
			return err
		}
		m.Config = cfg
	}
	if m.Addr != "" {
		m.Config.Server.Addr = m.Addr
	}
	if m.DataDir != "" {
		m.Config.Server.DataDir = m.DataDir
	}
	if m.Worker {
		// Refused before anything is opened: a SQLite data dir belongs to its serve.
		if d, err := store.Lookup(m.Config.Store.Driver); err == nil && !d.Shared {
			return erasure.Errorf(erasure.EINVALID, "a worker needs a shared store (store.dsn, PostgreSQL): on SQLite one `erasure serve` runs everything")
		}
		s, err := server.Open(ctx, m.Config, m.Logger)
		if err != nil {
			return err
		}
		m.Server = s
		return s.StartWorker(ctx)
	}
	ln, err := server.Listen(m.Config.Server.Addr)
	if err != nil {
		return err
	}
	s, err := server.Open(ctx, m.Config, m.Logger)
	if err != nil {
		ln.Close()
		return err
	}
	m.Server = s
	return s.StartOn(ctx, ln)
}

// URL is the base URL of the API; "" before Run.
func (m *Main) URL() string {
	if m.Server == nil {
		return ""
	}
	return m.Server.URL()
}

// Close stops and closes the server, if Run opened one.
func (m *Main) Close() error {
	if m.Server == nil {
		return nil
	}
	return m.Server.Close()
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain()
	if err := m.ParseFlags(args, stderr); err != nil {
		return err
	}
	slog.SetDefault(m.Logger) // connectors that log through the default logger follow --debug
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	fmt.Fprintf(stdout, "erasure serving %s on %s (%s)\n", words.Count(len(m.Config.Datasets), "dataset"), m.URL(), storeWhere(m))
	<-ctx.Done()
	err := m.Close()
	fmt.Fprintln(stdout, "erasure stopped")
	return err
}

// storeWhere says where the store of a running Main is, without its DSN (it may hold a
// password).
func storeWhere(m *Main) string {
	if m.Server != nil && m.Server.Shared {
		return "shared " + m.Config.Store.Driver + " store, process " + m.Server.Owner
	}
	return "data in " + m.Config.Server.DataDir
}

// newLogger returns the process logger: text on w, or JSON with ERASURE_LOG=json.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("ERASURE_LOG") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadConfig loads the configuration file, turning registry errors into one *erasure.Error
// with every problem listed.
func loadConfig(path string) (*registry.Config, error) {
	cfg, err := registry.Load(path)
	if err != nil {
		return nil, configError(path, err)
	}
	return cfg, nil
}

// configPath is the configuration file of a command that takes it as FILE or --config FILE
// (default erasure.yaml).
func configPath(flagValue string, pos []string, name string) (string, error) {
	switch {
	case len(pos) > 1, len(pos) == 1 && flagValue != "" && pos[0] != flagValue:
		return "", usageError("give one configuration file: erasure datasets " + name + " FILE")
	case len(pos) == 1:
		return pos[0], nil
	case flagValue == "":
		return "erasure.yaml", nil
	}
	return flagValue, nil
}
