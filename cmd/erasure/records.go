package main

// The record store commands: records archive | restore | reindex | reconcile | verify.
//
// All of them talk to the API (ERASURE_URL, ERASURE_TOKEN). Archive and restore move at most
// recordsCallLimit records per call and call again until nothing is left, so that each call is
// short, progress shows on stderr and an interrupted run is finished by running it again.
// Reindex streams from the API's NDJSON export (one streaming response per id-range segment,
// read in parallel) or, with --db, reads the SQLite database directly: the fastest path, for a
// reindex run on the server's machine (WAL lets it read while `erasure serve` writes).

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // --db

	"erasure"
	"erasure/client"
	"erasure/internal/words"
	"erasure/records"
	"erasure/reindex"
	"erasure/store/sqlrecords"
)

func init() {
	command("records archive", "move tombstones deleted before a date to the deleted partition: records archive --source S --deleted-before DATE [--dry-run] [--force]", runRecordsArchive)
	command("records restore", "move records back to live: records restore --source S ID... | --ids-file F | --deleted-after DATE [--dry-run]", runRecordsRestore)
	command("records reindex", "stream live records to a sink: records reindex [--source S] [--ids a,b|--limit N] --to stdout|file:PATH|nats:SUBJECT|http(s)://URL", runRecordsReindex)
	command("records reconcile", "tombstone live records absent from a hard-delete source: records reconcile --source S --present FILE [--control FILE] [--dry-run] [--force]", runRecordsReconcile)
	command("records verify", "check that live ∪ deleted matches the ledger and every move manifest: records verify [--source S]", runRecordsVerify)
}

// recordsCallLimit is how many records one archive or restore call moves.
const recordsCallLimit = 20000

func runRecordsArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("records archive", stderr)
	source := fs.String("source", "", "the record source (required)")
	before := fs.String("deleted-before", "", "move tombstones deleted before this date (2017-01-01) or RFC 3339 time (required)")
	dry := fs.Bool("dry-run", false, "report how many records and bytes would move, by year, and move nothing")
	force := fs.Bool("force", false, "move even when it is more than the configured share of the source's records")
	batch := fs.Int("batch", 0, "records per transaction (default 1000)")
	compact := fs.Bool("compact", false, "rebuild the live partition at the end so that reindexes read fewer pages (writes wait meanwhile)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("archive takes no arguments, only flags")
	}
	if *source == "" || *before == "" {
		return usageError("--source and --deleted-before are required")
	}
	body := records.ArchiveRequest{DeletedBefore: *before, DryRun: *dry, Force: *force, BatchSize: *batch, Limit: recordsCallLimit, Compact: *compact}
	return recordsMove(ctx, "archive", *source, body, stdout, stderr, func(rep *records.MoveReport) string {
		return fmt.Sprintf("archived %s of %s deleted before %s", words.Count(rep.Moved, "tombstone"), *source, *before)
	})
}

func runRecordsRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("records restore", stderr)
	source := fs.String("source", "", "the record source (required)")
	idsFile := fs.String("ids-file", "", "a file of record ids, one per line")
	after := fs.String("deleted-after", "", "restore every record of the source deleted at or after this date or RFC 3339 time")
	dry := fs.Bool("dry-run", false, "report what would move, and move nothing")
	batch := fs.Int("batch", 0, "records per transaction (default 1000)")
	ids, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *source == "" {
		return usageError("--source is required")
	}
	if *idsFile != "" {
		more, err := recordsReadIDs(*idsFile)
		if err != nil {
			return err
		}
		ids = append(ids, more...)
	}
	if (len(ids) == 0) == (*after == "") {
		return usageError("give record ids (arguments or --ids-file) or --deleted-after, not both")
	}
	if *after != "" {
		body := records.RestoreRequest{DeletedAfter: *after, DryRun: *dry, BatchSize: *batch, Limit: recordsCallLimit}
		return recordsMove(ctx, "restore", *source, body, stdout, stderr, func(rep *records.MoveReport) string {
			return fmt.Sprintf("restored %s of %s deleted after %s", words.Count(rep.Moved, "record"), *source, *after)
		})
	}
	// Ids go in chunks, each a call of its own.
	c, err := newClient()
	if err != nil {
		return err
	}
	p := newProgress(stderr, "restore", "ids")
	total := &records.MoveReport{}
	for i := 0; i < len(ids); i += recordsCallLimit {
		chunk := ids[i:min(i+recordsCallLimit, len(ids))]
		rep, err := c.RestoreRecords(ctx, *source, records.RestoreRequest{IDs: chunk, DryRun: *dry, BatchSize: *batch})
		if err != nil {
			return err
		}
		total.Candidates += rep.Candidates
		total.Moved += rep.Moved
		total.Batches += rep.Batches
		total.Bytes += rep.Bytes
		total.AlreadyLive += rep.AlreadyLive
		total.NotFound += rep.NotFound
		p.report(step{Done: int64(i + len(chunk)), Total: int64(len(ids))})
	}
	if *dry {
		p.finish(stdout, "dry run: would restore %s of %s (%s); %d already live, %d never seen", words.Count(total.Candidates, "record"), *source, words.Count(total.Bytes, "byte"), total.AlreadyLive, total.NotFound)
		return nil
	}
	p.finish(stdout, "restored %s of %s in %s; %d already live, %d never seen", words.Count(total.Moved, "record"), *source, words.Count(total.Batches, "batch"), total.AlreadyLive, total.NotFound)
	return nil
}

