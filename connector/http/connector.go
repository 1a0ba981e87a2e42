package httpconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// Body size caps: a lookup's JSON is parsed up to maxLookupBody; other responses are drained
// up to maxDrain (so the connection can be reused) and otherwise ignored.
const (
	maxLookupBody = 1 << 20
	maxDrain      = 64 << 10
)

// Connector erases a subject by calling an HTTP service: one request per combination of the
// subject's values for the erase template's identifiers. It is safe for concurrent use and
// shares one HTTP client (and its connection pool) across calls.
//
// Build returns a *Connector wrapped so that it offers erasure.Verifier only when the block has
// a verify request and erasure.Resolver only when it has a lookup.
type Connector struct {
	name     string
	erase    request
	hide     *request
	verify   *request
	lookup   *request
	provides []provide
	// removed is the JSON field path of an erase response holding how many things it erased
	// (nil: each 2xx response counts one).
	removed []string
	// plant creates a canary subject, check reads it back (see Plant, Remains).
	plant, check *request
	headers      http.Header
	timeout      time.Duration
	client       *http.Client
	// now is the clock used for Retry-After dates.
	now func() time.Time
}

var (
	_ erasure.Eraser   = (*Connector)(nil)
	_ erasure.Hider    = (*Connector)(nil)
	_ erasure.Checker  = (*Connector)(nil)
	_ erasure.Verifier = verifying{}
	_ erasure.Resolver = resolving{}
	_ erasure.Verifier = verifyingResolving{}
	_ erasure.Resolver = verifyingResolving{}
)

type verifying struct{ *Connector }
type resolving struct{ *Connector }
type verifyingResolving struct{ *Connector }

// Holds reports whether the verify request still finds the subject; see Connector.holds.
func (c verifying) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	return c.holds(ctx, s)
}

// Holds reports whether the verify request still finds the subject; see Connector.holds.
func (c verifyingResolving) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	return c.holds(ctx, s)
}

// Resolve returns the identifiers the lookup request finds; see Connector.resolve.
func (c resolving) Resolve(ctx context.Context, s erasure.Subject) ([]erasure.Identifier, error) {
	return c.resolve(ctx, s)
}

// Resolve returns the identifiers the lookup request finds; see Connector.resolve.
func (c verifyingResolving) Resolve(ctx context.Context, s erasure.Subject) ([]erasure.Identifier, error) {
	return c.resolve(ctx, s)
}

// request is one compiled request block.
type request struct {
	method  string
	url     urlTemplate
	body    *bodyTemplate
	headers http.Header
	vars    []string
	gone    []int // verify only
}

// what names the request in messages by its template, never by an expanded URL.
func (r *request) what() string { return r.method + " " + r.url.src }

type provide struct {
	typ  string
	path []string
	src  string
}

func newClient() *http.Client {
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		MaxConnsPerHost:       64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: t,
		// A redirect is answered, not followed: a 302 would turn a DELETE into a GET and report
		// success for an erase that never happened.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close releases idle connections. The connector must not be used afterwards.
func (c *Connector) Close() error {
	c.client.CloseIdleConnections()
	return nil
}

// Erase sends the erase request for every combination of the subject's values. A 2xx response
// counts as one removed; 404 and 410 mean already gone and count zero. 429 and 5xx return a
// *TransientError carrying Retry-After; network errors and timeouts are transient; other
// statuses (redirects included) are permanent. It stops at the first failure.
func (c *Connector) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	if missing, found := c.lookedUpNothing(s, c.erase.vars); missing != "" {
		if !found {
			return erasure.Outcome{Detail: "nothing to erase: the lookup found no " + missing}, nil
		}
	}
	combos, err := combinations(s, c.erase.vars)
	if err != nil {
		return erasure.Outcome{}, err
	}
	var removed, gone int64
	g := erasure.GuardFrom(ctx)
	for _, vals := range combos {
		code, hdr, body, err := c.send(ctx, &c.erase, vals, c.removed != nil)
		if err != nil {
			return erasure.Outcome{Removed: removed}, err
		}
		switch {
		case code >= 200 && code < 300:
			n, err := c.reported(body)
			if err != nil {
				return erasure.Outcome{Removed: removed}, err
			}
			removed += n
		case code == http.StatusNotFound || code == http.StatusGone:
			gone++
		default:
			return erasure.Outcome{Removed: removed}, c.statusError(&c.erase, code, hdr)
		}
		// The service has erased already: the guard can only judge what it reports, and make
		// the task fail loudly for a person to look at the service.
		if g.MaxRemoved > 0 && removed > g.MaxRemoved {
			return erasure.Outcome{Removed: removed}, erasure.Permanent(&erasure.GuardError{Dataset: c.name, Unit: "items", Count: removed, Limit: g.MaxRemoved, Reported: true})
		}
	}
	return erasure.Outcome{Removed: removed, Detail: fmt.Sprintf("%d erased, %d already gone", removed, gone)}, nil
}

