package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"erasure"
	"erasure/client"
	"erasure/internal/strictjson"
)

// `erasure submit --file FILE` submits one erasure per line of a CSV or JSON lines file, in
// batches (POST /v1/requests:batch, one transaction each), with progress on stderr:
//
//	CSV         a header naming identifier types, and optionally the columns reason, deadline
//	            and idempotency_key; one subject per row (empty cells are left out; a type may
//	            head several columns for several values)
//	JSON lines  {"subject":{"user_id":"42","email":["a@x","b@x"]},"reason":…,"deadline":…,
//	            "idempotency_key":…} per line, as POST /v1/requests:batch takes it
//
// A line without a reason takes --reason; without an idempotency key, --idempotency-prefix
// and its line number (so that submitting the same file again returns the same requests
// instead of new ones), or none. A bad line is reported with its number and submits nothing;
// the others go on.

// fileLine is one submission read from the file, with its line (or row) number.
type fileLine struct {
	line int
	sub  client.BatchSubmission
	err  error // the line could not be read
}

// fileBatch is a batch read from the file and how far into the file it ends.
type fileBatch struct {
	lines []fileLine
	pos   int64
}

// submitFileOptions are the flags of submit --file.
type submitFileOptions struct {
	path, format, reason, prefix string
	deadline                     time.Time
	grace                        *time.Duration
	noSuppress                   bool
	batch, parallel              int
}

