package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"erasure/registry"
)

func init() {
	command("serve", "run the API and the pipeline (reads --config)", runServe)
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

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("serve", stderr)
	config := fs.String("config", "erasure.yaml", "configuration `file`")
	addr := fs.String("addr", "", "listen `address` (overrides server.addr)")
	dataDir := fs.String("data-dir", "", "data `directory` (overrides server.data_dir)")
	debug := fs.Bool("debug", false, "log at debug level")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Addr = *addr
	}
	if *dataDir != "" {
		cfg.Server.DataDir = *dataDir
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := newLogger(os.Stderr, level)
	slog.SetDefault(log)
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.start(ctx, cfg.Server.Addr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "erasure serving %d datasets on %s (data in %s)\n", len(cfg.Datasets), a.URL(), cfg.Server.DataDir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "erasure stopped")
	return nil
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