// reported returns what one 2xx erase response says it erased: the number at the removed
// field, or 1 when no field is configured or the response has no body (204). A body without a
// whole, non-negative number there is a permanent error (the block does not match the
// service).
func (c *Connector) reported(body []byte) (int64, error) {
	if c.removed == nil || len(bytes.TrimSpace(body)) == 0 {
		return 1, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return 0, erasure.Permanentf("%s: the response is not JSON, so it reports no count at %s", c.erase.what(), strings.Join(c.removed, "."))
	}
	vals, err := extract(doc, c.removed)
	if err != nil || len(vals) != 1 {
		return 0, erasure.Permanentf("%s: the response has no count at %s", c.erase.what(), strings.Join(c.removed, "."))
	}
	n, err := strconv.ParseInt(vals[0], 10, 64)
	if err != nil || n < 0 {
		return 0, erasure.Permanentf("%s: the count at %s is not a whole number", c.erase.what(), strings.Join(c.removed, "."))
	}
	return n, nil
}

// Plant sends the canary's plant request (a create endpoint) for every combination of the
// canary subject's values; anything but 2xx fails (429 and 5xx transiently).
func (c *Connector) Plant(ctx context.Context, s erasure.Subject) error {
	if c.plant == nil {
		return erasure.Permanentf("dataset %s has no canary plant request", c.name)
	}
	combos, err := combinations(s, c.plant.vars)
	if err != nil {
		return err
	}
	for _, vals := range combos {
		code, hdr, _, err := c.send(ctx, c.plant, vals, false)
		if err != nil {
			return err
		}
		if code < 200 || code >= 300 {
			return c.statusError(c.plant, code, hdr)
		}
	}
	return nil
}

// Remains reads the canary subject back with the check request (canary.plant.check, or the
// dataset's verify): true when any combination answers 2xx, false when all answer a gone
// status.
func (c *Connector) Remains(ctx context.Context, s erasure.Subject) (bool, error) {
	if c.check == nil {
		return false, erasure.Permanentf("dataset %s has no request to read its canary back", c.name)
	}
	combos, err := combinations(s, c.check.vars)
	if err != nil {
		return false, err
	}
	for _, vals := range combos {
		code, hdr, _, err := c.send(ctx, c.check, vals, false)
		if err != nil {
			return false, err
		}
		switch {
		case slices.Contains(c.check.gone, code):
		case code >= 200 && code < 300:
			return true, nil
		default:
			return false, c.statusError(c.check, code, hdr)
		}
	}
	return false, nil
}

// Hides reports whether the block declares a hide request.
func (c *Connector) Hides() bool { return c.hide != nil }

// Hide sends the hide request for every combination of the subject's values, as Erase sends
// the erase request: 2xx counts one, 404 and 410 count none, 429 and 5xx are transient,
// anything else permanent.
func (c *Connector) Hide(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	if c.hide == nil {
		return erasure.Outcome{}, erasure.Permanentf("dataset %s declares no hide request", c.name)
	}
	if missing, found := c.lookedUpNothing(s, c.hide.vars); missing != "" && !found {
		return erasure.Outcome{Detail: "nothing to hide: the lookup found no " + missing}, nil
	}
	combos, err := combinations(s, c.hide.vars)
	if err != nil {
		return erasure.Outcome{}, err
	}
	var hidden, gone int64
	for _, vals := range combos {
		code, hdr, _, err := c.send(ctx, c.hide, vals, false)
		if err != nil {
			return erasure.Outcome{Removed: hidden}, err
		}
		switch {
		case code >= 200 && code < 300:
			hidden++
		case code == http.StatusNotFound || code == http.StatusGone:
			gone++
		default:
			return erasure.Outcome{Removed: hidden}, c.statusError(c.hide, code, hdr)
		}
	}
	return erasure.Outcome{Removed: hidden, Detail: fmt.Sprintf("%d hidden, %d already gone", hidden, gone)}, nil
}