func submitFile(ctx context.Context, c *client.Client, o submitFileOptions, stdout, stderr io.Writer) error {
	f, err := os.Open(o.path)
	if err != nil {
		return erasure.Errorf(erasure.ENOTFOUND, "%s: %v", o.path, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	format := o.format
	if format == "" {
		switch ext := strings.ToLower(filepath.Ext(o.path)); ext {
		case ".csv":
			format = "csv"
		case ".jsonl", ".ndjson", ".json":
			format = "jsonl"
		default:
			return usageError(fmt.Sprintf("cannot tell the format of %s from its extension: give --format csv or jsonl", filepath.Base(o.path)))
		}
	}
	cr := &countingReader{r: f}
	var next func() (fileLine, bool)
	switch format {
	case "csv":
		next, err = csvLines(cr, o)
		if err != nil {
			return err
		}
	case "jsonl":
		next = jsonLines(cr, o)
	default:
		return usageError("--format must be csv or jsonl")
	}

	// Reading runs ahead of sending by one batch; up to o.parallel batches are in flight.
	batches := make(chan fileBatch, 1)
	go func() {
		defer close(batches)
		var b fileBatch
		for {
			l, ok := next()
			if !ok || ctx.Err() != nil {
				break
			}
			b.lines = append(b.lines, l)
			if len(b.lines) == o.batch {
				b.pos = cr.n
				select {
				case batches <- b:
				case <-ctx.Done():
					return
				}
				b = fileBatch{}
			}
		}
		if len(b.lines) > 0 {
			b.pos = cr.n
			batches <- b
		}
	}()

	p := newProgress(stderr, "submit "+filepath.Base(o.path), "")
	var (
		mu                         sync.Mutex
		created, existing, lines   int
		failed                     []string
		nFailed                    int
		done                       int64
		batchErr                   error
		shownFailures, maxFailures = 0, 20
	)
	fail := func(line int, msg string) {
		nFailed++
		if shownFailures < maxFailures {
			shownFailures++
			failed = append(failed, fmt.Sprintf("line %d: %s", line, msg))
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.parallel)
	for b := range batches {
		sem <- struct{}{}
		wg.Add(1)
		go func(b fileBatch) {
			defer wg.Done()
			defer func() { <-sem }()
			var subs []client.BatchSubmission
			var at []int
			mu.Lock()
			for i, l := range b.lines {
				lines++
				if l.err != nil {
					fail(l.line, erasure.ErrorMessage(l.err))
					continue
				}
				subs = append(subs, l.sub)
				at = append(at, i)
			}
			mu.Unlock()
			var res *client.BatchResult
			var err error
			if len(subs) > 0 {
				res, err = c.SubmitBatch(ctx, subs)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if batchErr == nil {
					batchErr = err
				}
				for _, i := range at {
					fail(b.lines[i].line, "not submitted: "+erasure.ErrorMessage(err))
				}
			} else if res != nil {
				for j, it := range res.Results {
					switch {
					case it.Status == 201:
						created++
					case it.Status == 200:
						existing++
					default:
						fail(b.lines[at[j]].line, erasure.ErrorMessage(it.Err()))
					}
				}
			}
			if b.pos > done {
				done = b.pos
			}
			p.report(step{Done: done, Total: st.Size(), Note: fmt.Sprintf("%d requests created, %d existing, %d failed", created, existing, nFailed)})
		}(b)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, msg := range failed {
		fmt.Fprintln(stderr, msg)
	}
	if nFailed > shownFailures {
		fmt.Fprintf(stderr, "… and %d more failures\n", nFailed-shownFailures)
	}
	elapsed := p.elapsed()
	rate := float64(created+existing) / max(elapsed.Seconds(), 1e-9)
	p.finish(stdout, "submitted %s: %d requests created, %d already there, %d failed, of %d lines in %s (%.0f requests/s)",
		filepath.Base(o.path), created, existing, nFailed, lines, elapsed.Round(time.Millisecond), rate)
	if batchErr != nil && created+existing == 0 {
		return batchErr
	}
	if nFailed > 0 {
		return erasure.Errorf(erasure.EINVALID, "%s of %d not submitted (see above)", plural(nFailed, "line"), lines)
	}
	return nil
}

// countingReader counts the bytes read from the file, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// withDefaults fills what a line leaves out from the flags.
func withDefaults(sub *client.BatchSubmission, o submitFileOptions, line int) {
	if sub.Submission.Reason == "" {
		sub.Submission.Reason = o.reason
	}
	if sub.Submission.Deadline.IsZero() {
		sub.Submission.Deadline = o.deadline
	}
	sub.Submission.Grace = o.grace
	sub.Submission.NoSuppress = o.noSuppress
	if sub.IdempotencyKey == "" && o.prefix != "" {
		sub.IdempotencyKey = fmt.Sprintf("%s:%d", o.prefix, line)
	}
}

// jsonLines reads JSON lines; blank lines are skipped.
func jsonLines(r io.Reader, o submitFileOptions) func() (fileLine, bool) {
	br := bufio.NewReaderSize(r, 1<<20)
	n := 0
	return func() (fileLine, bool) {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) == 0 && err != nil {
				return fileLine{}, false
			}
			n++
			b = bytes.TrimSpace(b)
			if len(b) == 0 {
				continue
			}
			l := fileLine{line: n}
			var w struct {
				Subject        map[string]json.RawMessage `json:"subject"`
				Reason         string                     `json:"reason"`
				Deadline       string                     `json:"deadline"`
				IdempotencyKey string                     `json:"idempotency_key"`
			}
			// Strictly, as the API reads its bodies: a duplicate key (two subjects, the last one
			// winning), a misspelt field name or invalid UTF-8 is refused, never guessed at.
			if err := strictjson.Unmarshal(b, &w); err != nil {
				l.err = erasure.Errorf(erasure.EINVALID, "not a submission as JSON (%s)", erasure.ErrorMessage(err))
				return l, true
			}
			var ids []erasure.Identifier
			for typ, raw := range w.Subject {
				var one string
				var many []string
				switch {
				case json.Unmarshal(raw, &one) == nil:
					ids = append(ids, erasure.Identifier{Type: typ, Value: one})
				case json.Unmarshal(raw, &many) == nil:
					for _, v := range many {
						ids = append(ids, erasure.Identifier{Type: typ, Value: v})
					}
				default:
					l.err = erasure.Errorf(erasure.EINVALID, "identifier %s: expected a string or an array of strings", truncateArg(typ))
					return l, true
				}
			}
			l.sub = client.BatchSubmission{Submission: erasure.Submission{Subject: erasure.NewSubject(ids...), Reason: w.Reason}, IdempotencyKey: w.IdempotencyKey}
			if w.Deadline != "" {
				d, err := time.Parse(time.RFC3339Nano, w.Deadline)
				if err != nil {
					l.err = erasure.Errorf(erasure.EINVALID, "deadline %q is not an RFC 3339 time", truncateArg(w.Deadline))
					return l, true
				}
				l.sub.Submission.Deadline = d
			}
			withDefaults(&l.sub, o, n)
			return l, true
		}
	}
}

// csvLines reads a CSV file with a header; rows are numbered as lines of the file (the header
// is line 1).
func csvLines(r io.Reader, o submitFileOptions) (func() (fileLine, bool), error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "%s: no CSV header naming identifier types (such as user_id,email)", filepath.Base(o.path))
	}
	cols := append([]string(nil), header...)
	types := 0
	for i, h := range cols {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		cols[i] = h
		switch h {
		case "reason", "deadline", "idempotency_key":
		default:
			if !erasure.ValidIdentifierType(h) {
				return nil, erasure.Errorf(erasure.EINVALID, "%s: column %q is neither an identifier type nor reason, deadline or idempotency_key", filepath.Base(o.path), truncateArg(h))
			}
			types++
		}
	}
	if types == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "%s: the header names no identifier type", filepath.Base(o.path))
	}
	return func() (fileLine, bool) {
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				return fileLine{}, false
			}
			line, _ := cr.FieldPos(0)
			l := fileLine{line: line}
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					l.line = pe.Line
					l.err = erasure.Errorf(erasure.EINVALID, "malformed CSV: %v", pe.Err)
					return l, true
				}
				return fileLine{}, false
			}
			if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
				continue // a blank line
			}
			if len(rec) != len(cols) {
				l.err = erasure.Errorf(erasure.EINVALID, "%d fields, the header has %d", len(rec), len(cols))
				return l, true
			}
			var ids []erasure.Identifier
			for i, v := range rec {
				switch cols[i] {
				case "reason":
					l.sub.Submission.Reason = v
				case "deadline":
					if v != "" {
						d, err := time.Parse(time.RFC3339Nano, v)
						if err != nil {
							l.err = erasure.Errorf(erasure.EINVALID, "deadline %q is not an RFC 3339 time", truncateArg(v))
							return l, true
						}
						l.sub.Submission.Deadline = d
					}
				case "idempotency_key":
					l.sub.IdempotencyKey = v
				default:
					if v != "" {
						ids = append(ids, erasure.Identifier{Type: cols[i], Value: v})
					}
				}
			}
			l.sub.Submission.Subject = erasure.NewSubject(ids...)
			withDefaults(&l.sub, o, line)
			return l, true
		}
	}, nil
}
