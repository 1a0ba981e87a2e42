package sqlrecords

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"time"

	"erasure"
	"erasure/internal/strictjson"
	"erasure/records"
	"erasure/store/migrate"
)

// Options configure a Store.
type Options struct {
	// AppendAudit appends an audit event inside the caller's transaction (required).
	AppendAudit func(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// MaxArchiveShare is the largest share of a source's records one archive may move
	// without force (default 0.5).
	MaxArchiveShare float64
	// MaxReconcileShare is the largest share of a source's live records one reconcile may
	// tombstone without force (default 0.1).
	MaxReconcileShare float64
	// ReadDB, when set, serves reads (GET, scans, reindex, verify) so that they do not queue
	// behind writes (store/sqlite's ReadSQL); default: the write database.
	ReadDB *sql.DB
	// Hasher, when set, names record ids in manifests and audit events by keyed hash
	// (records.RecordHash, and the identifier hash for resurrected records); without it they
	// name none.
	Hasher erasure.Hasher
	// Dialect is migrate.SQLite (default) or migrate.Postgres; it picks the migrations,
	// placeholders and row locks.
	Dialect migrate.Dialect
	Logger  *slog.Logger
}

// Store is the record store on SQLite or PostgreSQL. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	rdb  *sql.DB
	opts Options
	log  *slog.Logger
	pg   bool
	get  *sql.Stmt
}

var _ records.Service = (*Store)(nil)

//go:embed migrations
var migrations embed.FS

// Open applies the store's migrations to db (store/migrate: set "records", one folder per
// dialect) and returns the store. It returns EINVALID for bad options.
func Open(ctx context.Context, db *sql.DB, opts Options) (*Store, error) {
	if opts.AppendAudit == nil {
		return nil, erasure.Errorf(erasure.EINVALID, "records: an audit appender is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxArchiveShare <= 0 {
		opts.MaxArchiveShare = 0.5
	}
	if opts.MaxReconcileShare <= 0 {
		opts.MaxReconcileShare = 0.1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Dialect == "" {
		opts.Dialect = migrate.SQLite
	}
	if err := opts.Dialect.Valid(); err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "records: %s", erasure.ErrorMessage(err))
	}
	if opts.ReadDB == nil {
		opts.ReadDB = db
	}
	s := &Store{db: db, rdb: opts.ReadDB, opts: opts, log: opts.Logger.WithGroup("records"), pg: opts.Dialect == migrate.Postgres}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("records: migrate: %w", err)
	}
	if err := s.hashManifests(ctx); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	var err error
	s.get, err = s.rdb.PrepareContext(ctx, s.q(`SELECT 'live', `+cols+` FROM records_live WHERE source = ? AND id = ? UNION ALL SELECT 'deleted', `+cols+` FROM records_deleted WHERE source = ? AND id = ? LIMIT 1`))
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	return s, nil
}

// DB returns the database the store writes to.
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks that the database answers reads; EUNAVAILABLE otherwise.
func (s *Store) Ping(ctx context.Context) error { return unavailableOrNil(s.rdb.PingContext(ctx)) }

func (s *Store) migrate(ctx context.Context) error {
	files, err := fs.Sub(migrations, "migrations/"+string(s.opts.Dialect))
	if err != nil {
		return err
	}
	_, err = migrate.Apply(ctx, s.db, s.opts.Dialect, migrate.Set{Name: "records", Files: files, Adopted: s.legacyMigrations, Now: s.opts.Now})
	return err
}

// legacyMigrations returns the files that the store's own tracking, records_schema_migrations
// (version, applied_at), recorded before the shared runner: version N is the file NNN_….sql.
// The table is left in place, unused.
func (s *Store) legacyMigrations(ctx context.Context, tx *sql.Tx) ([]string, error) {
	ok, err := migrate.TableExists(ctx, tx, s.opts.Dialect, "records_schema_migrations")
	if err != nil || !ok {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM records_schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	names, err := fs.Glob(migrations, "migrations/"+string(s.opts.Dialect)+"/*.sql")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		base := name[len("migrations/"+string(s.opts.Dialect)+"/"):]
		digits := 0
		for digits < len(base) && base[digits] >= '0' && base[digits] <= '9' {
			digits++
		}
		if v, err := strconv.Atoi(base[:digits]); err == nil && applied[v] {
			out = append(out, base)
		}
	}
	return out, nil
}

