package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"erasure"
	"erasure/store/migrate"
)

// Policies around erasure (see policy.go in the root package): legal holds, grace windows,
// the suppression list, retention runs and the replay escrow. As everywhere in this store, the
// rules are the domain's: holds and grace windows change tasks only through erasure.Machine
// (Settle, EndGrace, Withdraw); this file loads, persists and audits.

var (
	_ erasure.HoldStore        = (*DB)(nil)
	_ erasure.GraceStore       = (*DB)(nil)
	_ erasure.SuppressionStore = (*DB)(nil)
	_ erasure.RetentionStore   = (*DB)(nil)
	_ erasure.EscrowStore      = (*DB)(nil)
	_ erasure.ErasedStore      = (*DB)(nil)
)

// machine returns a Machine over rs at now, knowing what a completed request leaves behind.
func (db *DB) machine(rs *erasure.RequestState, now time.Time) *erasure.Machine {
	m := erasure.NewMachine(rs, db.hasher, now)
	m.SetCompletion(db.completion)
	return m
}

const holdColumns = `id, identifier, all_datasets, datasets, reason, created_by, created_at, released_by, released_at`

func scanHold(sc interface{ Scan(...any) error }) (erasure.Hold, error) {
	var h erasure.Hold
	var datasets string
	var created int64
	var released sql.NullInt64
	if err := sc.Scan(&h.ID, &h.Identifier, &h.All, &datasets, &h.Reason, &h.CreatedBy, &created, &h.ReleasedBy, &released); err != nil {
		return h, err
	}
	h.Datasets, h.CreatedAt, h.ReleasedAt = splitList(datasets), fromMS(created), fromNullMS(released)
	return h, nil
}

