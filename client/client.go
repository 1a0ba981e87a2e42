// Package client is the Go client of erasure's HTTP API (see package api for the routes and
// roles). Every method returns the server's errors as *erasure.Error with the server's code and
// message, and failures to reach the server as EUNAVAILABLE.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// DefaultURL is the API address when ERASURE_URL is unset.
const DefaultURL = "http://127.0.0.1:8080"

// MaxResponseBytes bounds the body of any response the client reads.
const MaxResponseBytes = 64 << 20

// Client calls one erasure API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	// HTTP is the client used for calls; New sets one with a 30 s timeout.
	HTTP *http.Client
	// AuditPageSize is how many events AuditEach asks for per call (0: DefaultAuditPageSize).
	AuditPageSize int
}

// New returns a client of the API at baseURL (such as http://127.0.0.1:8080) authenticating
// with token. EINVALID when baseURL is not an http or https URL.
func New(baseURL, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, erasure.Errorf(erasure.EINVALID, "API address %q is not an http(s) URL such as %s", baseURL, DefaultURL)
	}
	return &Client{base: u, token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// FromEnv returns a client configured by ERASURE_URL (default DefaultURL) and ERASURE_TOKEN.
func FromEnv() (*Client, error) {
	u := os.Getenv("ERASURE_URL")
	if u == "" {
		u = DefaultURL
	}
	return New(u, os.Getenv("ERASURE_TOKEN"))
}

// URL returns the API address the client calls.
func (c *Client) URL() string { return c.base.String() }

// Do calls method path (such as "/v1/datasets", with its query) sending body as JSON when it
// is not nil, and decodes a successful response into out when it is not nil. It returns the
// HTTP status. It serves routes without a method of their own.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	return c.do(ctx, method, path, nil, body, out)
}