// hashManifests replaces the record ids that manifests written before they were keyed still
// hold (first_id, last_id) by their keyed hashes, when the store has a Hasher. Their audit
// events cannot be rewritten: the trail is append-only.
func (s *Store) hashManifests(ctx context.Context) error {
	if s.opts.Hasher == nil {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, source, first_id, last_id FROM records_moves WHERE ids_hashed = 0`)
		if err != nil {
			return err
		}
		type manifest struct {
			id                  int64
			source, first, last string
		}
		var ms []manifest
		for rows.Next() {
			var m manifest
			if err := rows.Scan(&m.id, &m.source, &m.first, &m.last); err != nil {
				rows.Close()
				return err
			}
			ms = append(ms, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range ms {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE records_moves SET first_id = ?, last_id = ?, ids_hashed = 1 WHERE id = ?`),
				records.RecordHash(s.opts.Hasher, m.source, m.first), records.RecordHash(s.opts.Hasher, m.source, m.last), m.id); err != nil {
				return err
			}
		}
		if len(ms) > 0 {
			s.log.Info("manifests keyed: their record ids are replaced by keyed hashes", "manifests", len(ms))
		}
		return nil
	})
}

// q rewrites ? placeholders as $n for PostgreSQL.
func (s *Store) q(query string) string { return s.opts.Dialect.Rebind(query) }

func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *erasure.Error
	if errors.As(err, &e) {
		return err
	}
	return &erasure.Error{Code: erasure.EUNAVAILABLE, Message: "record store: " + err.Error()}
}

const cols = `source, id, version, deleted_at, reason, updated_at, moved_in, payload, erased`

// row is a record as stored.
type row struct {
	source, id string
	version    int64
	deletedAt  sql.NullInt64
	reason     sql.NullString
	updatedAt  int64
	movedIn    sql.NullInt64
	payload    sql.NullString
	// erased is the identifier type an erasure tombstoned the record as (records.Write.ErasedAs).
	erased sql.NullString
}

func (r *row) dest() []any {
	return []any{&r.source, &r.id, &r.version, &r.deletedAt, &r.reason, &r.updatedAt, &r.movedIn, &r.payload, &r.erased}
}

func (r *row) args() []any {
	return []any{r.source, r.id, r.version, r.deletedAt, r.reason, r.updatedAt, r.movedIn, r.payload, r.erased}
}

func (r *row) record(partition string) *records.Record {
	rec := &records.Record{Source: r.source, ID: r.id, Version: r.version, Reason: r.reason.String,
		UpdatedAt: time.UnixMilli(r.updatedAt).UTC(), Partition: partition}
	if r.payload.Valid {
		rec.Payload = json.RawMessage(r.payload.String)
	}
	if r.deletedAt.Valid {
		t := time.UnixMilli(r.deletedAt.Int64).UTC()
		rec.Deleted, rec.DeletedAt = true, &t
	}
	return rec
}

// sum is the record's contribution to a checksum (records.RawRecord.Checksum).
func (r *row) sum() uint64 {
	raw := records.RawRecord{Source: r.source, ID: r.id, Version: r.version, Deleted: r.deletedAt.Valid, DeletedAt: r.deletedAt.Int64, Reason: r.reason.String}
	if r.payload.Valid {
		raw.Payload = []byte(r.payload.String)
	}
	return uint64(raw.Checksum())
}

