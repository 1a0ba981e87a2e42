package main

// The canary commands: synthetic erasures through the API (ERASURE_URL, ERASURE_TOKEN).

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"erasure"
)

func init() {
	command("canary run", "run the datasets' canaries now, to their end: canary run [DATASET]; exits 1 when one fails (needs operate)", runCanaryRun)
	command("canary list", "show the last canary of every dataset with one", runCanaryList)
}

func runCanaryRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("canary run", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("usage: erasure canary run [DATASET]")
	}
	ds := ""
	if len(pos) == 1 {
		ds = pos[0]
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	res, err := c.RunCanaries(ctx, ds)
	if err != nil {
		return err
	}
	return printCanaries(stdout, res, true)
}

func runCanaryList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("canary list", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("usage: erasure canary list")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	res, err := c.Canaries(ctx)
	if err != nil {
		return err
	}
	return printCanaries(stdout, res, false)
}

// printCanaries prints a table of canary results and a last line; for a run, an error (exit 1)
// when one failed.
func printCanaries(w io.Writer, res []erasure.CanaryResult, run bool) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET\tRESULT\tSTARTED\tTOOK\tREQUEST\tREASON")
	passed, failed, never := 0, 0, 0
	for _, r := range res {
		result, started, took := "failed", "-", "-"
		switch {
		case r.Started.IsZero():
			result = "never run"
			never++
		case r.OK:
			result = "ok"
			passed++
		default:
			result = "failed at " + string(r.Stage)
			failed++
		}
		if !r.Started.IsZero() {
			started = r.Started.Format(time.RFC3339)
			took = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
		}
		req := r.RequestID
		if req == "" {
			req = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Dataset, result, started, took, req, oneLineText(r.Reason, 300))
	}
	tw.Flush()
	summary := fmt.Sprintf("%d canaries: %d passed, %d failed", len(res), passed, failed)
	if never > 0 {
		summary += fmt.Sprintf(", %d never run", never)
	}
	fmt.Fprintln(w, summary)
	if run && failed > 0 {
		return fmt.Errorf("%d of %d canaries failed", failed, len(res))
	}
	return nil
}
