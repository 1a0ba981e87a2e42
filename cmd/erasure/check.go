package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	natsconn "erasure/connector/nats"
	"erasure/registry"
)

func init() {
	command("datasets check", "connect to every dataset and check its table, columns and keys, erasing nothing (reads --config)", runDatasetsCheck)
}

// checkStatus is the outcome of checking one dataset.
type checkStatus int

const (
	checkOK      checkStatus = iota
	checkFailed              // the connector answered with an error, or did not answer in time
	checkSkipped             // the connector cannot be checked from here
)

// checkResult is one dataset's line.
type checkResult struct {
	status checkStatus
	msg    string
}

// runDatasetsCheck loads the configuration as serve would and, for every dataset whose
// connector is an erasure.Checker, calls Check with a timeout, several at once. It prints one
// line per dataset in file order (name, connector, outcome) and a summary line, and returns
// an EUNAVAILABLE error counting the failures when any check fails. It erases nothing.
//
// It reads the configuration file rather than asking the API: the file holds the connection
// strings (through ${VAR}), and checking from the operator's machine before a deploy is the
// point. Datasets that only a running server can check (async datasets on an embedded NATS,
// the records connector, which needs the server's record store) say so instead.
func runDatasetsCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("datasets check", stderr)
	config := fs.String("config", "", "configuration `file` (the same as giving FILE; default erasure.yaml)")
	timeout := fs.Duration("timeout", 10*time.Second, "time each dataset has to answer")
	parallel := fs.Int("parallel", 8, "datasets checked at once")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: erasure datasets check [FILE | --config FILE] [--timeout 10s] [--parallel 8]")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path, err := configPath(*config, pos, "check")
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError("--timeout must be positive")
	}
	if *parallel < 1 {
		return usageError("--parallel must be at least 1")
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

	results := make([]checkResult, len(cfg.Datasets))
	nats := connectNATS(ctx, cfg, *timeout)
	if nats.conn != nil {
		defer nats.conn.Close()
	}
	if closeKafka := bindKafka(cfg); closeKafka != nil {
		defer closeKafka()
	}
	sem := make(chan struct{}, *parallel)
	var wg sync.WaitGroup
	for i, d := range cfg.Datasets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = checkDataset(ctx, d, nats, *timeout)
		}()
	}
	wg.Wait()

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	var ok, failed, skipped int
	for i, d := range cfg.Datasets {
		r := results[i]
		word := "ok"
		switch r.status {
		case checkOK:
			ok++
		case checkFailed:
			failed++
			word = "FAILED"
		case checkSkipped:
			skipped++
			word = "skipped"
		}
		line := d.Name + "\t" + d.Connector + "\t" + word
		if r.msg != "" {
			line += "\t" + r.msg
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%s: %s: %d ok, %d failed, %d not checked\n", path, plural(len(cfg.Datasets), "dataset"), ok, failed, skipped)
	if err := ctx.Err(); err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "interrupted: %v", err)
	}
	if failed > 0 {
		return erasure.Errorf(erasure.EUNAVAILABLE, "%s of %d failed the check", plural(failed, "dataset"), len(cfg.Datasets))
	}
	return nil
}

// checkDataset checks one dataset within timeout.
func checkDataset(ctx context.Context, d *erasure.Dataset, nats natsCheck, timeout time.Duration) checkResult {
	switch {
	case d.Connector == "records":
		return checkResult{checkSkipped, "checked when serve runs: the record store is the server's own"}
	case d.Method == erasure.MethodAsync && d.Connector == "nats":
		if nats.conn == nil {
			return checkResult{nats.status, nats.msg}
		}
	}
	c, ok := d.Conn.(erasure.Checker)
	if !ok {
		return checkResult{checkSkipped, "not checkable: the " + d.Connector + " connector has no check"}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := safeCheck(cctx, c)
	switch {
	case err == nil:
		if d.Method == erasure.MethodAsync && d.Connector == "nats" {
			return checkResult{checkOK, "stream " + nats.conn.Stream() + " captures " + d.Conn.(*natsconn.Connector).Subject()}
		}
		return checkResult{checkOK, ""}
	case cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		if errors.Is(err, context.DeadlineExceeded) {
			return checkResult{checkFailed, fmt.Sprintf("no answer within %s", timeout)}
		}
		return checkResult{checkFailed, fmt.Sprintf("no answer within %s: %s", timeout, checkMessage(err))}
	}
	return checkResult{checkFailed, checkMessage(err)}
}

// safeCheck calls c.Check and returns its error, or ctx's once ctx is done even if Check has
// not returned (some clients finish their own handshake timeouts first: go-redis waits out
// its read timeout on a server that accepts and never answers), so that --timeout bounds the
// command. A panic of a connector becomes a failed check, so one bad connector does not hide
// the others' results.
func safeCheck(ctx context.Context, c erasure.Checker) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("the connector's check panicked: %v", p)
			}
		}()
		done <- c.Check(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkMessage is err for a person on one line: the message of an *erasure.Error without its
// code, and whether retrying may help.
func checkMessage(err error) string {
	var e *erasure.Error
	msg := err.Error()
	if errors.As(err, &e) {
		msg = e.Message
	}
	msg = strings.Join(strings.Fields(msg), " ")
	var te *erasure.TransientError
	if errors.As(err, &te) {
		msg += " (unreachable or busy: may pass later)"
	}
	return msg
}

// natsCheck is how the async datasets on NATS can be checked from here.
type natsCheck struct {
	conn   *natsconn.Conn // connected to the configured cluster, or nil
	status checkStatus    // when conn is nil: skipped or failed
	msg    string
}

// connectNATS connects to the configured NATS cluster when there are nats datasets and a URL
// is set, and binds them. The embedded server (no URL) only exists while serve runs, and its
// stream is created then: those datasets are reported as not checked here.
func connectNATS(ctx context.Context, cfg *registry.Config, timeout time.Duration) natsCheck {
	var async []*erasure.Dataset
	for _, d := range cfg.Datasets {
		if d.Method == erasure.MethodAsync && d.Connector == "nats" {
			async = append(async, d)
		}
	}
	if len(async) == 0 {
		return natsCheck{}
	}
	if cfg.NATS.URL == "" {
		return natsCheck{status: checkSkipped, msg: "checked when serve connects: the embedded NATS runs inside serve"}
	}
	conn, err := natsconn.Connect(cfg.NATS, cfg.Server.DataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return natsCheck{status: checkFailed, msg: "nats: " + checkMessage(err)}
	}
	natsconn.SharedConn.Provide(cfg.Resources, conn)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := conn.JetStream().Stream(cctx, conn.Stream()); errors.Is(err, jetstream.ErrStreamNotFound) {
		conn.Close()
		return natsCheck{status: checkSkipped, msg: "nats reachable; stream " + conn.Stream() + " does not exist yet (serve creates it)"}
	} else if err != nil {
		conn.Close()
		return natsCheck{status: checkFailed, msg: "nats: " + checkMessage(err)}
	}
	return natsCheck{conn: conn}
}