// Get implements records.Service.
func (s *Store) Get(ctx context.Context, source, id string) (*records.Record, error) {
	if err := records.ValidSource(source); err != nil {
		return nil, err
	}
	if err := records.ValidID(id); err != nil {
		return nil, err
	}
	// One statement for both partitions: a GET costs one round trip whatever it finds, and
	// both sides are primary-key lookups. A lookup takes microseconds: once it starts it is not
	// worth cancelling, and a context that can be cancelled costs database/sql a goroutine per
	// query. A context already done still fails it.
	if err := ctx.Err(); err != nil {
		return nil, unavailable(err)
	}
	var r row
	var part string
	err := s.get.QueryRowContext(context.WithoutCancel(ctx), source, id, source, id).Scan(append([]any{&part}, r.dest()...)...)
	if err == nil {
		return r.record(part), nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, unavailable(err)
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "record %s/%s was never seen", source, records.Clip(id))
}

// Put implements records.Service.
func (s *Store) Put(ctx context.Context, source string, w records.Write) (*records.Record, string, error) {
	res, err := s.WriteBatch(ctx, source, []records.Write{w})
	if err != nil {
		return nil, "", err
	}
	if res[0].Err != nil {
		return nil, "", res[0].Err
	}
	return res[0].Record, res[0].Status, nil
}

// Delete implements records.Service.
func (s *Store) Delete(ctx context.Context, source, id string, o records.DeleteOptions) (*records.Record, string, error) {
	return s.Put(ctx, source, records.Write{ID: id, Version: o.Version, Deleted: true, Reason: o.Reason, Purge: o.Purge, ErasedAs: o.ErasedAs})
}

// WriteBatch implements records.Service.
func (s *Store) WriteBatch(ctx context.Context, source string, writes []records.Write) ([]records.WriteResult, error) {
	if err := records.ValidSource(source); err != nil {
		return nil, err
	}
	if len(writes) > records.MaxBatch {
		return nil, erasure.Errorf(erasure.ETOOLARGE, "a batch holds at most %d writes", records.MaxBatch)
	}
	results := make([]records.WriteResult, len(writes))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		l, err := s.lockLedger(ctx, tx, source)
		if err != nil {
			return err
		}
		now := s.opts.Now().UnixMilli()
		var back []resurrection
		for i, w := range writes {
			results[i] = records.WriteResult{ID: w.ID}
			if err := validWrite(&w); err != nil {
				results[i].Err = err
				continue
			}
			rec, status, erasedAs, err := s.apply(ctx, tx, l, source, w, now)
			var e *erasure.Error
			if errors.As(err, &e) {
				results[i].Err = e
				continue
			} else if err != nil {
				return unavailable(err)
			}
			results[i].Version, results[i].Status, results[i].Record = rec.Version, status, rec
			if erasedAs != "" {
				back = append(back, resurrection{w: w, as: erasedAs, version: rec.Version})
			}
		}
		if err := l.save(ctx, tx); err != nil {
			return err
		}
		return s.auditResurrections(ctx, tx, source, back, now)
	})
	if err != nil {
		for i := range results {
			results[i].Record, results[i].Status, results[i].Version = nil, "", 0
		}
	}
	return results, err
}

// resurrection is a forced write that brought back a record an erasure had tombstoned.
type resurrection struct {
	w       records.Write
	as      string // the identifier type it was erased as
	version int64
}