// recordsMove calls archive or restore until nothing is left, showing progress.
func recordsMove(ctx context.Context, what, source string, body any, stdout, stderr io.Writer, done func(*records.MoveReport) string) error {
	if err := records.ValidSource(source); err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	c.HTTP.Timeout = 0 // the last call may compact; ctx still bounds it
	p := newProgress(stderr, what, "records")
	total := &records.MoveReport{}
	var first int64 = -1
	for {
		var rep *records.MoveReport
		switch body := body.(type) {
		case records.ArchiveRequest:
			rep, err = c.ArchiveRecords(ctx, source, body)
		case records.RestoreRequest:
			rep, err = c.RestoreRecords(ctx, source, body)
		}
		if err != nil {
			return err
		}
		if rep.DryRun {
			recordsPrintYears(stdout, rep)
			p.finish(stdout, "dry run: %s would move %s of %s (%s, %.1f%% of its %s)", what, words.Count(rep.Candidates, "record"), source, words.Count(rep.Bytes, "byte"), 100*rep.Share, words.Count(rep.SourceRecords, "record"))
			return nil
		}
		if first < 0 {
			first = rep.Candidates
		}
		total.Moved += rep.Moved
		total.Batches += rep.Batches
		total.Checksum += rep.Checksum
		if rep.Compacted {
			total.Compacted, total.CompactTime = true, rep.CompactTime
		}
		p.report(step{Done: total.Moved, Total: first})
		if rep.Moved == 0 || rep.Remaining == 0 {
			break
		}
	}
	compacted := ""
	if total.Compacted {
		compacted = ", live partition compacted in " + total.CompactTime
	}
	p.finish(stdout, "%s in %s (%s, checksum %s%s)", done(total), words.Count(total.Batches, "batch"), p.elapsed().Round(time.Millisecond), total.Checksum, compacted)
	return nil
}

func recordsPrintYears(w io.Writer, rep *records.MoveReport) {
	if len(rep.ByYear) == 0 {
		return
	}
	fmt.Fprintf(w, "%-6s %12s %14s\n", "year", "records", "bytes")
	for _, y := range rep.ByYear {
		fmt.Fprintf(w, "%-6d %12d %14d\n", y.Year, y.Records, y.Bytes)
	}
}

// recordsReadIDs reads one id per line, skipping blank lines and # comments.
func recordsReadIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "%v", err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := records.ValidID(line); err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "%s:%d: %s", path, n, erasure.ErrorMessage(err))
		}
		ids = append(ids, line)
	}
	if err := sc.Err(); err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "%s: %v", path, err)
	}
	return ids, nil
}

func runRecordsReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("records reconcile", stderr)
	source := fs.String("source", "", "the record source (required)")
	present := fs.String("present", "", "a file of every id the source holds now, one per line (required)")
	control := fs.String("control", "", "a file of ids known to exist at the source; any missing from --present stops the reconcile")
	dry := fs.Bool("dry-run", false, "report how many records would be tombstoned, and change nothing")
	force := fs.Bool("force", false, "tombstone even more than the configured share of the source's live records")
	reason := fs.String("reason", "", "the tombstones' reason (default: absent at source)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("reconcile takes no arguments, only flags")
	}
	if *source == "" || *present == "" {
		return usageError("--source and --present are required")
	}
	if err := records.ValidSource(*source); err != nil {
		return err
	}
	body := records.ReconcileRequest{DryRun: *dry, Force: *force, Reason: *reason}
	var err error
	if body.Present, err = recordsReadIDs(*present); err != nil {
		return err
	}
	if *control != "" {
		if body.Control, err = recordsReadIDs(*control); err != nil {
			return err
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	c.HTTP.Timeout = 0 // a reconcile of a large source takes a while; ctx still bounds it
	rep, err := c.ReconcileRecords(ctx, *source, body)
	if err != nil {
		return err
	}
	if rep.DryRun {
		fmt.Fprintf(stdout, "dry run: reconcile would tombstone %d of %s of %s (%.1f%%)\n", rep.Candidates, words.Count(rep.SourceRecords, "live record"), *source, 100*rep.Share)
		return nil
	}
	fmt.Fprintf(stdout, "tombstoned %d of %s of %s absent from %s\n", rep.Moved, words.Count(rep.SourceRecords, "live record"), *source, *present)
	return nil
}

func runRecordsVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("records verify", stderr)
	source := fs.String("source", "", "verify one source (default: all)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("verify takes no arguments, only flags")
	}
	if *source != "" {
		if err := records.ValidSource(*source); err != nil {
			return err
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	c.HTTP.Timeout = 0
	rep, err := c.VerifyRecords(ctx, *source)
	if err != nil {
		return err
	}
	for _, s := range rep.Sources {
		fmt.Fprintf(stdout, "%-20s live %d (%d tombstones), deleted %d, checksum %s, ledger %d/%s, moves %d (%d intact)\n",
			s.Source, s.Live, s.LiveTombstones, s.Deleted, s.Checksum, s.LedgerCount, s.LedgerChecksum, s.Moves, s.MovesIntact)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "problem: %s\n", p)
	}
	if !rep.OK {
		return &erasure.Error{Code: erasure.EINTERNAL, Message: fmt.Sprintf("verify found %s in the record store", words.Count(len(rep.Problems), "problem")), Details: rep.Problems}
	}
	fmt.Fprintf(stdout, "verified %s: live ∪ deleted matches every ledger and manifest\n", words.Count(len(rep.Sources), "source"))
	return nil
}

func runRecordsReindex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("records reindex", stderr)
	source := fs.String("source", "", "reindex one source (default: all)")
	idList := fs.String("ids", "", "comma-separated record ids (specific mode; needs --source); ids may also be arguments")
	limit := fs.Int64("limit", 0, "stop after this many records (partial mode)")
	to := fs.String("to", "", "the sink: stdout, file:PATH, nats:SUBJECT or an http(s):// URL that receives NDJSON batches (required)")
	natsURL := fs.String("nats-url", recordsEnv("ERASURE_NATS_URL", "nats://127.0.0.1:4222"), "the NATS server of a nats: sink")
	batchRecords := fs.Int("batch-records", 1000, "at most this many records per batch")
	batchBytes := fs.Int("batch-bytes", 4<<20, "at most this many bytes per batch (a larger record travels alone)")
	parallel := fs.Int("parallel", 4, "segments read at once")
	checkpoint := fs.String("checkpoint", "", "a file to resume from after an interruption (kept until the reindex ends)")
	includeDeleted := fs.Bool("include-deleted", false, "also stream the deleted partition (for the deleted-record pipeline)")
	dbPath := fs.String("db", "", "read this SQLite database directly instead of the API (fastest; on the server's machine)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	ids, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *idList != "" {
		ids = append(ids, strings.Split(*idList, ",")...)
	}
	if *to == "" {
		return usageError("--to is required: stdout, file:PATH, nats:SUBJECT or an http(s):// URL")
	}
	if len(ids) > 0 && *limit > 0 {
		return usageError("--ids and --limit do not go together")
	}
	sink, err := recordsSink(*to, *natsURL, stdout)
	if err != nil {
		return err
	}
	var reader records.Reader
	if *dbPath != "" {
		s, closeDB, err := recordsOpenDB(ctx, *dbPath)
		if err != nil {
			sink.Close()
			return err
		}
		defer closeDB()
		reader = s
	} else {
		reader = &client.RecordsReader{BaseURL: recordsEnv("ERASURE_URL", "http://127.0.0.1:8080"), Token: os.Getenv("ERASURE_TOKEN"), HTTP: &http.Client{}}
	}
	o := records.ReindexOptions{Source: *source, IDs: ids, Limit: *limit, IncludeDeleted: *includeDeleted,
		BatchRecords: *batchRecords, BatchBytes: *batchBytes, Parallel: *parallel, Checkpoint: *checkpoint,
		Warn: func(m string) { fmt.Fprintln(stderr, "warning:", m) }}
	progressOut := stderr
	if *quiet {
		progressOut = io.Discard
	}
	prog := newProgress(progressOut, "reindex", "records")
	o.Progress = func(p records.Progress) {
		if !p.Done {
			prog.report(step{Done: p.Records, Total: p.Total, Elapsed: p.Elapsed, Note: fmt.Sprintf("%.1f MB", float64(p.Bytes)/1e6)})
		}
	}
	rep, err := reindex.Run(ctx, reader, sink, o)
	if cerr := sink.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if *checkpoint != "" {
			fmt.Fprintf(stderr, "reindex stopped; run the same command again to resume from %s\n", *checkpoint)
		}
		return err
	}
	what := "every source"
	if *source != "" {
		what = *source
	}
	resumed := ""
	if rep.Resumed {
		resumed = ", resumed"
	}
	prog.finish(stderr, "reindexed %d records of %s (%.1f MB in %d batches, %d segments%s) to %s in %s, %.0f records/s; %d ids not streamed",
		rep.Records, what, float64(rep.Bytes)/1e6, rep.Batches, rep.Segments, resumed, *to, rep.Elapsed.Round(time.Millisecond), recordsRateOf(rep), rep.Missing)
	return nil
}

