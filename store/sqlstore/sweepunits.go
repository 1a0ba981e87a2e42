package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"erasure"
)

var _ erasure.SweepUnitStore = (*DB)(nil)

// The owner of a running sweep and the units of shared sweeps (migration 010_fleet). A unit is
// leased like a task: one statement marks the due units running under their new owner (FOR
// UPDATE SKIP LOCKED on PostgreSQL), and a result is written only while its lease is held.

const unitColumns = `id, sweep_id, name, size, state, attempts, lease_owner, due_at, rows_scanned, rows_removed, bytes, error, finished_at, guard`

func scanUnit(sc interface{ Scan(...any) error }, u *erasure.SweepUnit) error {
	var due int64
	var finished sql.NullInt64
	var guard string
	if err := sc.Scan(&u.ID, &u.SweepID, &u.Name, &u.Size, &u.State, &u.Attempts, &u.Owner, &due,
		&u.Result.Scanned, &u.Result.Removed, &u.Result.Bytes, &u.Error, &finished, &guard); err != nil {
		return err
	}
	u.DueAt, u.FinishedAt = fromMS(due), fromNullMS(finished)
	u.Result.Partitions = 1
	if guard != "" {
		u.Guard = new(erasure.GuardError)
		if err := json.Unmarshal([]byte(guard), u.Guard); err != nil {
			return fmt.Errorf("unit %d: stored guard: %w", u.ID, err)
		}
	}
	return nil
}

// StartOwnedSweep implements erasure.SweepUnitStore.
func (db *DB) StartOwnedSweep(ctx context.Context, dataset, id, actor, owner string, lease time.Duration) (*erasure.Sweep, []erasure.SweepSubject, error) {
	if owner == "" || lease <= 0 {
		return nil, nil, erasure.Errorf(erasure.EINVALID, "an owned sweep needs an owner and a lease")
	}
	return db.startSweep(ctx, dataset, id, erasure.SweepInternal, actor, owner, lease)
}