// auditResurrections appends one records.resurrected event for the forced writes of a batch
// that brought back erased records, as the transaction's last statement. The records are
// named by the keyed hash of the identifier they were erased as (the hash the erasure
// request's own events carry), never in clear.
func (s *Store) auditResurrections(ctx context.Context, tx *sql.Tx, source string, back []resurrection, now int64) error {
	if len(back) == 0 {
		return nil
	}
	type item struct {
		Record  string `json:"record,omitempty"`
		Version int64  `json:"version"`
		Actor   string `json:"actor"`
	}
	items := make([]item, len(back))
	actors := map[string]bool{}
	for i, r := range back {
		items[i] = item{Version: r.version, Actor: actorOr(r.w.Actor)}
		if s.opts.Hasher != nil {
			items[i].Record = s.opts.Hasher.Identifier(erasure.Identifier{Type: r.as, Value: r.w.ID})
		}
		actors[items[i].Actor] = true
	}
	actor := items[0].Actor
	if len(actors) > 1 {
		actor = "several"
	}
	data, _ := json.Marshal(map[string]any{"source": source, "count": len(items), "records": items})
	ev := &erasure.AuditEvent{Time: time.UnixMilli(now).UTC(), Actor: actor, Type: records.EventResurrected, Data: data}
	if err := s.opts.AppendAudit(ctx, tx, ev); err != nil {
		return unavailable(err)
	}
	s.log.Warn("erased records brought back by a forced write", "source", source, "records", len(items), "actor", actor)
	return nil
}

// validWrite checks w (records.Write.Validate) and compacts its payload.
func validWrite(w *records.Write) *erasure.Error {
	var e *erasure.Error
	if err := w.Validate(); errors.As(err, &e) {
		return e
	} else if err != nil {
		return erasure.Errorf(erasure.EINVALID, "record %s: %v", records.Clip(w.ID), err)
	}
	if w.Deleted {
		return nil
	}
	compact, err := compactJSON(w.Payload)
	if err != nil {
		return erasure.Errorf(erasure.EINVALID, "record %s: payload is not valid JSON", records.Clip(w.ID))
	}
	w.Payload = compact
	return nil
}

// ledger is a source's count and checksum, locked for the transaction.
type ledger struct {
	source   string
	count    int64
	checksum uint64
	parts    map[string]int64 // records per partition
	dirty    bool
	s        *Store
}

func (l *ledger) add(r *row, part string) {
	l.count++
	l.checksum += r.sum()
	l.parts[part]++
	l.dirty = true
}

func (l *ledger) remove(r *row, part string) {
	l.count--
	l.checksum -= r.sum()
	l.parts[part]--
	l.dirty = true
}

// move shifts n records from one partition to the other; the union does not change.
func (l *ledger) move(from, to string, n int64) {
	l.parts[from] -= n
	l.parts[to] += n
	l.dirty = true
}

func (l *ledger) save(ctx context.Context, tx *sql.Tx) error {
	if !l.dirty {
		return nil
	}
	_, err := tx.ExecContext(ctx, l.s.q(`UPDATE records_ledger SET count = ?, checksum = ?, live_count = ?, deleted_count = ? WHERE source = ?`),
		l.count, int64(l.checksum), l.parts[records.Live], l.parts[records.Deleted], l.source)
	return err
}

// lockLedger takes the source's write lock first thing in the transaction: on SQLite the
// INSERT takes the database write lock (no lock upgrade later, so no deadlock between
// writers); on PostgreSQL FOR UPDATE locks the source's ledger row.
func (s *Store) lockLedger(ctx context.Context, tx *sql.Tx, source string) (*ledger, error) {
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO records_ledger (source, count, checksum, live_count, deleted_count) VALUES (?, 0, 0, 0, 0) ON CONFLICT (source) DO NOTHING`), source); err != nil {
		return nil, unavailable(err)
	}
	lock := ""
	if s.pg {
		lock = " FOR UPDATE"
	}
	l := &ledger{source: source, s: s, parts: map[string]int64{}}
	var sum, live, deleted int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT count, checksum, live_count, deleted_count FROM records_ledger WHERE source = ?`+lock), source).Scan(&l.count, &sum, &live, &deleted); err != nil {
		return nil, unavailable(err)
	}
	l.parts[records.Live], l.parts[records.Deleted] = live, deleted
	l.checksum = uint64(sum)
	return l, nil
}