// lookedUpNothing explains a subject lacking some of vars. When every missing identifier is one
// this dataset's lookup provides, and the subject has the lookup's own identifiers, the lookup
// (which the pipeline runs before erasing) found nothing here: found is false and the dataset
// holds nothing of the subject. Otherwise found is true and the caller reports the missing
// identifier as an error. missing is "" when the subject has every identifier of vars.
func (c *Connector) lookedUpNothing(s erasure.Subject, vars []string) (missing string, found bool) {
	var absent []string
	for _, v := range vars {
		if !s.Has(v) {
			absent = append(absent, v)
		}
	}
	if len(absent) == 0 {
		return "", true
	}
	missing = strings.Join(absent, ", ")
	if c.lookup == nil || !s.HasAll(c.lookup.vars) {
		return missing, true
	}
	for _, v := range absent {
		if !slices.ContainsFunc(c.provides, func(p provide) bool { return p.typ == v }) {
			return missing, true
		}
	}
	return missing, false
}

// holds sends the verify request for every combination of the subject's values: a status listed
// in gone means absent, 2xx means the subject is still there (true at the first one). 429 and
// 5xx are transient, anything else permanent.
func (c *Connector) holds(ctx context.Context, s erasure.Subject) (bool, error) {
	if missing, found := c.lookedUpNothing(s, c.verify.vars); missing != "" && !found {
		return false, nil
	}
	combos, err := combinations(s, c.verify.vars)
	if err != nil {
		return false, err
	}
	for _, vals := range combos {
		code, hdr, _, err := c.send(ctx, c.verify, vals, false)
		if err != nil {
			return false, err
		}
		switch {
		case slices.Contains(c.verify.gone, code):
		case code >= 200 && code < 300:
			return true, nil
		default:
			return false, c.statusError(c.verify, code, hdr)
		}
	}
	return false, nil
}

// resolve sends the lookup request for every combination of the subject's values for the
// lookup's identifiers and reads each provided identifier from the JSON response at its field
// path. A subject without those identifiers has nothing to look up (nil, nil). 404 and 410
// find nothing; 429/5xx are transient; a response that is not JSON, or is larger than 1 MiB,
// or whose field holds an object, is a permanent error.
func (c *Connector) resolve(ctx context.Context, s erasure.Subject) ([]erasure.Identifier, error) {
	if !s.HasAll(c.lookup.vars) {
		return nil, nil
	}
	combos, err := combinations(s, c.lookup.vars)
	if err != nil {
		return nil, err
	}
	var out []erasure.Identifier
	seen := map[erasure.Identifier]bool{}
	for _, vals := range combos {
		code, hdr, body, err := c.send(ctx, c.lookup, vals, true)
		if err != nil {
			return nil, err
		}
		switch {
		case code == http.StatusNotFound || code == http.StatusGone:
			continue
		case code < 200 || code >= 300:
			return nil, c.statusError(c.lookup, code, hdr)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return nil, erasure.Permanentf("%s: the response is not JSON: %v", c.lookup.what(), err)
		}
		for _, p := range c.provides {
			values, err := extract(doc, p.path)
			if err != nil {
				return nil, erasure.Permanentf("%s: field %s: %v", c.lookup.what(), p.src, err)
			}
			for _, v := range values {
				id := erasure.Identifier{Type: p.typ, Value: v}
				if err := id.Validate(); err != nil {
					return nil, erasure.Permanentf("%s: field %s: %s", c.lookup.what(), p.src, erasure.ErrorMessage(err))
				}
				if !seen[id] {
					seen[id] = true
					out = append(out, id)
				}
			}
		}
	}
	return out, nil
}

// Check asks the host of each configured request (erase, verify, lookup) for "/" with HEAD and
// succeeds when it answers with any status: it proves the service is reachable (DNS, routing,
// TLS), not that the erase endpoint or its credentials work, since that cannot be known
// without erasing. Failures are transient.
func (c *Connector) Check(ctx context.Context) error {
	bases := []string{c.erase.url.base}
	for _, r := range []*request{c.verify, c.lookup} {
		if r != nil && !slices.Contains(bases, r.url.base) {
			bases = append(bases, r.url.base)
		}
	}
	for _, base := range bases {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, base, nil)
		if err != nil {
			cancel()
			return erasure.Permanentf("HEAD %s: %v", base, err)
		}
		req.Header.Set("User-Agent", "erasure")
		resp, err := c.client.Do(req)
		if err != nil {
			cancel()
			return c.transportError(ctx, "HEAD "+base, err)
		}
		resp.Body.Close()
		cancel()
	}
	return nil
}

