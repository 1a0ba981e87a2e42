package main

// The client commands: they talk to the API at ERASURE_URL with ERASURE_TOKEN.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/client"
	"erasure/internal/words"
)

func init() {
	command("submit", "submit an erasure: submit TYPE=VALUE... [--reason R] [--deadline T|30d] [--grace 72h] [--no-suppress] [--idempotency-key K] [--wait]; or one per line: submit --file subjects.csv|.jsonl [--batch N] [--idempotency-prefix P]", runSubmit)
	command("status", "show a request and its tasks (ID may be a unique prefix): status ID", runStatus)
	command("wait", "wait until a request ends (ID may be a unique prefix): wait ID [--timeout D]; exits 0 only when it completed", runWait)
	command("cancel", "cancel a request's unfinished tasks (ID may be a unique prefix): cancel ID", runCancel)
	command("retry", "re-open a request's failed tasks (ID may be a unique prefix): retry [--force] ID (--force lifts tripped guards)", runRetry)
	command("datasets list", "list the registered datasets with their health", runDatasetsList)
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
	wait := fs.Bool("wait", false, "wait until the request ends, showing its progress and outcome on stderr; exits 0 only when it completed (the token needs the read role too)")
	timeout := fs.Duration("timeout", 0, "with --wait, give up after this long (0: no limit)")
	grace := fs.String("grace", "", "the grace window: the erasure waits this long (72h, 3d; 0s for none) and the submitter may withdraw it with `cancel` meanwhile (default: the registry's)")
	noSuppress := fs.Bool("no-suppress", false, "keep the subject off the suppression list once erased")
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
		o := submitFileOptions{path: *file, format: *format, reason: *reason, prefix: *prefix, batch: *batch, parallel: *parallel, noSuppress: *noSuppress}
		if *grace != "" {
			g, err := parseGrace(*grace)
			if err != nil {
				return err
			}
			o.grace = &g
		}
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
	sub := erasure.Submission{Subject: erasure.NewSubject(ids...), Reason: *reason, NoSuppress: *noSuppress}
	if *grace != "" {
		g, err := parseGrace(*grace)
		if err != nil {
			return err
		}
		sub.Grace = &g
	}
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
	// stdout holds the id alone (id=$(erasure submit ...)); everything else goes to stderr.
	fmt.Fprintln(stdout, req.ID)
	if created {
		fmt.Fprintf(stderr, "submitted %s: %s, %s planned, deadline %s\n", req.ID, words.Count(len(sub.Subject), "identifier"), words.Count(len(req.Tasks), "task"), req.Deadline.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stderr, "%s was already submitted with this idempotency key: %s\n", req.ID, summary(req))
	}
	if !*wait {
		return nil
	}
	return waitFor(ctx, c, req.ID, *timeout, stderr, stderr)
}

