package main

// The client commands: they talk to the API at ERASURE_URL with ERASURE_TOKEN.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/client"
)

func init() {
	command("submit", "submit an erasure: submit TYPE=VALUE... [--reason R] [--deadline T|30d] [--idempotency-key K] [--wait]; or one per line: submit --file subjects.csv|.jsonl [--batch N] [--idempotency-prefix P]", runSubmit)
	command("status", "show a request and its tasks: status ID", runStatus)
	command("wait", "wait until a request ends: wait ID [--timeout D]; exits 0 only when it completed", runWait)
	command("cancel", "cancel a request's unfinished tasks: cancel ID", runCancel)
	command("retry", "re-open a request's failed tasks: retry ID", runRetry)
	command("datasets list", "list the registered datasets with their health", runDatasetsList)
	command("audit verify", "fetch the audit trail and recompute its hash chain: audit verify [--request ID]", runAuditVerify)
}

// newClient is the client of the client commands; tests may replace it.
var newClient = client.FromEnv

// Polling of `wait`: the first interval, grown by half each time up to the last.
var (
	waitFirstPoll = 250 * time.Millisecond
	waitMaxPoll   = 5 * time.Second
)

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("submit", stderr)
	reason := fs.String("reason", "user_request", "why the subject is erased: a short label (a-z, 0-9, _, -, spaces)")
	deadline := fs.String("deadline", "", "when the erasure must be done: an RFC 3339 time, or a delay such as 30d or 72h (default: the registry's)")
	key := fs.String("idempotency-key", "", "submitting again with the same key returns the same request instead of a new one")
	wait := fs.Bool("wait", false, "wait until the request ends and print its outcome (the token needs the read role too)")
	timeout := fs.Duration("timeout", 0, "with --wait, give up after this long (0: no limit)")
	file := fs.String("file", "", "submit one erasure per line of this CSV (a header of identifier types) or JSON lines `file`")
	format := fs.String("format", "", "with --file: csv or jsonl (default: from the file's extension)")
	batch := fs.Int("batch", 1000, "with --file: submissions per call (one transaction each), at most 10000")
	parallel := fs.Int("parallel", 2, "with --file: calls in flight at once")
	prefix := fs.String("idempotency-prefix", "", "with --file: the idempotency key of a line without one is PREFIX:LINE, so that submitting the file again returns the same requests")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *file != "" {
		switch {
		case len(pos) > 0:
			return usageError("give identifiers as TYPE=VALUE or --file, not both")
		case *wait || *key != "":
			return usageError("--wait and --idempotency-key are for one submission; with --file use --idempotency-prefix")
		case *batch < 1 || *batch > client.MaxBatch:
			return usageError(fmt.Sprintf("--batch must be from 1 to %d", client.MaxBatch))
		case *parallel < 1 || *parallel > 16:
			return usageError("--parallel must be from 1 to 16")
		}
		o := submitFileOptions{path: *file, format: *format, reason: *reason, prefix: *prefix, batch: *batch, parallel: *parallel}
		if *deadline != "" {
			if o.deadline, err = parseDeadline(*deadline, time.Now()); err != nil {
				return err
			}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return submitFile(ctx, c, o, stdout, stderr)
	}
	if len(pos) == 0 {
		return usageError("give the subject's identifiers as TYPE=VALUE, such as user_id=42 email=a@example.com")
	}
	var ids []erasure.Identifier
	for _, a := range pos {
		typ, value, ok := strings.Cut(a, "=")
		if !ok || typ == "" {
			return usageError(fmt.Sprintf("%q is not TYPE=VALUE", truncateArg(typ)))
		}
		id := erasure.Identifier{Type: typ, Value: value}
		if err := id.Validate(); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	sub := erasure.Submission{Subject: erasure.NewSubject(ids...), Reason: *reason}
	if *deadline != "" {
		if sub.Deadline, err = parseDeadline(*deadline, time.Now()); err != nil {
			return err
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	req, created, err := c.Submit(ctx, sub, *key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, req.ID)
	if created {
		fmt.Fprintf(stderr, "submitted %s: %d identifiers, %d tasks planned, deadline %s\n", req.ID, len(sub.Subject), len(req.Tasks), req.Deadline.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stderr, "%s was already submitted with this idempotency key: %s\n", req.ID, summary(req))
	}
	if !*wait {
		return nil
	}
	return waitFor(ctx, c, req.ID, *timeout, stdout, stderr)
}

// parseDeadline reads an RFC 3339 time or a delay from now: Go durations (72h) and days (30d).
func parseDeadline(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return time.Time{}, usageError(fmt.Sprintf("--deadline %q: days must be a whole number from 1 to 3650", s))
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return time.Time{}, usageError(fmt.Sprintf("--deadline %q is neither an RFC 3339 time nor a delay such as 30d or 72h", s))
		}
	}
	return now.Add(d).Truncate(time.Second), nil
}

func truncateArg(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// oneID returns the single positional argument of a command taking a request id.
func oneID(name string, args []string, stderr io.Writer, setup func(fs *flag.FlagSet)) (string, error) {
	fs := flags(name, stderr)
	if setup != nil {
		setup(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError(fmt.Sprintf("usage: erasure %s ID", name))
	}
	return pos[0], nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	id, err := oneID("status", args, stderr, nil)
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	req, err := c.Request(ctx, id)
	if err != nil {
		return err
	}
	overdue := "no"
	if req.Overdue {
		overdue = "YES"
	}
	fmt.Fprintf(stdout, "request %s  status %s  overdue %s  deadline %s  reason %q  submitted %s by %s\n\n",
		req.ID, req.Status, overdue, req.Deadline.Format(time.RFC3339), req.Reason, req.CreatedAt.Format(time.RFC3339), req.SubmittedBy)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET\tKIND\tMETHOD\tSTATUS\tATTEMPTS\tREMOVED\tVERIFIED\tLAST ERROR")
	for _, t := range req.Tasks {
		verified := "-"
		if t.VerifiedAt != nil {
			verified = t.VerifiedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", t.Dataset, t.Kind, t.Method, t.State, t.Attempts, t.Removed, verified, oneLineText(t.LastError, 80))
	}
	tw.Flush()
	fmt.Fprintln(stdout, summary(req))
	return nil
}

// oneLineText keeps the first line of s, at most n bytes, for tables.
func oneLineText(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// summary is the one line that says where a request stands.
func summary(req *erasure.Request) string {
	var done, failed, cancelled, open int
	var removed int64
	for _, t := range req.Tasks {
		removed += t.Removed
		switch {
		case t.State.Succeeded():
			done++
		case t.State == erasure.TaskFailed:
			failed++
		case t.State == erasure.TaskCancelled:
			cancelled++
		default:
			open++
		}
	}
	s := fmt.Sprintf("%s %s: %d of %d tasks done", req.ID, req.Status, done, len(req.Tasks))
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	if cancelled > 0 {
		s += fmt.Sprintf(", %d cancelled", cancelled)
	}
	if open > 0 && !req.Status.Ended() {
		s += fmt.Sprintf(", %d open", open)
	}
	s += fmt.Sprintf(", %d removed", removed)
	if req.Overdue {
		s += ", OVERDUE"
	}
	return s
}

func runWait(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var timeout *time.Duration
	id, err := oneID("wait", args, stderr, func(fs *flag.FlagSet) {
		timeout = fs.Duration("timeout", 0, "give up after this long (0: no limit)")
	})
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	return waitFor(ctx, c, id, *timeout, stdout, stderr)
}

// waitFor polls a request, with a growing interval, until it is completed, failed or
// cancelled, printing each change of status to stderr and the outcome to stdout. It returns
// nil only when the request completed.
func waitFor(ctx context.Context, c *client.Client, id string, timeout time.Duration, stdout, stderr io.Writer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	poll, last, seen := waitFirstPoll, "", erasure.RequestStatus("")
	timedOut := func() error {
		if seen == "" {
			return fmt.Errorf("request %s did not end within %s", id, timeout)
		}
		return fmt.Errorf("request %s did not end within %s: still %s", id, timeout, seen)
	}
	for {
		req, err := c.Request(ctx, id)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				return timedOut()
			}
			return err
		}
		seen = req.Status
		line := summary(req)
		switch req.Status {
		case erasure.RequestCompleted:
			fmt.Fprintln(stdout, line)
			return nil
		case erasure.RequestFailed, erasure.RequestCancelled:
			fmt.Fprintln(stdout, line)
			return fmt.Errorf("request %s %s%s", id, req.Status, firstFailure(req))
		}
		if line != last {
			fmt.Fprintln(stderr, line)
			last = line
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				return timedOut()
			}
			return ctx.Err()
		case <-time.After(poll):
		}
		poll = min(poll*3/2, waitMaxPoll)
	}
}

// firstFailure names the first failed task of a request and its error.
func firstFailure(req *erasure.Request) string {
	for _, t := range req.Tasks {
		if t.State == erasure.TaskFailed {
			return fmt.Sprintf(": %s: %s (run `erasure retry %s` once fixed)", t.Dataset, oneLineText(t.LastError, 200), req.ID)
		}
	}
	return ""
}

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return operate(ctx, "cancel", args, stdout, stderr, (*client.Client).Cancel)
}

func runRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return operate(ctx, "retry", args, stdout, stderr, (*client.Client).Retry)
}

