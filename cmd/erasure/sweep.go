package main

// The sweep commands: sweeps of offline datasets through the API (ERASURE_URL, ERASURE_TOKEN).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/internal/words"
)

func init() {
	command("sweep run", "sweep an offline dataset now: sweep run DATASET [--wait] (needs operate)", runSweepRun)
	command("sweep list", "list a dataset's sweeps and the progress of a running one: sweep list DATASET [--limit N]", runSweepList)
	command("sweep index", "build the skip index of a files dataset: sweep index DATASET", runSweepIndex)
	command("sweep export", "export the queued identifiers for an external job: sweep export DATASET [--format jsonl|parquet] [-o FILE]", runSweepExport)
	command("sweep ack", "report an external job's outcome: sweep ack DATASET ID --status done|failed [--removed N] [--error MSG]", runSweepAck)
}

// sweepPoll is how often `sweep run --wait` asks for progress.
var sweepPoll = 500 * time.Millisecond

// sweepArgs parses args and returns the positional arguments, which must be n.
func sweepArgs(name string, fs *flag.FlagSet, args []string, n int, usage string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, usageError("usage: erasure " + name + " " + usage)
	}
	return pos, nil
}

func runSweepRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("sweep run", stderr)
	wait := fs.Bool("wait", false, "wait for the sweep to end, showing its progress on stderr (the token needs read too)")
	timeout := fs.Duration("timeout", 0, "with --wait, give up waiting after this long (0: no limit); the sweep goes on")
	pos, err := sweepArgs("sweep run", fs, args, 1, "DATASET [--wait]")
	if err != nil {
		return err
	}
	ds := pos[0]
	c, err := newClient()
	if err != nil {
		return err
	}
	sw, err := c.RunSweep(ctx, ds)
	if err != nil {
		return err
	}
	if sw.Tasks == 0 {
		fmt.Fprintf(stdout, "nothing queued for %s: no sweep started\n", ds)
		return nil
	}
	if !*wait {
		fmt.Fprintf(stdout, "sweep %s of %s started: %s (follow it with `erasure sweep list %s`)\n", sw.ID, ds, words.Count(sw.Tasks, "task"), ds)
		return nil
	}
	fmt.Fprintf(stderr, "sweep %s of %s started: %s\n", sw.ID, ds, words.Count(sw.Tasks, "task"))
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	prog := newProgress(stderr, ds, "")
	for {
		st, err := c.SweepStatus(ctx, ds, 50)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("sweep %s did not end within %s; it goes on in the server", sw.ID, *timeout)
			}
			return err
		}
		if st.Running != nil && st.Running.ID == sw.ID && st.Progress != nil {
			prog.report(sweepStep(st.Progress))
		}
		// Ended means stored as ended and let go by the server's sweeper too (it lets go a
		// moment after the store says committed): a command run next finds the dataset free.
		held := st.Running != nil && st.Running.ID == sw.ID
		for _, s := range st.Sweeps {
			if s.ID != sw.ID || held {
				continue
			}
			switch s.State {
			case erasure.SweepCommitted:
				prog.finish(stdout, "%s", sweepSummary(&s))
				return nil
			case erasure.SweepFailed:
				prog.finish(stdout, "%s", sweepSummary(&s))
				return fmt.Errorf("sweep %s of %s failed: %s (its %s for the next sweep)", s.ID, ds, s.Error, waiting(s.Tasks))
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("sweep %s did not end within %s; it goes on in the server", sw.ID, *timeout)
			}
			return ctx.Err()
		case <-time.After(sweepPoll):
		}
	}
}

// sweepStep is a running sweep's progress as a step: bytes of partitions done, then the
// partitions and rows.
func sweepStep(p *erasure.SweepProgress) step {
	return step{Done: p.BytesDone, Total: p.BytesTotal, Elapsed: p.Elapsed,
		Note: fmt.Sprintf("%d/%s, %s scanned, %d removed", p.PartitionsDone, words.Count(p.PartitionsTotal, "partition"), words.Count(p.RowsScanned, "row"), p.RowsRemoved)}
}

// sweepSummary is the one line that says how a sweep ended.
func sweepSummary(s *erasure.Sweep) string {
	took := ""
	if s.Finished != nil {
		took = " in " + s.Finished.Sub(s.Started).Round(time.Millisecond).String()
	}
	switch s.State {
	case erasure.SweepCommitted:
		return fmt.Sprintf("sweep %s of %s committed: %s done, %s, %s scanned, %d removed, %s read%s",
			s.ID, s.Dataset, words.Count(s.Tasks, "task"), words.Count(s.Partitions, "partition"), words.Count(s.Scanned, "row"), s.Removed, bytesText(s.Bytes), took)
	case erasure.SweepFailed:
		return fmt.Sprintf("sweep %s of %s FAILED%s: %s; %s for the next sweep", s.ID, s.Dataset, took, s.Error, waiting(s.Tasks))
	}
	return fmt.Sprintf("sweep %s of %s is %s: %s", s.ID, s.Dataset, s.State, words.Count(s.Tasks, "task"))
}