func recordsRateOf(rep *records.ReindexReport) float64 {
	if s := rep.Elapsed.Seconds(); s > 0 {
		return float64(rep.Records) / s
	}
	return 0
}

func recordsEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// recordsSink builds the sink named by to.
func recordsSink(to, natsURL string, stdout io.Writer) (records.Sink, error) {
	switch {
	case to == "stdout" || to == "-":
		return reindex.NewJSONLSink(stdout, nil), nil
	case strings.HasPrefix(to, "file:"):
		path := strings.TrimPrefix(to, "file:")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "%v", err)
		}
		return reindex.NewJSONLSink(f, f), nil
	case strings.HasPrefix(to, "nats:"):
		return reindex.NewNATSSink(natsURL, strings.TrimPrefix(to, "nats:"))
	case strings.HasPrefix(to, "http://"), strings.HasPrefix(to, "https://"):
		s, err := reindex.NewHTTPSink(to)
		if err != nil {
			return nil, err
		}
		if tok := os.Getenv("ERASURE_SINK_TOKEN"); tok != "" {
			s.Header.Set("Authorization", "Bearer "+tok)
		}
		return s, nil
	}
	return nil, usageError(fmt.Sprintf("unknown sink %q: use stdout, file:PATH, nats:SUBJECT or an http(s):// URL", to))
}

// recordsOpenDB opens the record store of a SQLite database for reading: a read pool, and a
// write handle that the store uses only for its (already applied) migrations.
func recordsOpenDB(ctx context.Context, path string) (*sqlrecords.Store, func(), error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, erasure.Errorf(erasure.EINVALID, "--db: %v", err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, err
	}
	// Every connection stays open while the command runs: reopening one costs its page cache
	// and memory map.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	s, err := sqlrecords.Open(ctx, db, sqlrecords.Options{
		AppendAudit: func(context.Context, *sql.Tx, *erasure.AuditEvent) error {
			return erasure.Errorf(erasure.EINVALID, "a reindex does not write")
		},
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return s, func() { db.Close() }, nil
}
