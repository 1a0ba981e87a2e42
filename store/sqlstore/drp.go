package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"erasure"
)

var _ erasure.DRPStore = (*DB)(nil)

// The Data Rights Protocol's state (migration 009_drp): drp_agents, drp_requests and
// drp_messages. Every method that accepts a signed message does it in the transaction of the
// change the message asks for, so that a message is accepted if and only if its change is
// made.

const drpRequestColumns = `id, agent_id, agent_key, agent_request_id, exercise, regime, status_callback, received_at, expected_by, status, reason, details`

func scanDRPRequest(sc interface{ Scan(...any) error }) (*erasure.DRPRequest, error) {
	var r erasure.DRPRequest
	var received, expected int64
	if err := sc.Scan(&r.ID, &r.AgentID, &r.AgentKey, &r.AgentRequestID, &r.Exercise, &r.Regime, &r.StatusCallback,
		&received, &expected, &r.Status, &r.Reason, &r.Details); err != nil {
		return nil, err
	}
	r.ReceivedAt, r.ExpectedBy = fromMS(received), fromMS(expected)
	return &r, nil
}

func scanDRPAgent(sc interface{ Scan(...any) error }) (*erasure.DRPAgentKey, error) {
	var k erasure.DRPAgentKey
	var created int64
	if err := sc.Scan(&k.AgentID, &k.TokenHash, &k.CallbackKey, &created); err != nil {
		return nil, err
	}
	k.CreatedAt = fromMS(created)
	return &k, nil
}

// acceptMessage records m as accepted inside tx, forgetting the messages that expired;
// ECONFLICT when m is recorded and has not expired.
func (db *DB) acceptMessage(ctx context.Context, tx *sql.Tx, m erasure.DRPMessage) error {
	if m.Hash == "" || m.ExpiresAt.IsZero() {
		return erasure.Errorf(erasure.EINVALID, "a signed message needs its hash and expiry")
	}
	now := ms(db.Now())
	if _, err := db.exec(ctx, tx, `DELETE FROM drp_messages WHERE expires_at < ?`, now); err != nil {
		return err
	}
	res, err := db.exec(ctx, tx, `INSERT INTO drp_messages (hash, expires_at) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING`, m.Hash, ms(m.ExpiresAt))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return erasure.Errorf(erasure.ECONFLICT, "this signed message was accepted before: sign a new one")
	}
	return nil
}

// AcceptDRPMessage implements erasure.DRPStore.
func (db *DB) AcceptDRPMessage(ctx context.Context, m erasure.DRPMessage) error {
	return db.inTx(ctx, func(tx *sql.Tx) error { return db.acceptMessage(ctx, tx, m) })
}

// SetDRPAgentKey implements erasure.DRPStore.
func (db *DB) SetDRPAgentKey(ctx context.Context, k erasure.DRPAgentKey, m erasure.DRPMessage) error {
	if k.AgentID == "" || k.TokenHash == "" || k.CallbackKey == "" {
		return erasure.Errorf(erasure.EINVALID, "an agent key needs its agent, token hash and callback key")
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.acceptMessage(ctx, tx, m); err != nil {
			return err
		}
		now := db.Now().UTC().Truncate(time.Millisecond)
		if _, err := db.exec(ctx, tx, `INSERT INTO drp_agents (agent_id, token_hash, callback_key, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (agent_id) DO UPDATE SET token_hash = excluded.token_hash, callback_key = excluded.callback_key, created_at = excluded.created_at`,
			k.AgentID, k.TokenHash, k.CallbackKey, ms(now)); err != nil {
			return err
		}
		return db.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: now, Actor: "drp:" + k.AgentID, Type: erasure.EventDRPAgentKey,
			Data: erasure.EventData(map[string]any{"agent": k.AgentID})})
	})
}

// DRPAgentByToken implements erasure.DRPStore.
func (db *DB) DRPAgentByToken(ctx context.Context, tokenHash string) (*erasure.DRPAgentKey, error) {
	k, err := scanDRPAgent(db.readRow(ctx, `SELECT agent_id, token_hash, callback_key, created_at FROM drp_agents WHERE token_hash = ?`, tokenHash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "no agent has this token")
	}
	return k, err
}