func runSweepList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("sweep list", stderr)
	limit := fs.Int("limit", 20, "how many sweeps to show, newest first (1..500)")
	pos, err := sweepArgs("sweep list", fs, args, 1, "DATASET [--limit N]")
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > 500 {
		return usageError("--limit must be from 1 to 500")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	st, err := c.SweepStatus(ctx, pos[0], *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tMODE\tTASKS\tSTARTED\tTOOK\tPARTITIONS\tSCANNED\tREMOVED\tERROR")
	for _, s := range st.Sweeps {
		took := "-"
		if s.Finished != nil {
			took = s.Finished.Sub(s.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.State, s.Mode, s.Tasks, s.Started.Format(time.RFC3339), took, s.Partitions, s.Scanned, s.Removed, oneLineText(s.Error, 80))
	}
	tw.Flush()
	line := fmt.Sprintf("%s of %s", words.Count(len(st.Sweeps), "sweep"), st.Dataset)
	if st.Running != nil {
		line += fmt.Sprintf("; %s running", st.Running.ID)
		if st.Progress != nil {
			line += ": " + newProgress(io.Discard, st.Dataset, "").line(sweepStep(st.Progress))
		}
	}
	fmt.Fprintln(stdout, line)
	return nil
}

func runSweepIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("sweep index", stderr)
	pos, err := sweepArgs("sweep index", fs, args, 1, "DATASET")
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "building the skip index of %s…\n", pos[0])
	rep, err := c.BuildIndex(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "skip index of %s: %s, %s built, %d already current, %s and %s read in %s\n",
		pos[0], words.Count(rep.Partitions, "partition"), words.Count(rep.Built, "sidecar"), rep.Current, words.Count(rep.Rows, "row"), bytesText(rep.BytesRead), rep.Elapsed.Round(time.Millisecond))
	return nil
}

func runSweepExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("sweep export", stderr)
	format := fs.String("format", "jsonl", "export format: jsonl or parquet")
	out := fs.String("o", "", "write the export to this `file` (mode 0600: it holds identifiers in clear); default stdout")
	pos, err := sweepArgs("sweep export", fs, args, 1, "DATASET [--format jsonl|parquet] [-o FILE]")
	if err != nil {
		return err
	}
	if *format != "jsonl" && *format != "parquet" {
		return usageError("--format must be jsonl or parquet")
	}
	ds := pos[0]
	c, err := newClient()
	if err != nil {
		return err
	}
	ex, err := c.ExportSweep(ctx, ds, *format)
	if err != nil {
		return err
	}
	if ex.Body == nil {
		fmt.Fprintf(stdout, "nothing queued for %s: nothing exported\n", ds)
		return nil
	}
	defer ex.Body.Close()
	id := ex.Sweep
	var n int64
	dest := "stdout"
	if *out == "" {
		n, err = io.Copy(stdout, ex.Body)
	} else {
		dest = *out
		n, err = writeFileAtomic(*out, ex.Body)
	}
	if err != nil {
		return fmt.Errorf("export of sweep %s cut short after %d bytes: %v; acknowledge it as failed with `erasure sweep ack %s %s --status failed` and export again", id, n, err, ds, id)
	}
	fmt.Fprintf(stderr, "exported sweep %s of %s: %s, %s to %s\nwhen the job is done: erasure sweep ack %s %s --status done --removed N (or --status failed --error MSG)\n",
		id, ds, words.Count(ex.Tasks, "task"), bytesText(n), dest, ds, id)
	return nil
}

// writeFileAtomic writes r to path through a temporary file renamed into place, mode 0600.
func writeFileAtomic(path string, r io.Reader) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	return n, err
}

func runSweepAck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("sweep ack", stderr)
	status := fs.String("status", "", "the job's outcome: done or failed")
	removed := fs.Int64("removed", 0, "rows the job erased")
	msg := fs.String("error", "", "with --status failed, what went wrong")
	pos, err := sweepArgs("sweep ack", fs, args, 2, "DATASET ID --status done|failed [--removed N] [--error MSG]")
	if err != nil {
		return err
	}
	if *status != "done" && *status != "failed" {
		return usageError("--status must be done or failed")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	ack := erasure.SweepAck{Status: erasure.AckStatus(*status), Removed: *removed, Error: *msg}
	sw, err := c.AckSweep(ctx, pos[0], pos[1], ack)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, sweepSummary(sw))
	return nil
}

// waiting says how many tasks wait: "1 task waits", "3 tasks wait".
func waiting(n int) string {
	if n == 1 {
		return "1 task waits"
	}
	return words.Count(n, "task") + " wait"
}
