package client

import (
	"context"
	"net/http"
	"strconv"

	"erasure"
)

// Checkpoint asks the server to sign the head of its audit chain now (POST
// /v1/audit/checkpoints, role operate) and returns the checkpoint, to be kept away from the
// server. ECONFLICT when the trail does not verify.
func (c *Client) Checkpoint(ctx context.Context) (*erasure.AuditCheckpoint, error) {
	var cp erasure.AuditCheckpoint
	if _, err := c.Do(ctx, http.MethodPost, "/v1/audit/checkpoints", nil, &cp); err != nil {
		return nil, err
	}
	return &cp, nil
}

// Checkpoints returns the checkpoints the server keeps, newest first (GET
// /v1/audit/checkpoints).
func (c *Client) Checkpoints(ctx context.Context, limit int) ([]erasure.AuditCheckpoint, error) {
	var out struct {
		Checkpoints []erasure.AuditCheckpoint `json:"checkpoints"`
	}
	path := "/v1/audit/checkpoints"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Checkpoints, nil
}

// VerifyAuditFrom asks the server to verify its audit trail and that the chain passes through
// each expected head (BLOCK:HASH) and the head of each checkpoint (POST /v1/audit/verify).
func (c *Client) VerifyAuditFrom(ctx context.Context, expectHeads []string, checkpoints []erasure.AuditCheckpoint) (*erasure.AuditReport, error) {
	body := struct {
		ExpectHeads []string                  `json:"expect_heads,omitempty"`
		Checkpoints []erasure.AuditCheckpoint `json:"checkpoints,omitempty"`
	}{expectHeads, checkpoints}
	var rep erasure.AuditReport
	if _, err := c.Do(ctx, http.MethodPost, "/v1/audit/verify", body, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
