package client

// The record store's routes (see records.Handler). Its wire types are the records package's.

import (
	"context"
	"net/http"
	"net/url"

	"erasure/records"
)

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