// current reads (source, id) in tx from live, then deleted.
func (s *Store) current(ctx context.Context, tx *sql.Tx, source, id string) (*row, string, error) {
	for _, part := range []string{records.Live, records.Deleted} {
		var r row
		err := tx.QueryRowContext(ctx, s.q(`SELECT `+cols+` FROM records_`+part+` WHERE source = ? AND id = ?`), source, id).Scan(r.dest()...)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		} else if err != nil {
			return nil, "", err
		}
		return &r, part, nil
	}
	return nil, "", nil
}

// apply performs one validated write inside tx. It returns an *erasure.Error for a refusal,
// and, for a forced write that brought back a record an erasure had tombstoned, the
// identifier type it had been erased as.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, l *ledger, source string, w records.Write, now int64) (*records.Record, string, string, error) {
	cur, part, err := s.current(ctx, tx, source, w.ID)
	if err != nil {
		return nil, "", "", err
	}
	next := row{source: source, id: w.ID, updatedAt: now}
	var status, resurrected string
	switch {
	case w.Deleted && cur == nil:
		return nil, "", "", erasure.Errorf(erasure.ENOTFOUND, "record %s/%s was never seen", source, records.Clip(w.ID))
	case w.Deleted && cur.deletedAt.Valid:
		// Already a tombstone: idempotent, except a purge of a payload still kept; an erasure
		// of it marks it as erased all the same.
		if !w.Purge || !cur.payload.Valid {
			if w.Version != 0 && w.Version != cur.version {
				return nil, "", "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is a tombstone at version %d", source, records.Clip(w.ID), cur.version)
			}
			if w.ErasedAs != "" && !cur.erased.Valid {
				if _, err := tx.ExecContext(ctx, s.q(`UPDATE records_`+part+` SET erased = ? WHERE source = ? AND id = ?`), w.ErasedAs, source, w.ID); err != nil {
					return nil, "", "", err
				}
			}
			return cur.record(part), records.StatusUnchanged, "", nil
		}
		if w.Version != 0 && w.Version <= cur.version {
			return nil, "", "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is at version %d; a purge needs a higher one", source, records.Clip(w.ID), cur.version)
		}
		next = *cur
		next.version, next.updatedAt, next.payload = versionOr(w.Version, cur.version+1), now, sql.NullString{}
		if w.ErasedAs != "" {
			next.erased = sql.NullString{String: w.ErasedAs, Valid: true}
		}
		status = records.StatusDeleted
	case w.Deleted:
		if w.Version != 0 && w.Version <= cur.version {
			return nil, "", "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is at version %d; a deletion needs a higher one", source, records.Clip(w.ID), cur.version)
		}
		next = *cur
		next.version, next.updatedAt = versionOr(w.Version, cur.version+1), now
		next.deletedAt = sql.NullInt64{Int64: now, Valid: true}
		next.reason = sql.NullString{String: records.ReasonOr(w.Reason), Valid: true}
		if w.Purge {
			next.payload = sql.NullString{}
		}
		if w.ErasedAs != "" {
			next.erased = sql.NullString{String: w.ErasedAs, Valid: true}
		}
		status = records.StatusDeleted
	default:
		next.payload = sql.NullString{String: string(w.Payload), Valid: true}
		switch {
		case cur == nil:
			next.version, status = versionOr(w.Version, 1), records.StatusCreated
		case cur.erased.Valid && !w.Force:
			// Erased by an erasure request: a plain write must not undo it.
			return nil, "", "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s was erased by an erasure request: only an operator's forced write (force, role operate) brings it back", source, records.Clip(w.ID))
		case w.Version == cur.version && !cur.deletedAt.Valid && cur.payload.Valid && cur.payload.String == string(w.Payload):
			return cur.record(part), records.StatusUnchanged, "", nil
		case w.Version != 0 && w.Version <= cur.version:
			return nil, "", "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is at version %d: version %d is stale or conflicting", source, records.Clip(w.ID), cur.version, w.Version)
		default:
			next.version, status = versionOr(w.Version, cur.version+1), records.StatusUpdated
		}
		if cur != nil && cur.erased.Valid {
			resurrected = cur.erased.String
		}
	}
	// Replace cur by next, in live; a record that was in deleted comes back to live unless it
	// stays a tombstone (a purge of an archived tombstone stays archived).
	target := records.Live
	if cur != nil && part == records.Deleted && next.deletedAt.Valid {
		target = records.Deleted
	}
	if cur != nil {
		l.remove(cur, part)
		if part != target {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM records_`+part+` WHERE source = ? AND id = ?`), source, w.ID); err != nil {
				return nil, "", "", err
			}
		}
	}
	if cur != nil && part == target {
		_, err = tx.ExecContext(ctx, s.q(`UPDATE records_`+target+` SET version = ?, deleted_at = ?, reason = ?, updated_at = ?, payload = ?, moved_in = NULL, erased = ? WHERE source = ? AND id = ?`),
			next.version, next.deletedAt, next.reason, next.updatedAt, next.payload, next.erased, source, w.ID)
	} else {
		next.movedIn = sql.NullInt64{}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO records_`+target+` (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), next.args()...)
	}
	if err != nil {
		return nil, "", "", err
	}
	l.add(&next, target)
	return next.record(target), status, resurrected, nil
}

func versionOr(v, def int64) int64 {
	if v != 0 {
		return v
	}
	return def
}

func compactJSON(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Import implements records.Service.
func (s *Store) Import(ctx context.Context, source string, recs []records.Record) error {
	if err := records.ValidSource(source); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		l, err := s.lockLedger(ctx, tx, source)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO records_live (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return unavailable(err)
		}
		defer stmt.Close()
		archived, err := tx.PrepareContext(ctx, s.q(`SELECT COUNT(*) FROM records_deleted WHERE source = ? AND id = ?`))
		if err != nil {
			return unavailable(err)
		}
		defer archived.Close()
		now := s.opts.Now().UnixMilli()
		for i := range recs {
			rec := &recs[i]
			if err := records.ValidID(rec.ID); err != nil {
				return err
			}
			if rec.Version < 1 {
				return erasure.Errorf(erasure.EINVALID, "record %s: version must be positive", records.Clip(rec.ID))
			}
			r := row{source: source, id: rec.ID, version: rec.Version, updatedAt: now}
			if !rec.UpdatedAt.IsZero() {
				r.updatedAt = rec.UpdatedAt.UnixMilli()
			}
			if rec.Payload != nil {
				if err := strictjson.Valid(rec.Payload); err != nil {
					return erasure.Errorf(erasure.EINVALID, "record %s: payload is not valid JSON: %s", records.Clip(rec.ID), erasure.ErrorMessage(err))
				}
				r.payload = sql.NullString{String: string(rec.Payload), Valid: true}
			} else if rec.DeletedAt == nil {
				return erasure.Errorf(erasure.EINVALID, "record %s: payload is required", records.Clip(rec.ID))
			}
			if rec.DeletedAt != nil {
				r.deletedAt = sql.NullInt64{Int64: rec.DeletedAt.UnixMilli(), Valid: true}
				r.reason = sql.NullString{String: records.ReasonOr(rec.Reason), Valid: true}
			}
			var n int
			if err := archived.QueryRowContext(ctx, source, rec.ID).Scan(&n); err != nil {
				return unavailable(err)
			} else if n > 0 {
				return erasure.Errorf(erasure.ECONFLICT, "record %s/%s already exists (archived): import takes new records only", source, records.Clip(rec.ID))
			}
			if _, err := stmt.ExecContext(ctx, r.args()...); err != nil {
				if cur, _, cerr := s.current(ctx, tx, source, rec.ID); cerr == nil && cur != nil {
					return erasure.Errorf(erasure.ECONFLICT, "record %s/%s already exists: import takes new records only", source, records.Clip(rec.ID))
				}
				return unavailable(err)
			}
			l.add(&r, records.Live)
		}
		return l.save(ctx, tx)
	})
}

// Close releases the store's prepared statements; it does not close the database.
func (s *Store) Close() error { return s.get.Close() }