func collectHolds(rows *sql.Rows, err error) ([]erasure.Hold, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// activeHolds reads every hold in force inside tx. There are few (legal holds are rare), and a
// lookup may find any identifier, so a change's Machines get them all.
func (db *DB) activeHolds(ctx context.Context, tx *sql.Tx) ([]erasure.Hold, error) {
	return collectHolds(db.query(ctx, tx, `SELECT `+holdColumns+` FROM holds WHERE released_at IS NULL ORDER BY id`))
}

// holdsIn reads the holds in force on any of hashes.
func (db *DB) holdsIn(ctx context.Context, q querier, hashes []string) ([]erasure.Hold, error) {
	var out []erasure.Hold
	for start := 0; start < len(hashes); start += inChunk {
		args := padded(hashes[start:min(len(hashes), start+inChunk)], "")
		hs, err := collectHolds(q.QueryContext(ctx, db.q(`SELECT `+holdColumns+` FROM holds WHERE released_at IS NULL AND identifier IN (`+placeholders(inChunk)+`) ORDER BY id`), args...))
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	return out, nil
}

// settleAll loads the requests ids in tx, settles each with the holds now in force, and
// writes what changed; the audit events go to a.
func (db *DB) settleAll(ctx context.Context, tx *sql.Tx, a *auditWriter, ids []string, actor string) error {
	states, err := db.loadStates(ctx, tx, ids)
	if err != nil {
		return err
	}
	w := db.changeWriter(tx, a)
	now := db.Now()
	for _, id := range ids {
		rs := states[id]
		if rs == nil || rs.Status.Ended() {
			continue
		}
		m := db.machine(rs, now)
		m.Settle(actor)
		w.add(id, m.Changes())
	}
	return w.flush(ctx)
}

// openRequestsOf returns the open requests whose subject has the identifier hashed hash.
func (db *DB) openRequestsOf(ctx context.Context, tx *sql.Tx, hash string) ([]string, error) {
	rows, err := db.query(ctx, tx, `SELECT DISTINCT i.request_id FROM identifiers i JOIN requests r ON r.id = i.request_id
		WHERE i.hash = ? AND r.status NOT IN ('completed', 'cancelled') ORDER BY i.request_id`, hash)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// AddHold implements erasure.HoldStore.
func (db *DB) AddHold(ctx context.Context, h erasure.Hold, actor string) (*erasure.Hold, error) {
	now := db.Now().UTC().Truncate(time.Millisecond)
	h.CreatedBy, h.CreatedAt, h.ReleasedAt, h.ReleasedBy = actor, now, nil, ""
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := db.queryRow(ctx, tx, `SELECT count(*) FROM holds WHERE id = ?`, h.ID).Scan(&n); err != nil {
			return err
		} else if n > 0 {
			return erasure.Errorf(erasure.ECONFLICT, "hold %s exists already", h.ID)
		}
		if _, err := db.exec(ctx, tx, `INSERT INTO holds (`+holdColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, '', NULL)`,
			h.ID, h.Identifier, b2i(h.All), strings.Join(h.Datasets, ","), h.Reason, actor, ms(now)); err != nil {
			if uniqueViolation(err) {
				return erasure.Errorf(erasure.ECONFLICT, "hold %s exists already", h.ID)
			}
			return err
		}
		a := db.auditWriter(tx)
		a.append(erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventHoldAdded,
			Data: erasure.EventData(map[string]any{"hold": h.ID, "identifier": h.Identifier, "all_datasets": h.All, "datasets": h.Datasets, "reason": h.Reason})})
		ids, err := db.openRequestsOf(ctx, tx, h.Identifier)
		if err != nil {
			return err
		}
		if err := db.settleAll(ctx, tx, a, ids, actor); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// ReleaseHold implements erasure.HoldStore.
func (db *DB) ReleaseHold(ctx context.Context, id, actor string) (*erasure.Hold, error) {
	var out erasure.Hold
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		h, err := scanHold(db.queryRow(ctx, tx, `SELECT `+holdColumns+` FROM holds WHERE id = ?`+db.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "hold %s not found", id)
		} else if err != nil {
			return err
		}
		if !h.Active() {
			return erasure.Errorf(erasure.ECONFLICT, "hold %s was released already (%s by %s)", id, h.ReleasedAt.Format(time.RFC3339), h.ReleasedBy)
		}
		now := db.Now().UTC().Truncate(time.Millisecond)
		if _, err := db.exec(ctx, tx, `UPDATE holds SET released_at = ?, released_by = ? WHERE id = ?`, ms(now), actor, id); err != nil {
			return err
		}
		h.ReleasedAt, h.ReleasedBy = &now, actor
		out = h
		a := db.auditWriter(tx)
		a.append(erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventHoldReleased,
			Data: erasure.EventData(map[string]any{"hold": h.ID, "identifier": h.Identifier})})
		ids, err := db.openRequestsOf(ctx, tx, h.Identifier)
		if err != nil {
			return err
		}
		if err := db.settleAll(ctx, tx, a, ids, actor); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Holds implements erasure.HoldStore.
func (db *DB) Holds(ctx context.Context, f erasure.HoldFilter) ([]erasure.Hold, error) {
	q := `SELECT ` + holdColumns + ` FROM holds`
	if !f.All {
		q += ` WHERE released_at IS NULL`
	}
	return collectHolds(db.readQuery(ctx, q+` ORDER BY created_at DESC, id DESC`))
}

// Hold implements erasure.HoldStore.
func (db *DB) Hold(ctx context.Context, id string) (*erasure.Hold, error) {
	h, err := scanHold(db.readRow(ctx, `SELECT `+holdColumns+` FROM holds WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "hold %s not found", id)
	} else if err != nil {
		return nil, err
	}
	return &h, nil
}

// OverdueHeld implements erasure.HoldStore.
func (db *DB) OverdueHeld(ctx context.Context) (int, error) {
	var n int
	err := db.readRow(ctx, `SELECT count(*) FROM requests r WHERE r.status NOT IN ('completed', 'cancelled') AND r.deadline < ?
		AND EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = r.id AND t.state = 'held')`, ms(db.Now())).Scan(&n)
	return n, err
}

// EndGraceWindows implements erasure.GraceStore: the requests with a scheduled task due are
// found, then each is ended in a transaction of its own.
func (db *DB) EndGraceWindows(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.readQuery(ctx, fmt.Sprintf(`SELECT DISTINCT request_id FROM tasks WHERE state = 'scheduled' AND due_at <= ? ORDER BY request_id LIMIT %d`, limit), ms(db.Now()))
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		ended := false
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			rs, err := db.loadState(ctx, tx, id)
			if err != nil {
				return err
			}
			m := db.machine(rs, db.Now())
			if ended = m.EndGrace("grace"); !ended {
				return nil
			}
			m.Settle("grace")
			return db.writeChanges(ctx, tx, id, m.Changes())
		})
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// WithdrawRequest implements erasure.GraceStore.
func (db *DB) WithdrawRequest(ctx context.Context, id, actor string) (*erasure.Request, error) {
	return db.change(ctx, id, actor, (*erasure.Machine).Withdraw)
}