// DRPAgentKey implements erasure.DRPStore.
func (db *DB) DRPAgentKey(ctx context.Context, agentID string) (*erasure.DRPAgentKey, error) {
	k, err := scanDRPAgent(db.readRow(ctx, `SELECT agent_id, token_hash, callback_key, created_at FROM drp_agents WHERE agent_id = ?`, agentID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "agent %q has no token", truncate(agentID, 64))
	}
	return k, err
}

// CreateDRPRequest implements erasure.DRPStore. Two calls racing with the same agent and key
// (PostgreSQL) both accept their message; one inserts, the other finds its row.
func (db *DB) CreateDRPRequest(ctx context.Context, r erasure.DRPRequest, m erasure.DRPMessage) (*erasure.DRPRequest, bool, error) {
	if r.ID == "" || r.AgentID == "" || r.AgentKey == "" {
		return nil, false, erasure.Errorf(erasure.EINVALID, "a data rights request needs its id, agent and key")
	}
	var got *erasure.DRPRequest
	var created bool
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		got, created = nil, false
		if err := db.acceptMessage(ctx, tx, m); err != nil {
			return err
		}
		res, err := db.exec(ctx, tx, `INSERT INTO drp_requests (`+drpRequestColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (agent_id, agent_key) DO NOTHING`,
			r.ID, r.AgentID, r.AgentKey, r.AgentRequestID, r.Exercise, r.Regime, r.StatusCallback,
			ms(r.ReceivedAt), ms(r.ExpectedBy), r.Status, r.Reason, r.Details)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		got, err = scanDRPRequest(db.queryRow(ctx, tx, `SELECT `+drpRequestColumns+` FROM drp_requests WHERE agent_id = ? AND agent_key = ?`, r.AgentID, r.AgentKey))
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		created = true
		data := map[string]any{"agent": r.AgentID, "exercise": r.Exercise, "regime": r.Regime}
		if r.Status != "" {
			data["status"], data["reason"] = r.Status, r.Reason
		}
		return db.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: db.Now(), Actor: "drp:" + r.AgentID, Type: erasure.EventDRPRequest,
			RequestID: r.ID, Data: erasure.EventData(data)})
	})
	if err != nil {
		return nil, false, err
	}
	return got, created, nil
}

// DRPRequest implements erasure.DRPStore.
func (db *DB) DRPRequest(ctx context.Context, id string) (*erasure.DRPRequest, error) {
	r, err := scanDRPRequest(db.readRow(ctx, `SELECT `+drpRequestColumns+` FROM drp_requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "data rights request %q not found", truncate(id, 64))
	}
	return r, err
}

// CloseDRPRequest implements erasure.DRPStore. The erasure request is looked for in the same
// transaction: a request whose erasure exists is not closed. (An erasure created just after
// is the creator's to undo: package drp reads the record again once it has created one.)
func (db *DB) CloseDRPRequest(ctx context.Context, id, status, reason, details string) (*erasure.DRPRequest, error) {
	if status == "" {
		return nil, erasure.Errorf(erasure.EINVALID, "closing a data rights request needs a status")
	}
	var got *erasure.DRPRequest
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := scanDRPRequest(db.queryRow(ctx, tx, `SELECT `+drpRequestColumns+` FROM drp_requests WHERE id = ?`+db.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "data rights request %q not found", truncate(id, 64))
		} else if err != nil {
			return err
		}
		if r.Status != "" {
			return erasure.Errorf(erasure.ECONFLICT, "data rights request %s is already %s", id, r.Status)
		}
		var n int
		if err := db.queryRow(ctx, tx, `SELECT count(*) FROM requests WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return erasure.Errorf(erasure.ECONFLICT, "data rights request %s has its erasure request", id)
		}
		if _, err := db.exec(ctx, tx, `UPDATE drp_requests SET status = ?, reason = ?, details = ? WHERE id = ?`, status, reason, details, id); err != nil {
			return err
		}
		r.Status, r.Reason, r.Details = status, reason, details
		got = r
		return db.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: db.Now(), Actor: "drp:" + r.AgentID, Type: erasure.EventDRPRequest,
			RequestID: id, Data: erasure.EventData(map[string]any{"agent": r.AgentID, "exercise": r.Exercise, "status": status, "reason": reason})})
	})
	return got, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
