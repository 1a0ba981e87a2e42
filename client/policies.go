package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"erasure"
)

// The calls of the policies around erasure: legal holds, the suppression list, retention and
// replay (see api.PolicyRoutes). Identifiers travel written type:value.

func identifierText(id erasure.Identifier) string { return id.Type + ":" + id.Value }

// AddHold places a legal hold on an identifier for datasets (every one when all). Needs
// operate. EINVALID for a bad identifier, an unknown dataset or no reason.
func (c *Client) AddHold(ctx context.Context, id erasure.Identifier, datasets []string, all bool, reason string) (*erasure.Hold, error) {
	var ds any = datasets
	if all {
		ds = "all"
	}
	h := new(erasure.Hold)
	if _, err := c.do(ctx, http.MethodPost, "/v1/holds", nil, map[string]any{"identifier": identifierText(id), "datasets": ds, "reason": reason}, h); err != nil {
		return nil, err
	}
	return h, nil
}

// Holds lists the holds in force, or every hold with all. Needs read.
func (c *Client) Holds(ctx context.Context, all bool) ([]erasure.Hold, error) {
	path := "/v1/holds"
	if all {
		path += "?all=true"
	}
	var body struct {
		Holds []erasure.Hold `json:"holds"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, nil, &body)
	return body.Holds, err
}

// Hold returns one hold; ENOTFOUND. Needs read.
func (c *Client) Hold(ctx context.Context, id string) (*erasure.Hold, error) {
	h := new(erasure.Hold)
	if _, err := c.do(ctx, http.MethodGet, "/v1/holds/"+url.PathEscape(id), nil, nil, h); err != nil {
		return nil, err
	}
	return h, nil
}

// ReleaseHold releases a hold: the tasks it held run unless another hold covers them.
// ENOTFOUND, ECONFLICT when released already. Needs operate.
func (c *Client) ReleaseHold(ctx context.Context, id string) (*erasure.Hold, error) {
	h := new(erasure.Hold)
	if _, err := c.do(ctx, http.MethodDelete, "/v1/holds/"+url.PathEscape(id), nil, nil, h); err != nil {
		return nil, err
	}
	return h, nil
}

type suppressionResults struct {
	Results []struct {
		Type       string `json:"type"`
		Suppressed *bool  `json:"suppressed"`
		Removed    *bool  `json:"removed"`
	} `json:"results"`
}

func texts(ids []erasure.Identifier) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = identifierText(id)
	}
	return out
}

// CheckSuppressed reports, for each identifier, whether it is on the suppression list (its
// subject was erased: do not ingest it again). At most erasure.MaxSuppressionCheck per call.
// Needs check or read.
func (c *Client) CheckSuppressed(ctx context.Context, ids []erasure.Identifier) ([]bool, error) {
	var body suppressionResults
	if _, err := c.do(ctx, http.MethodPost, "/v1/suppressions:check", nil, map[string]any{"identifiers": texts(ids)}, &body); err != nil {
		return nil, err
	}
	out := make([]bool, len(body.Results))
	for i, r := range body.Results {
		out[i] = r.Suppressed != nil && *r.Suppressed
	}
	return out, nil
}

// Unsuppress takes identifiers off the suppression list, for reason (audited), and reports
// which were on it. Needs operate.
func (c *Client) Unsuppress(ctx context.Context, ids []erasure.Identifier, reason string) ([]bool, error) {
	var body suppressionResults
	if _, err := c.do(ctx, http.MethodPost, "/v1/suppressions:unsuppress", nil, map[string]any{"identifiers": texts(ids), "reason": reason}, &body); err != nil {
		return nil, err
	}
	out := make([]bool, len(body.Results))
	for i, r := range body.Results {
		out[i] = r.Removed != nil && *r.Removed
	}
	return out, nil
}

// ExportSuppressions streams the suppression list (of type typ when set): format hashes is
// one hash per line, bloom an erasure.SuppressionFilter as JSON sized for fpRate (0: the
// server's default). The call is bounded by ctx, not by c.HTTP's timeout; close the body.
// Needs operate.
func (c *Client) ExportSuppressions(ctx context.Context, format, typ string, fpRate float64) (io.ReadCloser, error) {
	q := url.Values{"format": {format}}
	if typ != "" {
		q.Set("type", typ)
	}
	if fpRate > 0 {
		q.Set("fp_rate", strconv.FormatFloat(fpRate, 'g', -1, 64))
	}
	resp, err := c.untimed().stream(ctx, http.MethodGet, "/v1/suppressions"+query(q))
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// RunRetention runs a dataset's retention now (counting only with dryRun) and returns the
// run; a run the guard refused or that failed is its error. The call lasts as long as the
// run. Needs operate.
func (c *Client) RunRetention(ctx context.Context, dataset string, dryRun bool) (*erasure.RetentionRun, error) {
	run := new(erasure.RetentionRun)
	if _, err := c.untimed().do(ctx, http.MethodPost, "/v1/retention/"+url.PathEscape(dataset), nil, map[string]any{"dry_run": dryRun}, run); err != nil {
		return nil, err
	}
	return run, nil
}

// RetentionRuns lists a dataset's retention runs, newest first (limit 0: the server's
// default). Needs read.
func (c *Client) RetentionRuns(ctx context.Context, dataset string, limit int) ([]erasure.RetentionRun, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var body struct {
		Runs []erasure.RetentionRun `json:"runs"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/retention/"+url.PathEscape(dataset)+query(q), nil, nil, &body)
	return body.Runs, err
}

// StartReplay starts re-applying, to a dataset restored from a backup taken at since, every
// erasure completed since then (counting only with dryRun); it runs in the server. EINVALID
// for a dataset that can be replayed neither by scan nor from an escrow, ECONFLICT while one
// runs. Needs operate.
func (c *Client) StartReplay(ctx context.Context, dataset string, since time.Time, dryRun bool) (*erasure.Replay, error) {
	rp := new(erasure.Replay)
	body := map[string]any{"since": since.UTC().Format(time.RFC3339Nano), "dry_run": dryRun}
	if _, err := c.do(ctx, http.MethodPost, "/v1/replays/"+url.PathEscape(dataset), nil, body, rp); err != nil {
		return nil, err
	}
	return rp, nil
}

// Replays returns a dataset's replays the server ran, newest first, with the running one's
// progress. Needs read.
func (c *Client) Replays(ctx context.Context, dataset string) ([]erasure.Replay, error) {
	var body struct {
		Replays []erasure.Replay `json:"replays"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/replays/"+url.PathEscape(dataset), nil, nil, &body)
	return body.Replays, err
}
