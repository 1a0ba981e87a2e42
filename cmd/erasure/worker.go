package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

func init() {
	command("worker", "run the executor, the ack listener and sweep units on a shared store, no API (reads --config)", runWorker)
}

// runWorker is `erasure worker --config FILE`: a Main without the API, on a shared store
// (PostgreSQL). Any number of workers and servers share the work; the one elected leader also
// runs the work done once per deployment (sweep schedule, overdue watcher).
func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain()
	m.Worker = true
	if err := m.ParseFlags(args, stderr); err != nil {
		return err
	}
	slog.SetDefault(m.Logger)
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	fmt.Fprintf(stdout, "erasure worker running %d datasets (%s)\n", len(m.Config.Datasets), storeWhere(m))
	<-ctx.Done()
	err := m.Close()
	fmt.Fprintln(stdout, "erasure worker stopped")
	return err
}
