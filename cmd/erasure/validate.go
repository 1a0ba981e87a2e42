package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"erasure"
	"erasure/registry"
)

func init() {
	command("datasets validate", "check a configuration file offline and list every error with its line: datasets validate [FILE | --config FILE]", runDatasetsValidate)
}

// runDatasetsValidate loads a configuration as serve would, without connecting to anything.
// It prints one line on success; otherwise it returns an EINVALID error whose details are
// every problem as file:line: message.
func runDatasetsValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("datasets validate", stderr)
	config := fs.String("config", "", "configuration `file` (the same as giving FILE; default erasure.yaml)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path, err := configPath(*config, pos, "validate")
	if err != nil {
		return err
	}
	cfg, err := registry.Load(path)
	if err != nil {
		var e *erasure.Error
		if errors.As(err, &e) {
			return e
		}
		return configError(path, err)
	}
	for _, ds := range cfg.Datasets {
		ds.Conn.Close() // built without I/O; nothing was opened, but the contract is to close
	}
	hooks := ""
	if len(cfg.Notify) > 0 {
		hooks = ", " + plural(len(cfg.Notify), "webhook")
	}
	fmt.Fprintf(stdout, "%s: %s, %s%s, ok\n", path, plural(len(cfg.Datasets), "dataset"), plural(len(cfg.Identifiers), "identifier"), hooks)
	return nil
}
