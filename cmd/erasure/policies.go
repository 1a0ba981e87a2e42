package main

// The policy commands: legal holds, the suppression list, retention and replay, through the
// API (ERASURE_URL, ERASURE_TOKEN); `suppressions key` reads the configuration.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/registry"
)

func init() {
	command("holds add", "place a legal hold: holds add TYPE:VALUE (--datasets A,B | --all) --reason R (needs operate)", runHoldsAdd)
	command("holds list", "list the legal holds in force: holds list [--all]", runHoldsList)
	command("holds release", "release a legal hold: its tasks run: holds release ID (needs operate)", runHoldsRelease)
	command("suppressions check", "are these identifiers suppressed (erased: do not ingest again)? suppressions check TYPE:VALUE...", runSuppressionsCheck)
	command("suppressions export", "export the suppression list: suppressions export [--format hashes|bloom] [--type T] [-o FILE] (needs operate)", runSuppressionsExport)
	command("suppressions unsuppress", "take identifiers off the suppression list: suppressions unsuppress TYPE:VALUE... --reason R (audited; needs operate)", runSuppressionsUnsuppress)
	command("suppressions key", "print the key services hash identifiers with to check the list locally: suppressions key --config FILE", runSuppressionsKey)
	command("retention run", "run a dataset's retention now: retention run DATASET [--dry-run] (needs operate)", runRetentionRun)
	command("retention list", "list a dataset's retention runs: retention list DATASET [--limit N]", runRetentionList)
	command("replay", "re-apply the erasures completed since a backup to the dataset restored from it: replay DATASET --since DATE [--dry-run] [--no-wait]", runReplay)
}

