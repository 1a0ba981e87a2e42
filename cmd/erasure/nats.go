package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"erasure"
	natsconn "erasure/connector/nats"
)

func init() {
	command("nats credentials", "print or write an async dataset's credentials on the embedded NATS server (reads --config)", runNATSCredentials)
}

// runNATSCredentials prints, or writes to --out with mode 0600, the credentials of one async
// dataset's user on the embedded NATS server: what its owners' service needs to consume the
// dataset's commands and publish its acknowledgements, and nothing more (natsconn.Credentials,
// natsconn.DatasetPermissions). The passwords derive from the key in the data dir, generated
// there the first time, so the server need not run. With an external NATS (nats.url) the
// users are the operator's to configure (docs/async.md); it says so.
func runNATSCredentials(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("nats credentials", stderr)
	config := fs.String("config", "erasure.yaml", "configuration `file`")
	dataDir := fs.String("data-dir", "", "data `directory` (overrides server.data_dir)")
	out := fs.String("out", "", "write the credentials to `file` (mode 0600) instead of printing them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: erasure nats credentials DATASET [--config FILE] [--data-dir DIR] [--out FILE]")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("give one dataset: erasure nats credentials DATASET")
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range cfg.Datasets {
			d.Conn.Close()
		}
	}()
	if *dataDir != "" {
		cfg.Server.DataDir = *dataDir
	}
	d := cfg.Dataset(pos[0])
	if d == nil {
		return erasure.Errorf(erasure.ENOTFOUND, "dataset %q is not declared in %s", truncateArg(pos[0]), *config)
	}
	nc, ok := d.Conn.(*natsconn.Connector)
	if !ok {
		return erasure.Errorf(erasure.EINVALID, "dataset %s is not on NATS (connector %s)", d.Name, d.Connector)
	}
	creds, err := natsconn.DatasetCredentials(cfg.NATS, cfg.Server.DataDir, "", d.Name, nc.Subject())
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if *out == "" {
		_, err = stdout.Write(data)
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return erasure.Errorf(erasure.EINVALID, "--out: %v", err)
	}
	if err := f.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return erasure.Errorf(erasure.EINVALID, "--out: %v", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the credentials of dataset %s to %s: user %s, commands on %s, acknowledgements on %s\n", d.Name, *out, creds.User, creds.Subject, creds.AckSubject)
	return nil
}