func operate(ctx context.Context, name string, args []string, stdout, stderr io.Writer, action func(*client.Client, context.Context, string) (*erasure.Request, error)) error {
	id, err := oneID(name, args, stderr, nil)
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	req, err := action(c, ctx, id)
	if err != nil {
		return err
	}
	verb := map[string]string{"cancel": "cancelled", "retry": "retried"}[name]
	fmt.Fprintf(stdout, "%s %s; now %s\n", verb, req.ID, summary(req))
	return nil
}

func runDatasetsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("datasets list", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("usage: erasure datasets list")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	ds, err := c.Datasets(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tCONNECTOR\tMETHOD\tBACKLOG\tFAILURES\tLAST DONE")
	var backlog, failures int
	for _, d := range ds {
		last := "-"
		if d.Health.LastDone != nil {
			last = d.Health.LastDone.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.Name, d.Owner, d.Connector, d.Method, d.Health.Backlog, d.Health.Failures, last)
		backlog += d.Health.Backlog
		failures += d.Health.Failures
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d datasets, %d tasks in backlog, %d failed\n", len(ds), backlog, failures)
	return nil
}

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("audit verify", stderr)
	request := fs.String("request", "", "also count the events of this request (the whole chain is verified: it is one chain)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("usage: erasure audit verify [--request ID]")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	// The server verifies: the chain is keyed with the deployment's audit key.
	rep, err := c.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("audit trail BROKEN: %s (verified up to block %d, %d events, hash %s)", rep.Error, rep.Head.Block, rep.Head.Events, rep.Head.Hash)
	}
	if *request != "" {
		evs, err := c.Audit(ctx, erasure.AuditFilter{RequestID: *request})
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return erasure.Errorf(erasure.ENOTFOUND, "the audit trail (%d events, verified) has no event of request %s", rep.Head.Events, *request)
		}
		fmt.Fprintf(stdout, "request %s: %d events in the trail\n", *request, len(evs))
	}
	fmt.Fprintf(stdout, "audit trail ok: %d events in %d blocks, head %s\n", rep.Head.Events, rep.Head.Block, rep.Head.Hash)
	return nil
}
