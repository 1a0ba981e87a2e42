package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/registry"
	"erasure/scan"
	"erasure/store"
	"erasure/store/sqlstore"
)

func init() {
	command("scan", "look for unregistered personal data and for erased subjects' data still in the estate (reads --config)", runScan)
}

// runScan samples every registered SQL database, Redis database and snapshot directory (see
// package scan), prints the findings with suggested registry entries and one line per source,
// and ends with a summary line. It exits 1 when there are findings, 6 when nothing was found
// but a source could not be read. Progress goes to stderr.
//
// The residue check needs what serve has: the store (data_dir/erasure.db, SQLite) and the
// audit key (audit.key in the configuration, or data_dir/audit.key). Without them the scan
// still looks for unregistered data and says the residue was not checked; it never creates a
// store or a key.
func runScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("scan", stderr)
	config := fs.String("config", "", "configuration `file` (the same as giving FILE; default erasure.yaml)")
	dataset := fs.String("dataset", "", "scan only the database, Redis or directory of this `dataset`")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	sample := fs.Int("sample", scan.DefaultSample, "rows per table, keys per Redis database, rows per snapshot directory")
	budget := fs.Duration("budget", scan.DefaultBudget, "time each database, Redis database or directory has")
	dataDir := fs.String("data-dir", "", "data `directory` with the store and the audit key (overrides server.data_dir)")
	redisMatch := fs.String("redis-match", "*", "SCAN MATCH `pattern` of the Redis keys to sample")
	quiet := fs.Bool("quiet", false, "print no progress on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: erasure scan [FILE | --config FILE] [--dataset D] [--json] [--sample 1000] [--budget 30s]")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path := *config
	switch {
	case len(pos) > 1 || len(pos) == 1 && path != "" && pos[0] != path:
		return usageError("give one configuration file: erasure scan FILE")
	case len(pos) == 1:
		path = pos[0]
	case path == "":
		path = "erasure.yaml"
	}
	if *sample < 1 || *sample > scan.MaxSample {
		return usageError(fmt.Sprintf("--sample must be between 1 and %d", scan.MaxSample))
	}
	if *budget <= 0 {
		return usageError("--budget must be positive")
	}
	cfg, err := loadConfig(path)
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
	progress := func(line string) { fmt.Fprintln(stderr, "scan: "+line) }
	if *quiet {
		progress = nil
	}
	opts := scan.Options{Dataset: *dataset, Sample: *sample, Budget: *budget, RedisMatch: *redisMatch, Progress: progress}
	store, why, err := openErased(ctx, cfg)
	if err != nil {
		return err
	}
	if store != nil {
		defer store.Close()
		opts.Erased, opts.Hasher = store, store.hasher
	} else if !*quiet {
		progress("residue not checked: " + why)
	}
	rep, err := scan.Run(ctx, cfg, opts)
	if err != nil {
		if ctx.Err() != nil {
			return erasure.Errorf(erasure.EUNAVAILABLE, "interrupted: %v", ctx.Err())
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "scan: "+rep.Summary())
	} else {
		if err := scan.WriteText(stdout, rep); err != nil {
			return err
		}
		fmt.Fprintln(stdout, rep.Summary())
	}
	if n := len(rep.Findings); n > 0 {
		return fmt.Errorf("%s: %d unregistered, %d residue", plural(n, "finding"), rep.Count(scan.Unregistered), rep.Count(scan.Residue))
	}
	if n := rep.Failed(); n > 0 {
		return erasure.Errorf(erasure.EUNAVAILABLE, "%s of %d could not be read", plural(n, "source"), len(rep.Sources))
	}
	return nil
}

// erasedStore is the store opened for a scan, with the hasher of its audit key.
type erasedStore struct {
	*sqlstore.DB
	hasher *audit.Hasher
}

// openErased opens the store cfg names (SQLite in its data directory, or a shared one) and its
// audit key for the residue check. It returns nil and the reason when there is nothing to open
// (no store yet, no key, a store this build cannot open), and an error when what is there
// cannot be read.
func openErased(ctx context.Context, cfg *registry.Config) (*erasedStore, string, error) {
	if _, err := store.Lookup(cfg.Store.Driver); err != nil {
		return nil, erasure.ErrorMessage(err), nil
	}
	dir := cfg.Server.DataDir
	dbPath := filepath.Join(dir, "erasure.db")
	if cfg.Store.DSN == "" {
		if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
			return nil, "no store at " + dbPath + " (give --data-dir)", nil
		} else if err != nil {
			return nil, "", erasure.Errorf(erasure.EUNAVAILABLE, "store: %v", err)
		}
	}
	if cfg.Audit.Key == "" {
		if _, err := os.Stat(filepath.Join(dir, "audit.key")); errors.Is(err, os.ErrNotExist) {
			return nil, "no audit key (audit.key in the configuration or " + filepath.Join(dir, "audit.key") + ")", nil
		}
	}
	key, err := audit.LoadKey(cfg.Audit.Key, dir)
	if err != nil {
		return nil, "", erasure.Errorf(erasure.EINVALID, "audit key: %v", err)
	}
	h, err := audit.NewHasher(key)
	if err != nil {
		return nil, "", erasure.Errorf(erasure.EINVALID, "audit key: %v", err)
	}
	db, _, err := store.Open(ctx, store.Config{Driver: cfg.Store.Driver, DSN: cfg.Store.DSN, DataDir: dir, Hasher: h, Chain: h.Chain(), Now: time.Now})
	if err != nil {
		return nil, "", erasure.Errorf(erasure.EUNAVAILABLE, "store: %s", erasure.ErrorMessage(err))
	}
	return &erasedStore{DB: db, hasher: h}, "", nil
}