// leaveBehind writes what ended requests leave behind, made of their identifiers still in
// clear: the suppression entries of those in Changes.Suppress (keyed by the suppression key,
// one statement per inChunk entries; of two requests of the batch suppressing one identifier,
// the later is recorded, as if written one after the other) and the sealed escrow of each
// Changes.Escrow. At most inChunk requests.
func (db *DB) leaveBehind(ctx context.Context, tx *sql.Tx, changes []requestChange) error {
	if len(changes) == 0 {
		return nil
	}
	type clear struct {
		id   erasure.Identifier
		hash string
	}
	ids := make([]string, len(changes))
	for i, r := range changes {
		ids[i] = r.id
	}
	rows, err := db.query(ctx, tx, `SELECT request_id, type, value, hash FROM identifiers WHERE request_id IN (`+placeholders(inChunk)+`) AND value IS NOT NULL ORDER BY request_id, type, value`, padded(ids, "")...)
	if err != nil {
		return err
	}
	byRequest := map[string][]clear{}
	for rows.Next() {
		var rid string
		var c clear
		if err := rows.Scan(&rid, &c.id.Type, &c.id.Value, &c.hash); err != nil {
			rows.Close()
			return err
		}
		byRequest[rid] = append(byRequest[rid], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	now := ms(db.Now())
	type entry struct{ hash, typ, requestID string }
	var entries []entry
	at := map[string]int{}
	for _, r := range changes {
		suppress := map[string]bool{}
		for _, h := range r.ch.Suppress {
			suppress[h] = true
		}
		for _, c := range byRequest[r.id] {
			if !suppress[c.hash] {
				continue
			}
			if db.suppression == nil {
				return fmt.Errorf("sqlstore: no suppression key to suppress request %s's identifiers with", r.id)
			}
			e := entry{db.suppression.Identifier(c.id), c.id.Type, r.id}
			if i, ok := at[e.hash]; ok {
				entries[i] = e
			} else {
				at[e.hash] = len(entries)
				entries = append(entries, e)
			}
		}
	}
	for start := 0; start < len(entries); start += inChunk {
		part := entries[start:min(len(entries), start+inChunk)]
		args := make([]any, 0, 4*len(part))
		for _, e := range part {
			args = append(args, e.hash, e.typ, e.requestID, now)
		}
		if _, err := db.exec(ctx, tx, `INSERT INTO suppressions (hash, type, request_id, added_at, removed_at, removed_by) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, NULL, ''), ", len(part)), ", ")+`
			ON CONFLICT (hash) DO UPDATE SET request_id = excluded.request_id, added_at = excluded.added_at, removed_at = NULL, removed_by = ''`, args...); err != nil {
			return err
		}
	}
	for _, r := range changes {
		for _, seal := range r.ch.Escrow {
			var subject []erasure.Identifier
			for _, c := range byRequest[r.id] {
				for _, typ := range seal.Types {
					if c.id.Type == typ {
						subject = append(subject, c.id)
					}
				}
			}
			if len(subject) == 0 {
				continue
			}
			if db.escrow == nil {
				return fmt.Errorf("sqlstore: no escrow cipher to seal request %s's identifiers with", r.id)
			}
			month, destroyAt := erasure.EscrowMonth(db.Now(), seal.Period)
			wrapped, err := db.escrowKey(ctx, tx, seal.Dataset, month, destroyAt)
			if err != nil {
				return err
			}
			plain, _ := json.Marshal(subject)
			sealed, err := db.escrow.Seal(wrapped, plain, escrowAAD(seal.Dataset, month, r.id))
			if err != nil {
				return fmt.Errorf("sqlstore: sealing the escrow of %s: %w", seal.Dataset, err)
			}
			if _, err := db.exec(ctx, tx, `INSERT INTO escrow (request_id, dataset, month, sealed, completed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				r.id, seal.Dataset, month, sealed, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// escrowAAD binds a sealed subject to its dataset, month and request.
func escrowAAD(dataset, month, requestID string) []byte {
	return []byte("erasure-escrow/1\x00" + dataset + "\x00" + month + "\x00" + requestID)
}

// escrowKey returns the wrapped data key of (dataset, month), creating it the first time.
// Concurrent creators settle on one: the insert that loses does nothing.
func (db *DB) escrowKey(ctx context.Context, tx *sql.Tx, dataset, month string, destroyAt time.Time) ([]byte, error) {
	var wrapped []byte
	err := db.queryRow(ctx, tx, `SELECT wrapped FROM escrow_keys WHERE dataset = ? AND month = ?`, dataset, month).Scan(&wrapped)
	if err == nil {
		return wrapped, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	fresh, err := db.escrow.NewKey()
	if err != nil {
		return nil, err
	}
	if _, err := db.exec(ctx, tx, `INSERT INTO escrow_keys (dataset, month, wrapped, created_at, destroy_after) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		dataset, month, fresh, ms(db.Now()), ms(destroyAt)); err != nil {
		return nil, err
	}
	err = db.queryRow(ctx, tx, `SELECT wrapped FROM escrow_keys WHERE dataset = ? AND month = ?`, dataset, month).Scan(&wrapped)
	return wrapped, err
}

// OpenEscrow implements erasure.EscrowStore.
func (db *DB) OpenEscrow(ctx context.Context, dataset string, since time.Time) ([]erasure.Escrowed, int, error) {
	if db.escrow == nil {
		return nil, 0, erasure.Errorf(erasure.EINVALID, "no dataset keeps an escrow in this deployment")
	}
	rows, err := db.readQuery(ctx, `SELECT e.request_id, e.month, e.sealed, e.completed_at, k.wrapped FROM escrow e
		LEFT JOIN escrow_keys k ON k.dataset = e.dataset AND k.month = e.month
		WHERE e.dataset = ? AND e.completed_at >= ? ORDER BY e.completed_at, e.request_id`, dataset, ms(since))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []erasure.Escrowed
	destroyed := 0
	for rows.Next() {
		var id, month string
		var sealed, wrapped []byte
		var completed int64
		if err := rows.Scan(&id, &month, &sealed, &completed, &wrapped); err != nil {
			return nil, 0, err
		}
		if wrapped == nil || len(sealed) == 0 {
			destroyed++
			continue
		}
		plain, err := db.escrow.Open(wrapped, sealed, escrowAAD(dataset, month, id))
		if err != nil {
			return nil, 0, fmt.Errorf("store: escrow of request %s in %s cannot be opened: %w", id, dataset, err)
		}
		var ids []erasure.Identifier
		if err := json.Unmarshal(plain, &ids); err != nil {
			return nil, 0, fmt.Errorf("store: escrow of request %s in %s is damaged", id, dataset)
		}
		out = append(out, erasure.Escrowed{RequestID: id, Subject: erasure.NewSubject(ids...), CompletedAt: fromMS(completed)})
	}
	return out, destroyed, rows.Err()
}

// DestroyEscrowKeys implements erasure.EscrowStore. A key is overwritten before it is deleted,
// so that the page that held it is rewritten without it, and the sealed subjects are emptied
// (their rows, a request id and a time, remain to be counted); on PostgreSQL the old row
// versions stay on disk until VACUUM reclaims them.
func (db *DB) DestroyEscrowKeys(ctx context.Context) (int, error) {
	now := db.Now()
	rows, err := db.readQuery(ctx, `SELECT dataset, month FROM escrow_keys WHERE destroy_after <= ? ORDER BY dataset, month`, ms(now))
	if err != nil {
		return 0, err
	}
	type key struct{ dataset, month string }
	var keys []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.dataset, &k.month); err != nil {
			rows.Close()
			return 0, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(keys) == 0 {
		return 0, nil
	}
	if db.dialect == migrate.SQLite {
		// Deleted and overwritten content stays in a SQLite page's free space unless
		// secure_delete zeroes it; the write pool is one connection, so this one setting
		// covers the transactions below.
		if _, err := db.w.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
			return 0, err
		}
		defer db.w.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`)
	}
	n := 0
	for _, k := range keys {
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			res, err := db.exec(ctx, tx, `UPDATE escrow_keys SET wrapped = ? WHERE dataset = ? AND month = ? AND destroy_after <= ?`, make([]byte, 64), k.dataset, k.month, ms(now))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			if _, err := db.exec(ctx, tx, `DELETE FROM escrow_keys WHERE dataset = ? AND month = ?`, k.dataset, k.month); err != nil {
				return err
			}
			// The sealed subjects go too; their rows stay, empty, so that a replay can say how
			// many subjects it could not reach.
			res, err = db.exec(ctx, tx, `UPDATE escrow SET sealed = ? WHERE dataset = ? AND month = ?`, []byte{}, k.dataset, k.month)
			if err != nil {
				return err
			}
			sealed, _ := res.RowsAffected()
			a := db.auditWriter(tx)
			a.append(erasure.AuditEvent{Time: now.UTC().Truncate(time.Millisecond), Actor: "escrow", Type: erasure.EventEscrowDestroyed, Dataset: k.dataset,
				Data: erasure.EventData(map[string]any{"month": k.month, "sealed": sealed})})
			return a.flush(ctx)
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Suppressed implements erasure.SuppressionStore.
func (db *DB) Suppressed(ctx context.Context, hashes []string) ([]bool, error) {
	on := map[string]bool{}
	for start := 0; start < len(hashes); start += inChunk {
		args := padded(hashes[start:min(len(hashes), start+inChunk)], "")
		rows, err := db.readQuery(ctx, `SELECT hash FROM suppressions WHERE removed_at IS NULL AND hash IN (`+placeholders(inChunk)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return nil, err
			}
			on[h] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]bool, len(hashes))
	for i, h := range hashes {
		out[i] = on[h]
	}
	return out, nil
}

// Suppressions implements erasure.SuppressionStore: the list is read in pages of the hash
// order, so that a large export holds no transaction open.
func (db *DB) Suppressions(ctx context.Context, typ string, fn func(hash string) error) error {
	after := ""
	for {
		q := `SELECT hash FROM suppressions WHERE removed_at IS NULL AND hash > ?`
		args := []any{after}
		if typ != "" {
			q += ` AND type = ?`
			args = append(args, typ)
		}
		rows, err := db.readQuery(ctx, q+` ORDER BY hash LIMIT 5000`, args...)
		if err != nil {
			return err
		}
		var page []string
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return err
			}
			page = append(page, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, h := range page {
			if err := fn(h); err != nil {
				return err
			}
		}
		if len(page) < 5000 {
			return nil
		}
		after = page[len(page)-1]
	}
}

// Unsuppress implements erasure.SuppressionStore.
func (db *DB) Unsuppress(ctx context.Context, hashes, auditHashes []string, reason, actor string) ([]bool, error) {
	if len(hashes) != len(auditHashes) {
		return nil, fmt.Errorf("sqlstore: Unsuppress needs one audit hash per hash")
	}
	out := make([]bool, len(hashes))
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		now := db.Now().UTC().Truncate(time.Millisecond)
		var removed []string
		for i, h := range hashes {
			res, err := db.exec(ctx, tx, `UPDATE suppressions SET removed_at = ?, removed_by = ? WHERE hash = ? AND removed_at IS NULL`, ms(now), actor, h)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			out[i] = n > 0
			if n > 0 {
				removed = append(removed, auditHashes[i])
			}
		}
		if len(removed) == 0 {
			return nil
		}
		sort.Strings(removed)
		a := db.auditWriter(tx)
		a.append(erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventSuppressionRemoved,
			Data: erasure.EventData(map[string]any{"identifiers": removed, "reason": reason})})
		return a.flush(ctx)
	})
	return out, err
}

const retentionColumns = `id, dataset, cutoff, dry_run, state, actor, started, finished, expired, removed, error`

func scanRetention(sc interface{ Scan(...any) error }) (erasure.RetentionRun, error) {
	var r erasure.RetentionRun
	var cutoff, started int64
	var finished sql.NullInt64
	err := sc.Scan(&r.ID, &r.Dataset, &cutoff, &r.DryRun, &r.State, &r.Actor, &started, &finished, &r.Expired, &r.Removed, &r.Error)
	r.Cutoff, r.Started, r.Finished = fromMS(cutoff), fromMS(started), fromNullMS(finished)
	return r, err
}

// StartRetention implements erasure.RetentionStore.
func (db *DB) StartRetention(ctx context.Context, run erasure.RetentionRun, staleBefore time.Time) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.exec(ctx, tx, `UPDATE retention_runs SET state = 'failed', error = 'abandoned: the process running it stopped', finished = ?
			WHERE dataset = ? AND state = 'running' AND started < ?`, ms(db.Now()), run.Dataset, ms(staleBefore)); err != nil {
			return err
		}
		var running string
		err := db.queryRow(ctx, tx, `SELECT id FROM retention_runs WHERE dataset = ? AND state = 'running'`, run.Dataset).Scan(&running)
		if err == nil {
			return erasure.Errorf(erasure.ECONFLICT, "a retention run of %s is running (%s)", run.Dataset, running)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = db.exec(ctx, tx, `INSERT INTO retention_runs (id, dataset, cutoff, dry_run, state, actor, started) VALUES (?, ?, ?, ?, 'running', ?, ?)`,
			run.ID, run.Dataset, ms(run.Cutoff), b2i(run.DryRun), run.Actor, ms(run.Started))
		if uniqueViolation(err) {
			return erasure.Errorf(erasure.ECONFLICT, "a retention run of %s is running", run.Dataset)
		}
		return err
	})
}

// FinishRetention implements erasure.RetentionStore.
func (db *DB) FinishRetention(ctx context.Context, id string, res erasure.RetentionResult, runErr error) (*erasure.RetentionRun, error) {
	var out erasure.RetentionRun
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		run, err := scanRetention(db.queryRow(ctx, tx, `SELECT `+retentionColumns+` FROM retention_runs WHERE id = ?`+db.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "retention run %s not found", id)
		} else if err != nil {
			return err
		}
		if run.State != erasure.RetentionRunning {
			return erasure.Errorf(erasure.ECONFLICT, "retention run %s already ended: %s", id, run.State)
		}
		now := db.Now().UTC().Truncate(time.Millisecond)
		run.State, run.RetentionResult, run.Finished = erasure.RetentionDone, res, &now
		if runErr != nil && !errors.Is(runErr, erasure.ErrDryRun) {
			run.State, run.Error = erasure.RetentionFailed, erasure.OneLine(runErr, 1000)
		}
		if _, err := db.exec(ctx, tx, `UPDATE retention_runs SET state = ?, finished = ?, expired = ?, removed = ?, error = ? WHERE id = ?`,
			run.State, ms(now), res.Expired, res.Removed, run.Error, id); err != nil {
			return err
		}
		out = run
		a := db.auditWriter(tx)
		data := map[string]any{"run": id, "cutoff": run.Cutoff, "dry_run": run.DryRun, "state": run.State, "expired": res.Expired, "removed": res.Removed}
		if run.Error != "" {
			data["error"] = run.Error
		}
		a.append(erasure.AuditEvent{Time: now, Actor: run.Actor, Type: erasure.EventRetentionRun, Dataset: run.Dataset, Data: erasure.EventData(data)})
		return a.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RetentionRuns implements erasure.RetentionStore.
func (db *DB) RetentionRuns(ctx context.Context, dataset string, limit int) ([]erasure.RetentionRun, error) {
	if limit <= 0 || limit > 500 {
		limit = 20
	}
	q, args := `SELECT `+retentionColumns+` FROM retention_runs`, []any{}
	if dataset != "" {
		q, args = q+` WHERE dataset = ?`, append(args, dataset)
	}
	rows, err := db.readQuery(ctx, q+fmt.Sprintf(` ORDER BY started DESC, id DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.RetentionRun
	for rows.Next() {
		r, err := scanRetention(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ErasedSince implements erasure.ErasedStore.
func (db *DB) ErasedSince(ctx context.Context, since time.Time, types []string) ([]string, int, error) {
	if len(types) == 0 {
		return nil, 0, nil
	}
	var requests int
	if err := db.readRow(ctx, `SELECT count(*) FROM requests WHERE status = 'completed' AND finished_at >= ?`, ms(since)).Scan(&requests); err != nil {
		return nil, 0, fmt.Errorf("store: counting completed requests: %w", err)
	}
	args := []any{ms(since)}
	for _, t := range types {
		args = append(args, t)
	}
	rows, err := db.readQuery(ctx, `SELECT DISTINCT i.hash FROM identifiers i JOIN requests r ON r.id = i.request_id
		WHERE r.status = 'completed' AND r.finished_at >= ? AND i.type IN (`+placeholders(len(types))+`) ORDER BY i.hash`, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: reading the hashes of erased identifiers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, 0, err
		}
		out = append(out, h)
	}
	return out, requests, rows.Err()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RecordReplay implements erasure.ErasedStore.
func (db *DB) RecordReplay(ctx context.Context, r erasure.Replay) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		data := map[string]any{"replay": r.ID, "since": r.Since.UTC(), "dry_run": r.DryRun, "method": r.Method, "state": r.State,
			"subjects": r.Subjects, "scanned": r.Scanned, "matched": r.Matched, "removed": r.Removed}
		if r.Method == "escrow" {
			data["submitted"], data["destroyed"] = r.Submitted, r.Destroyed
		}
		if r.Error != "" {
			data["error"] = r.Error
		}
		a := db.auditWriter(tx)
		a.append(erasure.AuditEvent{Time: db.Now().UTC().Truncate(time.Millisecond), Actor: r.Actor, Type: erasure.EventReplayRun, Dataset: r.Dataset, Data: erasure.EventData(data)})
		return a.flush(ctx)
	})
}