// parseGrace reads a grace window: a Go duration or days (3d); 0 or 0s is none.
func parseGrace(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 90 {
			return 0, usageError(fmt.Sprintf("--grace %q: days must be a whole number from 0 to 90", s))
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usageError(fmt.Sprintf("--grace %q is not a delay such as 72h or 3d", s))
	}
	return d, nil
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
	if id, err = requestID(ctx, c, id); err != nil {
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
	fmt.Fprintf(stdout, "request %s  status %s  overdue %s  deadline %s  reason %q  submitted %s by %s\n",
		req.ID, req.Status, overdue, req.Deadline.Format(time.RFC3339), req.Reason, req.CreatedAt.Format(time.RFC3339), req.SubmittedBy)
	if req.NotBefore != nil && req.Status == erasure.RequestScheduled {
		fmt.Fprintf(stdout, "grace window until %s: the submitter may still withdraw it with `erasure cancel %s`\n", req.NotBefore.Format(time.RFC3339), req.ID)
	}
	if req.OverdueReason != "" {
		fmt.Fprintf(stdout, "overdue because %s\n", req.OverdueReason)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET\tKIND\tMETHOD\tSTATUS\tATTEMPTS\tREMOVED\tVERIFIED\tLAST ERROR")
	for _, t := range req.Tasks {
		verified := "-"
		if t.VerifiedAt != nil {
			verified = t.VerifiedAt.Format(time.RFC3339)
		}
		last := oneLineText(t.LastError, 80)
		if len(t.HeldBy) > 0 {
			last = "held by " + strings.Join(t.HeldBy, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", t.Dataset, t.Kind, t.Method, t.State, t.Attempts, t.Removed, verified, last)
	}
	tw.Flush()
	fmt.Fprint(stdout, nothingFound(req))
	fmt.Fprintln(stdout, summary(req))
	return nil
}

// requestID returns the request id that arg names: arg itself when it is a whole id, else the
// one id it is a unique prefix of (the server says which; ECONFLICT when several match).
func requestID(ctx context.Context, c *client.Client, arg string) (string, error) {
	arg = strings.TrimSuffix(arg, "…") // as progress lines show them
	if len(arg) == 28 && strings.HasPrefix(arg, "r_") || !idPrefixRE.MatchString(arg) {
		return arg, nil // a whole id, or no id the server makes: the server answers for it
	}
	return c.ResolveRequestID(ctx, arg)
}

// idPrefixRE matches what may start a request id ("r_" may be left out).
var idPrefixRE = regexp.MustCompile(`^(r_)?[0-9a-hjkmnp-tv-z]{1,26}$`)

// nothingFound lists, for a completed request that erased nothing, why each dataset had
// nothing (its task's note: skipped for want of an identifier, nothing there...), one line
// each; "" otherwise.
func nothingFound(req *erasure.Request) string {
	if req.Status != erasure.RequestCompleted || req.Found == nil || *req.Found {
		return ""
	}
	var b strings.Builder
	for _, t := range req.Tasks {
		if t.Kind != erasure.TaskErase {
			continue
		}
		why := oneLineText(t.Note, 120)
		if why == "" {
			why = "nothing there"
		}
		fmt.Fprintf(&b, "  %s: %s\n", t.Dataset, why)
	}
	return b.String()
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
	if req.Status == erasure.RequestCompleted && req.Found != nil && !*req.Found {
		datasets := map[string]bool{}
		for _, t := range req.Tasks {
			datasets[t.Dataset] = true
		}
		s := fmt.Sprintf("%s completed: nothing found in %s", req.ID, words.Count(len(datasets), "dataset"))
		if req.Overdue {
			s += ", OVERDUE"
		}
		return s
	}
	s := fmt.Sprintf("%s %s: %d of %s done", req.ID, req.Status, done, words.Count(len(req.Tasks), "task"))
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
	if id, err = requestID(ctx, c, id); err != nil {
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
			fmt.Fprint(stdout, nothingFound(req))
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
	var force bool
	id, err := oneID("retry", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "run the tasks that stopped at their dataset's guard (max_removed) again without it; audited")
	})
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	req, err := c.RetryWith(ctx, id, erasure.RetryOptions{OverrideGuard: force})
	if err != nil {
		return err
	}
	verb := "retried"
	if force {
		verb = "retried past the guard"
	}
	fmt.Fprintf(stdout, "%s %s; now %s\n", verb, req.ID, summary(req))
	return nil
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
	if id, err = requestID(ctx, c, id); err != nil {
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
	fmt.Fprintln(tw, "NAME\tOWNER\tCONNECTOR\tMETHOD\tBACKLOG\tFAILURES\tLAST DONE\tFAILED ATTEMPTS (15m)\tFAILING SINCE\tCANARY\tLAST ERROR")
	var backlog, failures, failing, canariesFailed int
	for _, d := range ds {
		h := d.Health
		last, since := "-", "-"
		if h.LastDone != nil {
			last = h.LastDone.Format(time.RFC3339)
		}
		if h.FailingSince != nil {
			since = h.FailingSince.Format(time.RFC3339)
			failing++
		}
		canary := "-"
		switch c := d.Canary; {
		case c == nil:
		case c.Started.IsZero():
			canary = "never run"
		case c.OK:
			canary = "ok"
		default:
			canary = "failed"
			canariesFailed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", d.Name, d.Owner, d.Connector, d.Method, h.Backlog, h.Failures, last,
			h.FailedAttempts, since, canary, oneLineText(h.LastError, 80))
		backlog += h.Backlog
		failures += h.Failures
	}
	tw.Flush()
	line := fmt.Sprintf("%s, %s in backlog, %d failed", words.Count(len(ds), "dataset"), words.Count(backlog, "task"), failures)
	if failing > 0 {
		line += fmt.Sprintf("; %d failing now", failing)
	}
	if canariesFailed > 0 {
		line += fmt.Sprintf("; %s failing", words.Count(canariesFailed, "canary"))
	}
	fmt.Fprintln(stdout, line)
	return nil
}
