package storetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
)

// TriggerStore is a store whose database a test reaches directly.
type TriggerStore interface {
	erasure.Store
	erasure.CheckpointStore
	SQL() *sql.DB
	AppendAudit(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error
	RestoredTriggers() []string
}

// Reopener opens a new handle on one and the same database each time it is called (closed
// when t ends).
type Reopener func(t *testing.T, now func() time.Time) TriggerStore

// RunAuditTriggers checks that a store refuses to run without the append-only triggers of its
// audit trail: the statements of disable (in the store's dialect) drop, disable or replace the
// triggers named in want, and the next open restores them all, with an audit event naming
// them, so that the trail can again be neither changed nor emptied. A fresh store restores
// nothing.
func RunAuditTriggers(t *testing.T, open Reopener, disable, want []string) {
	ctx := context.Background()
	c := NewClock()
	db := open(t, c.Now)
	if r := db.RestoredTriggers(); len(r) != 0 {
		t.Fatalf("a fresh store restored triggers %v: the store's list and its migrations disagree", r)
	}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: c.Now(), Actor: "t", Type: "test", RequestID: "r_1"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	signer := audit.NewSigner(testSigningKey(), "d")
	if err := db.SaveAuditCheckpoint(ctx, signer.Checkpoint(erasure.AuditHead{Block: 1, Hash: strings.Repeat("0", 64)}, c.Now())); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range disable {
		if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	// With the triggers gone, the database lets anything happen...
	if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_checkpoints SET hash = hash`); err != nil {
		t.Fatalf("the statements given did not disable the checkpoints' trigger: %v", err)
	}
	again := open(t, c.Now)
	restored := again.RestoredTriggers()
	if strings.Join(restored, ",") != strings.Join(want, ",") {
		t.Fatalf("the store restored %v, want %v", restored, want)
	}
	evs, err := again.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != erasure.EventAuditTriggersRestored || !strings.Contains(string(last.Data), restored[0]) {
		t.Fatalf("the last audit event is %s %s, want %s naming the triggers", last.Type, last.Data, erasure.EventAuditTriggersRestored)
	}
	VerifyTrail(t, again)
	// ...and once reopened, nothing of the trail can change again.
	for _, stmt := range []string{`UPDATE audit_blocks SET body = '[]'`, `DELETE FROM audit_blocks`, `DELETE FROM audit_index`,
		`UPDATE audit_checkpoints SET hash = 'x'`, `DELETE FROM audit_checkpoints`} {
		if _, err := again.SQL().ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s after the reopen: %v, want an append-only refusal", stmt, err)
		}
	}
	if third := open(t, c.Now); len(third.RestoredTriggers()) != 0 {
		t.Fatalf("a third open restored %v again", third.RestoredTriggers())
	}
}

// testSigningKey is a fixed signing key for stores under test.
func testSigningKey() []byte {
	k, err := audit.LoadSigningKey(strings.Repeat("ab", 32), "")
	if err != nil {
		panic(err)
	}
	return k
}