// send performs one request for vals and returns its status, headers and (when keep is set)
// its body up to maxLookupBody. It returns only transport errors, classified.
func (c *Connector) send(ctx context.Context, r *request, vals map[string]string, keep bool) (int, http.Header, []byte, error) {
	u, err := r.url.expand(vals)
	if err != nil {
		return 0, nil, nil, erasure.Permanent(err)
	}
	var body io.Reader
	if r.body != nil {
		s, _ := r.body.t.Expand(vals, r.body.escape)
		body = strings.NewReader(s)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return 0, nil, nil, erasure.Permanentf("%s: building the request failed", r.what())
	}
	req.URL = u // keep the escaped path exactly as built
	req.Header.Set("User-Agent", "erasure")
	for k, v := range c.headers {
		req.Header[k] = v
	}
	for k, v := range r.headers {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, c.transportError(ctx, r.what(), err)
	}
	defer resp.Body.Close()
	var data []byte
	if keep {
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxLookupBody+1))
		if err != nil {
			return 0, nil, nil, c.transportError(ctx, r.what(), err)
		}
		if len(data) > maxLookupBody {
			return 0, nil, nil, erasure.Permanentf("%s: the response is larger than %d bytes", r.what(), maxLookupBody)
		}
	} else {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	return resp.StatusCode, resp.Header, data, nil
}

// transportError classifies a failure to get a response: certificate problems are permanent
// (retrying will not fix them), everything else (refused, reset, DNS, timeout) transient. The
// message names the request by its template: *url.Error would print the expanded URL.
func (c *Connector) transportError(ctx context.Context, what string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return erasure.Permanent(fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return erasure.Transient(fmt.Errorf("%s: no answer within %s: %w", what, c.timeout, err), 0)
	}
	return erasure.Transient(fmt.Errorf("%s: %w", what, err), 0)
}

// statusError classifies an unwanted status: 429 and 5xx are transient, with the response's
// Retry-After; others are permanent. The reason phrase is Go's, not the server's, which could
// echo anything.
func (c *Connector) statusError(r *request, code int, hdr http.Header) error {
	err := fmt.Errorf("%s: %d %s", r.what(), code, http.StatusText(code))
	if code == http.StatusTooManyRequests || code >= 500 {
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		return erasure.Transient(err, retryAfter(hdr.Get("Retry-After"), now()))
	}
	return erasure.Permanent(err)
}

// retryAfter reads a Retry-After value: delay seconds or an HTTP date. Unparsable or past values
// give 0 (the pipeline's own backoff applies).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// combinations returns one value map per combination of the subject's values for vars. A
// missing identifier is a permanent error (the pipeline skips such tasks before erasing).
func combinations(s erasure.Subject, vars []string) ([]map[string]string, error) {
	out := []map[string]string{{}}
	for _, v := range vars {
		values := s.Values(v)
		if len(values) == 0 {
			return nil, erasure.Permanentf("the subject has no %s identifier, which this dataset needs", v)
		}
		next := make([]map[string]string, 0, len(out)*len(values))
		for _, m := range out {
			for _, val := range values {
				if val == "" {
					return nil, erasure.Permanentf("the subject has an empty %s identifier", v)
				}
				n := make(map[string]string, len(m)+1)
				for k, x := range m {
					n[k] = x
				}
				n[v] = val
				next = append(next, n)
			}
		}
		out = next
	}
	return out, nil
}

// parsePath splits a dotted JSON field path ("user.id", "items.0.id").
func parsePath(p string) ([]string, error) {
	segs := strings.Split(p, ".")
	for _, s := range segs {
		if s == "" {
			return nil, errors.New("empty path segment")
		}
	}
	return segs, nil
}

// extract returns the scalar values at path in doc. A numeric segment indexes an array; any
// other segment applied to an array applies to each element. null and missing fields give
// nothing; an array at the end gives each of its scalars.
func extract(doc any, path []string) ([]string, error) {
	nodes := []any{doc}
	for _, seg := range path {
		var next []any
		for len(nodes) > 0 {
			n := nodes[0]
			nodes = nodes[1:]
			switch v := n.(type) {
			case map[string]any:
				if x, ok := v[seg]; ok {
					next = append(next, x)
				}
			case []any:
				if i, err := strconv.Atoi(seg); err == nil {
					if i >= 0 && i < len(v) {
						next = append(next, v[i])
					}
				} else {
					nodes = append(nodes, v...)
				}
			}
		}
		nodes = next
	}
	var out []string
	for _, n := range nodes {
		items := []any{n}
		if a, ok := n.([]any); ok {
			items = a
		}
		for _, it := range items {
			switch v := it.(type) {
			case nil:
			case string:
				out = append(out, v)
			case json.Number:
				out = append(out, v.String())
			case bool:
				out = append(out, strconv.FormatBool(v))
			default:
				return nil, errors.New("holds an object or nested array, not a value")
			}
		}
	}
	return out, nil
}
