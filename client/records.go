package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"erasure"
	"erasure/records"
)

// RecordsReader is a records.Reader over the API (GET /v1/records/:sources, {source}:segments
// and {source}:export), so that `erasure records reindex` works from any machine with a read
// token. Each segment is one streaming NDJSON response. The API's errors come back as
// *erasure.Error with its code, failures to reach it as EUNAVAILABLE.
type RecordsReader struct {
	// BaseURL is the API address, such as http://127.0.0.1:8080.
	BaseURL string
	Token   string
	// HTTP is the client; it should have no overall timeout (exports stream for long).
	HTTP *http.Client
}

var _ records.Reader = (*RecordsReader)(nil)

func (c *RecordsReader) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "bad API address %q", c.BaseURL)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "cannot reach the erasure API at %s: %v", c.BaseURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
			return nil, &erasure.Error{Code: body.Error.Code, Message: body.Error.Message}
		}
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "the API answered %s to GET %s", resp.Status, path)
	}
	return resp, nil
}

func (c *RecordsReader) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "the answer to GET %s is not the JSON expected: %v", path, err)
	}
	return nil
}

// Sources implements records.Reader.
func (c *RecordsReader) Sources(ctx context.Context) ([]string, error) {
	var out struct {
		Sources []string `json:"sources"`
	}
	err := c.getJSON(ctx, "/v1/records/:sources", nil, &out)
	return out.Sources, err
}

// Segments implements records.Reader.
func (c *RecordsReader) Segments(ctx context.Context, partition, source string, n int) ([]records.Segment, int64, error) {
	if err := records.ValidSource(source); err != nil {
		return nil, 0, err
	}
	var out struct {
		Records  int64             `json:"records"`
		Segments []records.Segment `json:"segments"`
	}
	err := c.getJSON(ctx, "/v1/records/"+source+":segments", url.Values{"n": {strconv.Itoa(n)}, "partition": {partition}}, &out)
	return out.Segments, out.Records, err
}

// ScanLines implements records.Reader.
func (c *RecordsReader) ScanLines(ctx context.Context, partition string, seg records.Segment, after string, limit int64, fn func(id string, line []byte) error) error {
	if err := records.ValidSource(seg.Source); err != nil {
		return err
	}
	q := url.Values{"partition": {partition}}
	if seg.From != "" {
		q.Set("from", seg.From)
	}
	if after != "" {
		q.Set("after", after)
	}
	if seg.Before != "" {
		q.Set("before", seg.Before)
	}
	if limit > 0 {
		q.Set("limit", strconv.FormatInt(limit, 10))
	}
	resp, err := c.get(ctx, "/v1/records/"+seg.Source+":export", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 256<<10), 64<<20)
	var head struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	for sc.Scan() {
		line := sc.Bytes()
		head.ID, head.Error = "", ""
		if err := json.Unmarshal(line, &head); err != nil {
			return erasure.Errorf(erasure.EUNAVAILABLE, "export of %s: a line is not JSON: %v", seg.Source, err)
		}
		if head.ID == "" {
			return erasure.Errorf(erasure.EUNAVAILABLE, "export of %s stopped: %s", seg.Source, head.Error)
		}
		if err := fn(head.ID, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return erasure.Errorf(erasure.EUNAVAILABLE, "export of %s: %v", seg.Source, err)
	}
	return nil
}

// Lookup implements records.Reader: it exports one record from the id on, in live then deleted.
func (c *RecordsReader) Lookup(ctx context.Context, source, id string) ([]byte, string, bool, error) {
	for _, part := range []string{records.Live, records.Deleted} {
		var found []byte
		err := c.ScanLines(ctx, part, records.Segment{Source: source, From: id}, "", 1, func(got string, line []byte) error {
			if got == id {
				found = bytes.Clone(line)
			}
			return nil
		})
		if err != nil {
			return nil, "", false, fmt.Errorf("lookup: %w", err)
		}
		if found != nil {
			return found, part, true, nil
		}
	}
	return nil, "", false, nil
}

// The record store's routes (see api.RecordsHandler); their bodies are the records package's.

func recordsPath(source, rest string) string {
	return "/v1/records/" + url.PathEscape(source) + rest
}

// ArchiveRecords moves the source's tombstones deleted before req.DeletedBefore to the deleted
// partition, at most req.Limit of them when it is set (call again until Remaining is 0), or
// with req.DryRun reports what would move. ECONFLICT when more than the configured share would
// move without req.Force. Bounded by ctx, not c.HTTP's timeout. Needs operate.
func (c *Client) ArchiveRecords(ctx context.Context, source string, req records.ArchiveRequest) (*records.MoveReport, error) {
	return c.moveRecords(ctx, source, "/archive", req)
}

// RestoreRecords moves records of the source back to live: req.IDs, or every record deleted
// after req.DeletedAfter (at most req.Limit per call). Bounded by ctx. Needs operate.
func (c *Client) RestoreRecords(ctx context.Context, source string, req records.RestoreRequest) (*records.MoveReport, error) {
	return c.moveRecords(ctx, source, "/restore", req)
}

// ReconcileRecords tombstones the source's live records absent from req.Present; EINVALID when
// an id of req.Control is absent, ECONFLICT beyond the configured share without req.Force.
// Bounded by ctx. Needs operate.
func (c *Client) ReconcileRecords(ctx context.Context, source string, req records.ReconcileRequest) (*records.MoveReport, error) {
	return c.moveRecords(ctx, source, "/reconcile", req)
}

func (c *Client) moveRecords(ctx context.Context, source, what string, body any) (*records.MoveReport, error) {
	rep := new(records.MoveReport)
	if _, err := c.untimed().do(ctx, http.MethodPost, recordsPath(source, what), nil, body, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// VerifyRecords checks that live ∪ deleted matches the ledger and every move manifest, for
// one source or, with source "", all. Problems are in the report, not an error. Bounded by
// ctx. Needs operate.
func (c *Client) VerifyRecords(ctx context.Context, source string) (*records.VerifyReport, error) {
	rep := new(records.VerifyReport)
	if _, err := c.untimed().do(ctx, http.MethodPost, recordsPath(source, ":verify"), nil, nil, rep); err != nil {
		return nil, err
	}
	return rep, nil
}
