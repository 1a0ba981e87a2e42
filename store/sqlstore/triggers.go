package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"erasure"
	"erasure/store/migrate"
)

// The audit trail's tables are append-only by triggers that the migrations create. Someone
// with access to the database can drop or disable them, rewrite the trail, and put them back;
// the chain's key and signed checkpoints kept elsewhere catch the rewrite. What the store can
// do is refuse to run without them: every Open checks that each trigger exists, is enabled and
// does what the migration made it do, restores any that does not, and records that it did as
// an audit event (erasure.EventAuditTriggersRestored) in the same transaction.

// sqliteTrigger is an append-only trigger of SQLite, as its migration wrote it.
type sqliteTrigger struct{ name, sql string }

func sqliteRefusal(name, table, event, msg string) sqliteTrigger {
	return sqliteTrigger{name, "CREATE TRIGGER " + name + " BEFORE " + event + " ON " + table + "\nBEGIN SELECT RAISE(ABORT, '" + msg + "'); END"}
}

var sqliteTriggers = []sqliteTrigger{
	sqliteRefusal("audit_events_no_update", "audit_events", "UPDATE", "audit events are append-only"),
	sqliteRefusal("audit_events_no_delete", "audit_events", "DELETE", "audit events are append-only"),
	sqliteRefusal("audit_blocks_no_update", "audit_blocks", "UPDATE", "audit blocks are append-only"),
	sqliteRefusal("audit_blocks_no_delete", "audit_blocks", "DELETE", "audit blocks are append-only"),
	sqliteRefusal("audit_index_no_update", "audit_index", "UPDATE", "audit blocks are append-only"),
	sqliteRefusal("audit_index_no_delete", "audit_index", "DELETE", "audit blocks are append-only"),
	sqliteRefusal("audit_events_no_insert", "audit_events", "INSERT", "audit events are append-only: new events are appended as blocks"),
	sqliteRefusal("audit_checkpoints_no_update", "audit_checkpoints", "UPDATE", "audit checkpoints are append-only"),
	sqliteRefusal("audit_checkpoints_no_delete", "audit_checkpoints", "DELETE", "audit checkpoints are append-only"),
}

// pgTrigger is an append-only trigger of PostgreSQL: its table and its type (pg_trigger.tgtype:
// 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate), calling erasure_append_only().
type pgTrigger struct {
	name, table string
	tgtype      int
}

const (
	pgRowUpdateDelete = 1 | 2 | 8 | 16
	pgTruncate        = 2 | 32
	pgRowInsert       = 1 | 2 | 4
)

var pgTriggers = []pgTrigger{
	{"audit_events_no_update", "audit_events", pgRowUpdateDelete},
	{"audit_events_no_truncate", "audit_events", pgTruncate},
	{"audit_blocks_no_update", "audit_blocks", pgRowUpdateDelete},
	{"audit_blocks_no_truncate", "audit_blocks", pgTruncate},
	{"audit_index_no_update", "audit_index", pgRowUpdateDelete},
	{"audit_index_no_truncate", "audit_index", pgTruncate},
	{"audit_events_no_insert", "audit_events", pgRowInsert},
	{"audit_checkpoints_no_update", "audit_checkpoints", pgRowUpdateDelete},
	{"audit_checkpoints_no_truncate", "audit_checkpoints", pgTruncate},
}

func (t pgTrigger) create() string {
	var when string
	switch t.tgtype {
	case pgRowUpdateDelete:
		when = "BEFORE UPDATE OR DELETE ON " + t.table + " FOR EACH ROW"
	case pgTruncate:
		when = "BEFORE TRUNCATE ON " + t.table + " FOR EACH STATEMENT"
	case pgRowInsert:
		when = "BEFORE INSERT ON " + t.table + " FOR EACH ROW"
	}
	return "CREATE TRIGGER " + t.name + " " + when + " EXECUTE FUNCTION erasure_append_only()"
}

const pgAppendOnlyFunction = `CREATE OR REPLACE FUNCTION erasure_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END $$`

var spaces = regexp.MustCompile(`\s+`)

func normalizeSQL(s string) string {
	return strings.TrimSuffix(strings.TrimSpace(spaces.ReplaceAllString(s, " ")), ";")
}

// ensureAuditTriggers checks the append-only triggers and restores those missing, disabled or
// changed, with an audit event naming them, in one transaction. It returns their names.
func (db *DB) ensureAuditTriggers(ctx context.Context) ([]string, error) {
	var restored []string
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		restored = restored[:0]
		var err error
		if db.dialect == migrate.Postgres {
			restored, err = db.ensurePGTriggers(ctx, tx)
		} else {
			restored, err = db.ensureSQLiteTriggers(ctx, tx)
		}
		if err != nil || len(restored) == 0 {
			return err
		}
		data, _ := json.Marshal(map[string]any{"triggers": restored})
		a := db.auditWriter(tx)
		a.append(erasure.AuditEvent{Time: db.Now(), Actor: "erasure", Type: erasure.EventAuditTriggersRestored, Data: data})
		return a.flush(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("the append-only triggers of the audit trail are missing and could not be restored: %w", err)
	}
	return restored, nil
}

func (db *DB) ensureSQLiteTriggers(ctx context.Context, tx *sql.Tx) ([]string, error) {
	have := map[string]string{}
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var text sql.NullString
		if err := rows.Scan(&name, &text); err != nil {
			rows.Close()
			return nil, err
		}
		have[name] = text.String
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var restored []string
	for _, t := range sqliteTriggers {
		if text, ok := have[t.name]; ok && normalizeSQL(text) == normalizeSQL(t.sql) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS `+t.name); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, t.sql); err != nil {
			return nil, err
		}
		restored = append(restored, t.name)
	}
	return restored, nil
}

func (db *DB) ensurePGTriggers(ctx context.Context, tx *sql.Tx) ([]string, error) {
	// The function the triggers call must still refuse.
	var src sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.proname = 'erasure_append_only' AND n.nspname = current_schema()`).Scan(&src)
	if err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	var restored []string
	if !strings.Contains(src.String, "RAISE EXCEPTION") {
		if _, err := tx.ExecContext(ctx, pgAppendOnlyFunction); err != nil {
			return nil, err
		}
		restored = append(restored, "erasure_append_only()")
	}
	type found struct {
		table, fn, schema string
		tgtype            int
		enabled           string
	}
	have := map[string]found{}
	rows, err := tx.QueryContext(ctx, `SELECT t.tgname, c.relname, t.tgtype, t.tgenabled, p.proname, pn.nspname
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
		WHERE n.nspname = current_schema() AND NOT t.tgisinternal`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var f found
		if err := rows.Scan(&name, &f.table, &f.tgtype, &f.enabled, &f.fn, &f.schema); err != nil {
			rows.Close()
			return nil, err
		}
		have[name] = f
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var schema string
	if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, err
	}
	for _, t := range pgTriggers {
		f, ok := have[t.name]
		if ok && f.table == t.table && f.tgtype == t.tgtype && f.enabled != "D" && f.fn == "erasure_append_only" && f.schema == schema {
			continue
		}
		if ok {
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER `+t.name+` ON `+f.table); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, t.create()); err != nil {
			return nil, err
		}
		restored = append(restored, t.name)
	}
	return restored, nil
}

// RestoredTriggers returns the append-only triggers of the audit trail that Open found
// missing, disabled or changed, and restored (with an audit event): someone with access to
// the database had changed it. Empty normally.
func (db *DB) RestoredTriggers() []string { return db.restored }