func (c *Client) do(ctx context.Context, method, path string, header http.Header, body, out any) (int, error) {
	h := http.Header{"Accept": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	resp, err := c.send(ctx, method, path, h, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return resp.StatusCode, erasure.Errorf(erasure.EUNAVAILABLE, "reading the response of %s %s: %v", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, decodeError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, erasure.Errorf(erasure.EINTERNAL, "the response of %s %s is not the JSON expected: %v", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// stream calls method path without a body and returns a successful response for the caller
// to read and close; an error response becomes the server's error.
func (c *Client) stream(ctx context.Context, method, path string) (*http.Response, error) {
	resp, err := c.send(ctx, method, path, nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeError(resp.StatusCode, data)
	}
	return resp, nil
}

// send sends one request with the token, body as JSON when it is not nil; a failure to reach
// the server is EUNAVAILABLE (or ctx's error once ctx is done).
func (c *Client) send(ctx context.Context, method, path string, header http.Header, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "cannot encode the request body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "bad request %s %s", method, path)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &erasure.Error{Code: erasure.EUNAVAILABLE, Message: fmt.Sprintf("cannot reach the erasure API at %s: %v", c.base, unwrapURLError(err))}
	}
	return resp, nil
}

// untimed returns a copy of c whose calls are bounded by their context alone, for calls that
// take as long as the work they start (index builds, exports, record moves).
func (c *Client) untimed() *Client {
	cp := *c
	h := *c.HTTP
	h.Timeout = 0
	cp.HTTP = &h
	return &cp
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// decodeError turns an error response into an *erasure.Error: the server's code and message
// when the body is the API's error JSON, else a code derived from the status.
func decodeError(status int, data []byte) error {
	var body struct {
		Error struct {
			Code    string   `json:"code"`
			Message string   `json:"message"`
			Details []string `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		return &erasure.Error{Code: body.Error.Code, Message: body.Error.Message, Details: body.Error.Details}
	}
	code := erasure.EINTERNAL
	switch {
	case status == http.StatusUnauthorized:
		code = erasure.EUNAUTHORIZED
	case status == http.StatusForbidden:
		code = erasure.EFORBIDDEN
	case status == http.StatusNotFound:
		code = erasure.ENOTFOUND
	case status == http.StatusConflict:
		code = erasure.ECONFLICT
	case status == http.StatusGone:
		code = erasure.EGONE
	case status == http.StatusRequestEntityTooLarge:
		code = erasure.ETOOLARGE
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		code = erasure.EUNAVAILABLE
	case status >= 400 && status < 500:
		code = erasure.EINVALID
	}
	return erasure.Errorf(code, "the server answered %d %s", status, http.StatusText(status))
}

// Submit submits an erasure of sub.Subject for sub.Reason, by sub.Deadline when it is set,
// under idemKey when it is not empty (the same key and content again returns the same request
// with created=false; other content under the key is ECONFLICT). Needs the submit role.
func (c *Client) Submit(ctx context.Context, sub erasure.Submission, idemKey string) (req *erasure.Request, created bool, err error) {
	body := map[string]any{"subject": subjectWire(sub.Subject), "reason": sub.Reason}
	if !sub.Deadline.IsZero() {
		body["deadline"] = sub.Deadline.UTC().Format(time.RFC3339Nano)
	}
	if sub.Grace != nil {
		body["grace"] = sub.Grace.String()
	}
	if sub.NoSuppress {
		body["suppress"] = false
	}
	var h http.Header
	if idemKey != "" {
		h = http.Header{"Idempotency-Key": {idemKey}}
	}
	req = new(erasure.Request)
	status, err := c.do(ctx, http.MethodPost, "/v1/requests", h, body, req)
	if err != nil {
		return nil, false, err
	}
	return req, status == http.StatusCreated, nil
}

// MaxBatch is the most submissions SubmitBatch sends in one call (erasure.MaxBatchSubmissions).
const MaxBatch = erasure.MaxBatchSubmissions

// BatchSubmission is one submission of a batch: what Submit takes, with its own idempotency
// key (empty: none).
type BatchSubmission struct {
	Submission     erasure.Submission
	IdempotencyKey string
}

// BatchResult is the server's answer to a batch: a result per submission, in order, and counts.
type BatchResult struct {
	Results  []BatchItem `json:"results"`
	Created  int         `json:"created"`
	Existing int         `json:"existing"`
	Failed   int         `json:"failed"`
}

// BatchItem is the result of one submission: Status as POST /v1/requests would have answered
// it (201 created, 200 the request its key names, 4xx its own error, in Err).
type BatchItem struct {
	Index  int    `json:"index"`
	Status int    `json:"status"`
	ID     string `json:"id,omitempty"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Err returns the item's error as an *erasure.Error, nil when it succeeded.
func (it BatchItem) Err() error {
	if it.Error == nil {
		return nil
	}
	return &erasure.Error{Code: it.Error.Code, Message: it.Error.Message}
}

// SubmitBatch submits up to MaxBatch submissions in one call (stored in one transaction) and
// returns a result per submission. The error is for the batch as a whole (EINVALID for an
// empty or too large batch, ETOOLARGE for a body over the server's limit, EUNAVAILABLE...).
// Needs the submit role.
func (c *Client) SubmitBatch(ctx context.Context, subs []BatchSubmission) (*BatchResult, error) {
	type item struct {
		Subject        map[string]any `json:"subject"`
		Reason         string         `json:"reason"`
		Deadline       string         `json:"deadline,omitempty"`
		IdempotencyKey string         `json:"idempotency_key,omitempty"`
		Grace          string         `json:"grace,omitempty"`
		Suppress       *bool          `json:"suppress,omitempty"`
	}
	body := struct {
		Requests []item `json:"requests"`
	}{Requests: make([]item, len(subs))}
	for i, b := range subs {
		it := item{Subject: subjectWire(b.Submission.Subject), Reason: b.Submission.Reason, IdempotencyKey: b.IdempotencyKey}
		if !b.Submission.Deadline.IsZero() {
			it.Deadline = b.Submission.Deadline.UTC().Format(time.RFC3339Nano)
		}
		if b.Submission.Grace != nil {
			it.Grace = b.Submission.Grace.String()
		}
		if b.Submission.NoSuppress {
			no := false
			it.Suppress = &no
		}
		body.Requests[i] = it
	}
	out := new(BatchResult)
	if _, err := c.do(ctx, http.MethodPost, "/v1/requests:batch", nil, body, out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(subs) {
		return nil, erasure.Errorf(erasure.EINTERNAL, "the server answered %d results for %d submissions", len(out.Results), len(subs))
	}
	return out, nil
}

// subjectWire is a subject as the API takes it: one value, or an array of several, by type.
func subjectWire(s erasure.Subject) map[string]any {
	subject := map[string]any{}
	for _, typ := range s.Types() {
		if vs := s.Values(typ); len(vs) == 1 {
			subject[typ] = vs[0]
		} else {
			subject[typ] = vs
		}
	}
	return subject
}

// Request returns a request with its tasks. Needs the read role.
func (c *Client) Request(ctx context.Context, id string) (*erasure.Request, error) {
	req := new(erasure.Request)
	if _, err := c.do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, nil, req); err != nil {
		return nil, err
	}
	return req, nil
}

// Requests returns one page of requests, newest first; pass the page's Next as f.Cursor for
// the next one. f.Identifier finds the requests of a subject, ended ones included (the server
// compares keyed hashes); f.SubjectHash is not sent. Needs the read role.
func (c *Client) Requests(ctx context.Context, f erasure.RequestFilter) (erasure.RequestPage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Overdue {
		q.Set("overdue", "true")
	}
	if f.Dataset != "" {
		q.Set("dataset", f.Dataset)
	}
	if f.Identifier != nil {
		q.Set("identifier", f.Identifier.Type+":"+f.Identifier.Value)
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Canary {
		q.Set("canary", "true")
	}
	var page erasure.RequestPage
	_, err := c.do(ctx, http.MethodGet, "/v1/requests"+query(q), nil, nil, &page)
	return page, err
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Cancel cancels a request's unfinished tasks; ECONFLICT when it already ended. Needs operate;
// with submit only, it is the submitter's withdrawal during the request's grace window
// (EFORBIDDEN for another submitter, ECONFLICT once the window ended).
func (c *Client) Cancel(ctx context.Context, id string) (*erasure.Request, error) {
	return c.action(ctx, id, "cancel", nil)
}

// Retry re-opens a request's failed tasks; ECONFLICT when none failed. Needs operate.
func (c *Client) Retry(ctx context.Context, id string) (*erasure.Request, error) {
	return c.action(ctx, id, "retry", nil)
}

// RetryWith re-opens a request's failed tasks as o says: with o.OverrideGuard, the tasks that
// stopped at their dataset's guard run again without it (`erasure retry ID --force`).
// ECONFLICT when none failed, or, forced, none stopped at its guard. Needs operate.
func (c *Client) RetryWith(ctx context.Context, id string, o erasure.RetryOptions) (*erasure.Request, error) {
	if !o.OverrideGuard {
		return c.Retry(ctx, id)
	}
	return c.action(ctx, id, "retry", map[string]bool{"force": true})
}

func (c *Client) action(ctx context.Context, id, action string, body any) (*erasure.Request, error) {
	req := new(erasure.Request)
	if _, err := c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/"+action, nil, body, req); err != nil {
		return nil, err
	}
	return req, nil
}

// Ack acknowledges the command a.Dispatch of async task a.TaskID as a.Status ("done" or
// "failed" with a.Error). Needs ack:DATASET for the task's dataset, or ack:*.
func (c *Client) Ack(ctx context.Context, a erasure.Ack) (*erasure.Task, error) {
	body := map[string]any{"dispatch": a.Dispatch, "status": a.Status, "removed": a.Removed}
	if a.Error != "" {
		body["error"] = a.Error
	}
	t := new(erasure.Task)
	if _, err := c.do(ctx, http.MethodPost, "/v1/tasks/"+strconv.FormatInt(a.TaskID, 10)+"/ack", nil, body, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Datasets returns every registered dataset with its health. Needs the read role.
func (c *Client) Datasets(ctx context.Context) ([]erasure.DatasetInfo, error) {
	var body struct {
		Datasets []erasure.DatasetInfo `json:"datasets"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/datasets", nil, nil, &body)
	return body.Datasets, err
}

// Dataset returns one dataset with its health; ENOTFOUND. Needs the read role.
func (c *Client) Dataset(ctx context.Context, name string) (*erasure.DatasetInfo, error) {
	d := new(erasure.DatasetInfo)
	if _, err := c.do(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(name), nil, nil, d); err != nil {
		return nil, err
	}
	return d, nil
}

// DefaultAuditPageSize is how many events AuditEach asks for per call by default.
const DefaultAuditPageSize = 1000

// AuditEach calls fn with every audit event selected by f (RequestID, After; f.Limit caps
// the total when positive), in order, fetching them page by page. It stops at fn's first error
// and returns it. Needs the read role.
func (c *Client) AuditEach(ctx context.Context, f erasure.AuditFilter, fn func(erasure.AuditEvent) error) error {
	after, seen, size := f.After, 0, c.AuditPageSize
	if size <= 0 {
		size = DefaultAuditPageSize
	}
	for {
		q := url.Values{"limit": {strconv.Itoa(size)}}
		if f.RequestID != "" {
			q.Set("request", f.RequestID)
		}
		if after > 0 {
			q.Set("after", strconv.FormatInt(after, 10))
		}
		var page struct {
			Events    []erasure.AuditEvent `json:"events"`
			NextAfter int64                `json:"next_after"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/v1/audit"+query(q), nil, nil, &page); err != nil {
			return err
		}
		for _, ev := range page.Events {
			if err := fn(ev); err != nil {
				return err
			}
			if seen++; f.Limit > 0 && seen == f.Limit {
				return nil
			}
		}
		if page.NextAfter <= after || len(page.Events) == 0 {
			return nil
		}
		after = page.NextAfter
	}
}

// VerifyAudit asks the server to verify its whole audit trail (GET /v1/audit/verify).
func (c *Client) VerifyAudit(ctx context.Context) (*erasure.AuditReport, error) {
	var rep erasure.AuditReport
	if _, err := c.Do(ctx, http.MethodGet, "/v1/audit/verify", nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Audit returns every audit event selected by f, fetching all pages (see AuditEach).
func (c *Client) Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
	var out []erasure.AuditEvent
	err := c.AuditEach(ctx, f, func(ev erasure.AuditEvent) error {
		out = append(out, ev)
		return nil
	})
	return out, err
}

// Ready returns nil when the server answers /readyz with 200, else the reason.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}