// identifierArgs reads TYPE:VALUE (or TYPE=VALUE) arguments.
func identifierArgs(pos []string) ([]erasure.Identifier, error) {
	if len(pos) == 0 {
		return nil, usageError("give identifiers as TYPE:VALUE, such as email:a@example.com")
	}
	out := make([]erasure.Identifier, len(pos))
	for i, a := range pos {
		typ, value, ok := strings.Cut(a, ":")
		if t2, v2, ok2 := strings.Cut(a, "="); ok2 && (!ok || len(t2) < len(typ)) {
			typ, value, ok = t2, v2, true
		}
		if !ok || typ == "" || value == "" {
			return nil, usageError(fmt.Sprintf("argument %d is not TYPE:VALUE", i+1))
		}
		id := erasure.Identifier{Type: typ, Value: value}
		if err := id.Validate(); err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

func runHoldsAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("holds add", stderr)
	datasets := fs.String("datasets", "", "the datasets held, separated by commas")
	all := fs.Bool("all", false, "hold every dataset")
	reason := fs.String("reason", "", "why: a case or ticket reference (required; never an identifier)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("usage: erasure holds add TYPE:VALUE (--datasets A,B | --all) --reason R")
	}
	ids, err := identifierArgs(pos)
	if err != nil {
		return err
	}
	var names []string
	for _, d := range strings.Split(*datasets, ",") {
		if d = strings.TrimSpace(d); d != "" {
			names = append(names, d)
		}
	}
	if *all == (len(names) > 0) {
		return usageError("give --datasets A,B or --all")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	h, err := c.AddHold(ctx, ids[0], names, *all, *reason)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h.ID)
	fmt.Fprintf(stderr, "hold %s placed on %s for %s: its tasks wait, held, until `erasure holds release %s`\n", h.ID, h.Identifier, holdScope(h), h.ID)
	return nil
}

func holdScope(h *erasure.Hold) string {
	if h.All {
		return "every dataset"
	}
	return strings.Join(h.Datasets, ", ")
}

func runHoldsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("holds list", stderr)
	all := fs.Bool("all", false, "list released holds too")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("usage: erasure holds list [--all]")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	hs, err := c.Holds(ctx, *all)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tIDENTIFIER\tDATASETS\tPLACED\tBY\tRELEASED\tREASON")
	for _, h := range hs {
		released := "-"
		if h.ReleasedAt != nil {
			released = h.ReleasedAt.Format(time.RFC3339) + " by " + h.ReleasedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Identifier, holdScope(&h), h.CreatedAt.Format(time.RFC3339), h.CreatedBy, released, oneLineText(h.Reason, 60))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d holds\n", len(hs))
	return nil
}

func runHoldsRelease(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	id, err := oneID("holds release", args, stderr, nil)
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	h, err := c.ReleaseHold(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hold %s released: the tasks it held run unless another hold covers them\n", h.ID)
	return nil
}

func runSuppressionsCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("suppressions check", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ids, err := identifierArgs(pos)
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	got, err := c.CheckSuppressed(ctx, ids)
	if err != nil {
		return err
	}
	n := 0
	for i, id := range ids {
		state := "not suppressed"
		if got[i] {
			state, n = "SUPPRESSED", n+1
		}
		// Identifiers are named by their place on the command line, not their value.
		fmt.Fprintf(stdout, "#%d %s: %s\n", i+1, id.Type, state)
	}
	fmt.Fprintf(stdout, "%d of %d identifiers suppressed\n", n, len(ids))
	return nil
}

func runSuppressionsExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("suppressions export", stderr)
	format := fs.String("format", "hashes", "hashes (one keyed hash per line) or bloom (a Bloom filter, JSON)")
	typ := fs.String("type", "", "only this identifier type")
	fp := fs.Float64("fp-rate", 0, "bloom: the false-positive rate to size the filter for (default 0.001)")
	out := fs.String("o", "", "write to this file (default: stdout)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || (*format != "hashes" && *format != "bloom") {
		return usageError("usage: erasure suppressions export [--format hashes|bloom] [--type T] [--fp-rate F] [-o FILE]")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	body, err := c.ExportSuppressions(ctx, *format, *typ, *fp)
	if err != nil {
		return err
	}
	defer body.Close()
	var w io.Writer = stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, body)
	if err != nil {
		return fmt.Errorf("export cut short after %s: %w", bytesText(n), err)
	}
	if *out != "" {
		fmt.Fprintf(stdout, "suppression list (%s) written to %s: %s\n", *format, *out, bytesText(n))
	}
	return nil
}

func runSuppressionsUnsuppress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("suppressions unsuppress", stderr)
	reason := fs.String("reason", "", "why (required; audited)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	ids, err := identifierArgs(pos)
	if err != nil {
		return err
	}
	if *reason == "" {
		return usageError("--reason is required: unsuppress is an audited operator action")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	got, err := c.Unsuppress(ctx, ids, *reason)
	if err != nil {
		return err
	}
	n := 0
	for i, id := range ids {
		state := "was not on the list"
		if got[i] {
			state, n = "removed", n+1
		}
		fmt.Fprintf(stdout, "#%d %s: %s\n", i+1, id.Type, state)
	}
	fmt.Fprintf(stdout, "%d of %d identifiers taken off the suppression list\n", n, len(ids))
	return nil
}

func runSuppressionsKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("suppressions key", stderr)
	cfgPath := fs.String("config", "erasure.yaml", "the configuration file")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("usage: erasure suppressions key --config FILE")
	}
	cfg, err := registry.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Suppression.Key != "" {
		fmt.Fprintln(stdout, strings.TrimSpace(cfg.Suppression.Key))
		fmt.Fprintln(stderr, "the key of suppression.key; hash as docs/suppression.md says")
		return nil
	}
	if _, err := os.Stat(filepath.Join(cfg.Server.DataDir, "audit.key")); cfg.Audit.Key == "" && err != nil {
		return erasure.Errorf(erasure.ENOTFOUND, "no audit key in %s yet: start the server once, or set audit.key", cfg.Server.DataDir)
	}
	key, err := audit.LoadKey(cfg.Audit.Key, cfg.Server.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hex.EncodeToString(audit.SuppressionKey(key)))
	fmt.Fprintln(stderr, "derived from the audit key (which it does not reveal); hash as docs/suppression.md says")
	return nil
}

func retentionLine(r *erasure.RetentionRun) string {
	took := ""
	if r.Finished != nil {
		took = " in " + r.Finished.Sub(r.Started).Round(time.Millisecond).String()
	}
	what := fmt.Sprintf("%d rows older than %s, %d removed", r.Expired, r.Cutoff.Format(time.RFC3339), r.Removed)
	if r.DryRun {
		what = fmt.Sprintf("dry run: %d rows older than %s would be removed", r.Expired, r.Cutoff.Format(time.RFC3339))
	}
	s := fmt.Sprintf("retention run %s of %s %s%s: %s", r.ID, r.Dataset, r.State, took, what)
	if r.Error != "" {
		s += ": " + r.Error
	}
	return s
}

func runRetentionRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("retention run", stderr)
	dry := fs.Bool("dry-run", false, "count the rows past their retention, remove nothing")
	pos, err := sweepArgs("retention run", fs, args, 1, "DATASET [--dry-run]")
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	run, err := c.RunRetention(ctx, pos[0], *dry)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, retentionLine(run))
	return nil
}

func runRetentionList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("retention list", stderr)
	limit := fs.Int("limit", 20, "how many runs to show, newest first (1..500)")
	pos, err := sweepArgs("retention list", fs, args, 1, "DATASET [--limit N]")
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
	runs, err := c.RetentionRuns(ctx, pos[0], *limit)
	if err != nil {
		return err
	}
	for i := range runs {
		fmt.Fprintln(stdout, retentionLine(&runs[i]))
	}
	fmt.Fprintf(stdout, "%d runs\n", len(runs))
	return nil
}

// replayPoll is how often `replay` asks for progress.
var replayPoll = 500 * time.Millisecond

func replayLine(r *erasure.Replay) string {
	var s string
	switch r.Method {
	case "escrow":
		s = fmt.Sprintf("replay %s of %s %s: %d erased subjects since %s in the escrow, %d submitted again, %d beyond reach (escrow period ended)",
			r.ID, r.Dataset, r.State, r.Subjects, r.Since.Format(time.RFC3339), r.Submitted, r.Destroyed)
	default:
		s = fmt.Sprintf("replay %s of %s %s: %d requests completed since %s, %d keys scanned, %d matched, %d rows removed",
			r.ID, r.Dataset, r.State, r.Subjects, r.Since.Format(time.RFC3339), r.Scanned, r.Matched, r.Removed)
	}
	if r.DryRun {
		s += " (dry run: nothing removed)"
	}
	if r.Error != "" {
		s += ": " + r.Error
	}
	return s
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("replay", stderr)
	since := fs.String("since", "", "when the backup the dataset was restored from was taken: an RFC 3339 time or a date (2026-01-31) (required)")
	dry := fs.Bool("dry-run", false, "count what would be removed, remove nothing")
	noWait := fs.Bool("no-wait", false, "return once the replay started; follow it with GET /v1/replays/DATASET")
	pos, err := sweepArgs("replay", fs, args, 1, "DATASET --since DATE [--dry-run]")
	if err != nil {
		return err
	}
	if *since == "" {
		return usageError("--since is required: the time the backup was taken")
	}
	t, err := time.Parse(time.RFC3339, *since)
	if err != nil {
		if t, err = time.Parse("2006-01-02", *since); err != nil {
			return usageError(fmt.Sprintf("--since %q is neither an RFC 3339 time nor a date such as 2026-01-31", *since))
		}
	}
	ds := pos[0]
	c, err := newClient()
	if err != nil {
		return err
	}
	rp, err := c.StartReplay(ctx, ds, t, *dry)
	if err != nil {
		return err
	}
	if *noWait {
		fmt.Fprintf(stdout, "replay %s of %s started (%s)\n", rp.ID, ds, rp.Method)
		return nil
	}
	fmt.Fprintf(stderr, "replay %s of %s started: by %s\n", rp.ID, ds, rp.Method)
	prog := newProgress(stderr, ds, "keys")
	for {
		rs, err := c.Replays(ctx, ds)
		if err != nil {
			return err
		}
		for i := range rs {
			r := &rs[i]
			if r.ID != rp.ID {
				continue
			}
			if r.State != erasure.ReplayRunning {
				prog.finish(stdout, "%s", replayLine(r))
				if r.State == erasure.ReplayFailed {
					return errors.New("the replay failed")
				}
				return nil
			}
			if p := r.Progress; p != nil {
				prog.report(step{Done: p.Scanned, Total: p.Total, Note: fmt.Sprintf("%d matched, %d rows removed", p.Matched, p.Removed)})
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(replayPoll):
		}
	}
}
