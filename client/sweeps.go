package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"erasure"
)

// Headers of an export response (set by the API's sweep routes).
const (
	headerSweepID    = "Erasure-Sweep-Id"
	headerSweepTasks = "Erasure-Sweep-Tasks"
)

func sweepPath(dataset, rest string) string { return "/v1/sweeps/" + url.PathEscape(dataset) + rest }

// RunSweep starts a sweep of the offline dataset's queued tasks and returns it as started,
// with Tasks 0 when nothing was queued (no sweep then). ENOTFOUND for an unknown dataset,
// EINVALID for one that is not offline or is swept by an external job, ECONFLICT when a sweep
// of it is open. Needs operate.
func (c *Client) RunSweep(ctx context.Context, dataset string) (*erasure.Sweep, error) {
	sw := new(erasure.Sweep)
	if _, err := c.do(ctx, http.MethodPost, sweepPath(dataset, ""), nil, nil, sw); err != nil {
		return nil, err
	}
	return sw, nil
}

// SweepStatus returns the dataset's last limit sweeps, newest first (limit 0: the server's
// default of 20), and the sweep running now with its progress. Needs read.
func (c *Client) SweepStatus(ctx context.Context, dataset string, limit int) (*erasure.SweepStatus, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	st := new(erasure.SweepStatus)
	if _, err := c.do(ctx, http.MethodGet, sweepPath(dataset, query(q)), nil, nil, st); err != nil {
		return nil, err
	}
	return st, nil
}

// BuildIndex brings the skip index of a files dataset up to date and returns what it did.
// Reading a large snapshot takes a while: the call is bounded by ctx, not by c.HTTP's
// timeout. EINVALID when the dataset keeps no index, ECONFLICT while it is swept. Needs
// operate.
func (c *Client) BuildIndex(ctx context.Context, dataset string) (*erasure.IndexReport, error) {
	rep := new(erasure.IndexReport)
	if _, err := c.untimed().do(ctx, http.MethodPost, sweepPath(dataset, "/index"), nil, nil, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// SweepExport is an export being received: the external sweep it started and the queued
// identifiers, in clear, for the job that erases them.
type SweepExport struct {
	// Sweep is the ID of the exported sweep, "" when nothing was queued.
	Sweep string
	// Tasks is how many tasks the sweep holds.
	Tasks int
	// Body streams the export; nil when nothing was queued. Read it to the end, then close it:
	// a body cut short fails the sweep, whose tasks wait for the next one.
	Body io.ReadCloser
}

// ExportSweep starts an external sweep of the dataset (format jsonl or parquet) and returns
// the export to stream, bounded by ctx rather than c.HTTP's timeout. EINVALID for another
// format or a dataset that is not offline, ECONFLICT when a sweep of it is open. Needs operate.
func (c *Client) ExportSweep(ctx context.Context, dataset, format string) (*SweepExport, error) {
	q := url.Values{"format": {format}}
	resp, err := c.untimed().stream(ctx, http.MethodPost, sweepPath(dataset, "/export"+query(q)))
	if err != nil {
		return nil, err
	}
	tasks, _ := strconv.Atoi(resp.Header.Get(headerSweepTasks))
	if resp.StatusCode == http.StatusNoContent {
		resp.Body.Close()
		return &SweepExport{Tasks: tasks}, nil
	}
	return &SweepExport{Sweep: resp.Header.Get(headerSweepID), Tasks: tasks, Body: resp.Body}, nil
}

// AckSweep reports an external job's outcome on the exported sweep id: done commits it (its
// tasks are done), failed returns its tasks to the queue. EINVALID for a bad ack, ENOTFOUND
// for a sweep of another dataset, ECONFLICT for one not exported (already acknowledged).
// Needs operate or ack:DATASET.
func (c *Client) AckSweep(ctx context.Context, dataset, id string, ack erasure.SweepAck) (*erasure.Sweep, error) {
	sw := new(erasure.Sweep)
	if _, err := c.do(ctx, http.MethodPost, sweepPath(dataset, "/"+url.PathEscape(id)+"/ack"), nil, ack, sw); err != nil {
		return nil, err
	}
	return sw, nil
}