// ClaimSweep implements erasure.SweepUnitStore.
func (db *DB) ClaimSweep(ctx context.Context, id, owner string, lease time.Duration) (*erasure.Sweep, error) {
	if owner == "" || lease < 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "a claim needs an owner and a lease not negative")
	}
	var out *erasure.Sweep
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		now := db.Now()
		newOwner, until := owner, ms(now.Add(lease))
		if lease == 0 {
			newOwner, until = "", 0
		}
		res, err := db.exec(ctx, tx, `UPDATE sweeps SET lease_owner = ?, lease_until = ?
			WHERE id = ? AND state = 'running' AND (lease_owner = ? OR lease_owner = '' OR lease_until <= ?)`,
			newOwner, until, id, owner, ms(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		sw, err := scanSweep(db.queryRow(ctx, tx, `SELECT `+sweepColumns+` FROM sweeps WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "sweep %s not found", id)
		} else if err != nil {
			return err
		}
		switch {
		case n == 1:
			out = sw
			return nil
		case sw.State != erasure.SweepRunning:
			return erasure.Errorf(erasure.ECONFLICT, "sweep %s is %s, not running", id, sw.State)
		}
		return erasure.Errorf(erasure.ECONFLICT, "sweep %s is run by %s until %s", id, sw.Owner, sw.LeaseUntil.Format(time.RFC3339))
	})
	return out, err
}

// PlanSweep implements erasure.SweepUnitStore.
func (db *DB) PlanSweep(ctx context.Context, id, owner string, plan erasure.SweepPlan) ([]erasure.SweepUnit, error) {
	if strings.TrimSpace(plan.ID) == "" || len(plan.Units) == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "a sweep plan needs an id and at least one unit")
	}
	seen := make(map[string]bool, len(plan.Units))
	for _, u := range plan.Units {
		switch {
		case u.Name == "" || len(u.Name) > 4096:
			return nil, erasure.Errorf(erasure.EINVALID, "a unit of a sweep plan needs a name of 1 to 4096 bytes")
		case seen[u.Name]:
			return nil, erasure.Errorf(erasure.EINVALID, "unit %q appears twice in the plan", u.Name)
		case u.Size < 0:
			return nil, erasure.Errorf(erasure.EINVALID, "unit %q has a negative size", u.Name)
		}
		seen[u.Name] = true
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		sw, err := scanSweep(db.queryRow(ctx, tx, `SELECT `+sweepColumns+` FROM sweeps WHERE id = ?`+db.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "sweep %s not found", id)
		} else if err != nil {
			return err
		}
		switch {
		case sw.State != erasure.SweepRunning:
			return erasure.Errorf(erasure.ECONFLICT, "sweep %s is %s, not running", id, sw.State)
		case sw.Owner != owner:
			return erasure.Errorf(erasure.ECONFLICT, "sweep %s is not held by %s", id, owner)
		case sw.Plan != "":
			return nil // planned already: its units stand
		}
		now := ms(db.Now())
		if _, err := db.exec(ctx, tx, `UPDATE sweeps SET plan = ? WHERE id = ?`, plan.ID, id); err != nil {
			return err
		}
		for start := 0; start < len(plan.Units); start += inChunk {
			chunk := plan.Units[start:min(len(plan.Units), start+inChunk)]
			args := make([]any, 0, 5*len(chunk))
			for _, u := range chunk {
				args = append(args, id, u.Name, u.Size, string(erasure.UnitPending), now)
			}
			if _, err := db.exec(ctx, tx, `INSERT INTO sweep_units (sweep_id, name, size, state, due_at) VALUES `+rows(len(chunk), 5), args...); err != nil {
				return err
			}
		}
		var bytes int64
		for _, u := range plan.Units {
			bytes += u.Size
		}
		return db.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: db.Now(), Actor: owner, Type: erasure.EventSweepPlanned, Dataset: sw.Dataset,
			Data: erasure.EventData(map[string]any{"sweep": id, "units": len(plan.Units), "bytes": bytes})})
	})
	if err != nil {
		return nil, err
	}
	return db.SweepUnits(ctx, id)
}

// LeaseSweepUnits implements erasure.SweepUnitStore.
func (db *DB) LeaseSweepUnits(ctx context.Context, id, owner string, n int, lease time.Duration) ([]erasure.SweepUnit, error) {
	if owner == "" || n <= 0 || lease <= 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "a lease of units needs an owner, a count and a duration")
	}
	var out []erasure.SweepUnit
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.Now()
		args := []any{owner, ms(now.Add(lease)), ms(now)}
		only := ""
		if id != "" {
			only = ` AND sweep_id = ?`
			args = append(args, id)
		}
		args = append(args, n)
		rows, err := db.query(ctx, tx, `UPDATE sweep_units SET state = 'running', lease_owner = ?, due_at = ?, attempts = attempts + 1
			WHERE id IN (SELECT id FROM sweep_units WHERE state IN ('pending', 'running') AND due_at <= ?`+only+`
				AND sweep_id IN (SELECT id FROM sweeps WHERE state = 'running') ORDER BY due_at, id LIMIT `+limitParam+db.skipLocked()+`)
			RETURNING `+unitColumns, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var u erasure.SweepUnit
			if err := scanUnit(rows, &u); err != nil {
				rows.Close()
				return err
			}
			out = append(out, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		return db.fillUnits(ctx, tx, out)
	})
	return out, err
}

// fillUnits sets each unit's dataset and plan from its sweep.
func (db *DB) fillUnits(ctx context.Context, tx *sql.Tx, units []erasure.SweepUnit) error {
	type ref struct{ dataset, plan string }
	sweeps := map[string]*ref{}
	for _, u := range units {
		sweeps[u.SweepID] = nil
	}
	for id := range sweeps {
		var r ref
		if err := db.queryRow(ctx, tx, `SELECT dataset, plan FROM sweeps WHERE id = ?`, id).Scan(&r.dataset, &r.plan); err != nil {
			return err
		}
		sweeps[id] = &r
	}
	for i := range units {
		r := sweeps[units[i].SweepID]
		units[i].Dataset, units[i].Plan = r.dataset, r.plan
	}
	return nil
}

// ExtendSweepUnits implements erasure.SweepUnitStore.
func (db *DB) ExtendSweepUnits(ctx context.Context, owner string, ids []int64, lease time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		until := ms(db.Now().Add(lease))
		for _, id := range ids {
			if _, err := db.exec(ctx, tx, `UPDATE sweep_units SET due_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?`, until, id, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// FinishSweepUnits implements erasure.SweepUnitStore. Results are written in unit id order, so
// that two writers on PostgreSQL lock their rows in the same order.
func (db *DB) FinishSweepUnits(ctx context.Context, results []erasure.SweepUnitResult) ([]int64, error) {
	for _, r := range results {
		switch r.State {
		case erasure.UnitDone, erasure.UnitFailed, erasure.UnitPending:
		default:
			return nil, erasure.Errorf(erasure.EINVALID, "unit %d: %q is not a state a unit's attempt ends in (done, pending, failed)", r.UnitID, r.State)
		}
		if r.Result.Scanned < 0 || r.Result.Removed < 0 || r.Result.Bytes < 0 {
			return nil, erasure.Errorf(erasure.EINVALID, "unit %d: counts must not be negative", r.UnitID)
		}
	}
	sorted := append([]erasure.SweepUnitResult(nil), results...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j].UnitID < sorted[j-1].UnitID; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	// The guard of a failed unit is kept as JSON (sweep_units.guard, migration 014).
	guards := make([]string, len(sorted))
	for i, r := range sorted {
		if r.State != erasure.UnitFailed || r.Guard == nil {
			continue
		}
		b, err := json.Marshal(r.Guard)
		if err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "unit %d: its guard cannot be stored: %v", r.UnitID, err)
		}
		guards[i] = string(b)
	}
	var dropped []int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		dropped = dropped[:0]
		now := db.Now()
		a := db.auditWriter(tx)
		for i, r := range sorted {
			var name, dataset string
			err := db.queryRow(ctx, tx, `SELECT u.name, s.dataset FROM sweep_units u JOIN sweeps s ON s.id = u.sweep_id
				WHERE u.id = ? AND u.sweep_id = ? AND u.state = 'running' AND u.lease_owner = ? AND u.attempts = ? AND s.state = 'running'`+db.forUpdateOf("u"),
				r.UnitID, r.SweepID, r.Owner, r.Attempt).Scan(&name, &dataset)
			if errors.Is(err, sql.ErrNoRows) {
				dropped = append(dropped, r.UnitID)
				continue
			} else if err != nil {
				return err
			}
			msg := ""
			if r.State != erasure.UnitDone {
				msg = erasure.OneLine(errors.New(r.Error), 1000)
			}
			switch r.State {
			case erasure.UnitPending:
				_, err = db.exec(ctx, tx, `UPDATE sweep_units SET state = 'pending', lease_owner = '', due_at = ?, error = ? WHERE id = ?`,
					ms(r.DueAt), msg, r.UnitID)
			default:
				_, err = db.exec(ctx, tx, `UPDATE sweep_units SET state = ?, lease_owner = '', rows_scanned = ?, rows_removed = ?, bytes = ?, error = ?, finished_at = ?, guard = ? WHERE id = ?`,
					r.State, r.Result.Scanned, r.Result.Removed, r.Result.Bytes, msg, ms(now), guards[i], r.UnitID)
			}
			if err != nil {
				return err
			}
			if r.State == erasure.UnitPending {
				continue
			}
			data := map[string]any{"sweep": r.SweepID, "unit": name, "outcome": r.State, "attempt": r.Attempt,
				"rows_scanned": r.Result.Scanned, "rows_removed": r.Result.Removed, "bytes": r.Result.Bytes}
			if msg != "" {
				data["error"] = msg
			}
			if guards[i] != "" {
				data["guard"] = erasure.GuardTripped
			}
			a.append(erasure.AuditEvent{Time: now, Actor: r.Owner, Type: erasure.EventSweepUnit, Dataset: dataset, Data: erasure.EventData(data)})
		}
		return a.flush(ctx)
	})
	return dropped, err
}

// SweepUnits implements erasure.SweepUnitStore.
func (db *DB) SweepUnits(ctx context.Context, id string) ([]erasure.SweepUnit, error) {
	var dataset, plan string
	err := db.readRow(ctx, `SELECT dataset, plan FROM sweeps WHERE id = ?`, id).Scan(&dataset, &plan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "sweep %s not found", id)
	} else if err != nil {
		return nil, err
	}
	rows, err := db.readQuery(ctx, `SELECT `+unitColumns+` FROM sweep_units WHERE sweep_id = ? ORDER BY name`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []erasure.SweepUnit{}
	for rows.Next() {
		u := erasure.SweepUnit{Dataset: dataset, Plan: plan}
		if err := scanUnit(rows, &u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// ReleaseSweepLeases implements erasure.SweepUnitStore.
func (db *DB) ReleaseSweepLeases(ctx context.Context) (int, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, `UPDATE sweeps SET lease_owner = '', lease_until = 0 WHERE state = 'running' AND lease_owner <> ''`)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = db.exec(ctx, tx, `UPDATE sweep_units SET due_at = ? WHERE state = 'running'`, ms(db.Now()))
		return err
	})
	return int(n), err
}

// forUpdateOf is forUpdate limited to the rows of one table of a join.
func (db *DB) forUpdateOf(table string) string {
	if s := db.forUpdate(); s != "" {
		return fmt.Sprintf("%s OF %s", s, table)
	}
	return ""
}
