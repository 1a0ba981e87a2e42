package records

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"erasure"
)

// Audit event types written by the record store.
const (
	EventArchived   = "records.archived"
	EventRestored   = "records.restored"
	EventReconciled = "records.reconciled"
)

// Partition names.
const (
	Live    = "live"
	Deleted = "deleted"
)

// MaxIDBytes is the longest record id accepted.
const MaxIDBytes = 512

// DefaultBatch is the number of records one move transaction carries unless told otherwise.
const DefaultBatch = 1000

var sourceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidSource returns an EINVALID error unless source matches ^[a-z0-9][a-z0-9._-]{0,63}$.
func ValidSource(source string) error {
	if !sourceRE.MatchString(source) {
		return erasure.Errorf(erasure.EINVALID, "source %q is not valid: use 1-64 lower case letters, digits, '.', '_' or '-'", clip(source))
	}
	return nil
}

// ValidID returns an EINVALID error unless id is 1-512 bytes of printable UTF-8.
func ValidID(id string) error {
	switch {
	case id == "":
		return erasure.Errorf(erasure.EINVALID, "record id is empty")
	case len(id) > MaxIDBytes:
		return erasure.Errorf(erasure.EINVALID, "record id is longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(id):
		return erasure.Errorf(erasure.EINVALID, "record id is not valid UTF-8")
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return erasure.Errorf(erasure.EINVALID, "record id holds a non-printable character")
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Record is one source record. A tombstone has Deleted set, a DeletedAt and a Reason; its
// Payload is nil once purged.
type Record struct {
	Source    string          `json:"source"`
	ID        string          `json:"id"`
	Version   int64           `json:"version"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Deleted   bool            `json:"deleted,omitempty"`
	DeletedAt *time.Time      `json:"deleted_at,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Partition is where the record sits: live or deleted.
	Partition string `json:"partition"`
}

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
	// Dialect is "sqlite" (default) or "postgres"; it picks placeholders, WITHOUT ROWID and
	// row locks.
	Dialect string
	Logger  *slog.Logger
}

// Store is the record store. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	rdb  *sql.DB
	opts Options
	log  *slog.Logger
	pg   bool
	get  *sql.Stmt
}

//go:embed migrations/*.sql
var migrations embed.FS

// Open runs the store's migrations on db (each in its own transaction, tracked in
// records_schema_migrations) and returns the store. It returns EINVALID for bad options.
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
	switch opts.Dialect {
	case "", "sqlite":
		opts.Dialect = "sqlite"
	case "postgres":
	default:
		return nil, erasure.Errorf(erasure.EINVALID, "records: unknown dialect %q", opts.Dialect)
	}
	if opts.ReadDB == nil {
		opts.ReadDB = db
	}
	s := &Store{db: db, rdb: opts.ReadDB, opts: opts, log: opts.Logger.WithGroup("records"), pg: opts.Dialect == "postgres"}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("records: migrate: %w", err)
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
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS records_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		text := string(body)
		if !s.pg {
			text = strings.ReplaceAll(text, "/*WITHOUT_ROWID*/", "WITHOUT ROWID")
		}
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM records_schema_migrations WHERE version = ?`), v).Scan(&n); err != nil || n > 0 {
				return err
			}
			for _, stmt := range splitSQL(text) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %s: %w", base, err)
				}
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO records_schema_migrations (version, applied_at) VALUES (?, ?)`), v, s.opts.Now().UnixMilli())
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// splitSQL splits a migration into statements at semicolons ending a line, dropping comments.
func splitSQL(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// q rewrites ? placeholders as $n for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

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

const cols = `source, id, version, deleted_at, reason, updated_at, moved_in, payload`

// row is a record as stored.
type row struct {
	source, id string
	version    int64
	deletedAt  sql.NullInt64
	reason     sql.NullString
	updatedAt  int64
	movedIn    sql.NullInt64
	payload    sql.NullString
}

func (r *row) dest() []any {
	return []any{&r.source, &r.id, &r.version, &r.deletedAt, &r.reason, &r.updatedAt, &r.movedIn, &r.payload}
}

func (r *row) args() []any {
	return []any{r.source, r.id, r.version, r.deletedAt, r.reason, r.updatedAt, r.movedIn, r.payload}
}

func (r *row) record(partition string) *Record {
	rec := &Record{Source: r.source, ID: r.id, Version: r.version, Reason: r.reason.String,
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

// sum is the record's contribution to a checksum: the first 8 bytes of SHA-256 over its
// identity and content (source, id, version, deletion time and reason, payload). Checksums
// are sums of these modulo 2^64, so they do not depend on order or on the partition.
func (r *row) sum() uint64 {
	h := sha256.New()
	var n [8]byte
	field := func(s string, ok bool) {
		if !ok {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(r.source, true)
	field(r.id, true)
	field(strconv.FormatInt(r.version, 10), true)
	field(strconv.FormatInt(r.deletedAt.Int64, 10), r.deletedAt.Valid)
	field(r.reason.String, r.reason.Valid && r.deletedAt.Valid)
	field(r.payload.String, r.payload.Valid)
	var out [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(out[:0])[:8])
}

// Checksum is an order-independent digest of a set of records (a sum of per-record hashes
// modulo 2^64), printed as 16 hex digits.
type Checksum uint64

func (c Checksum) String() string { return fmt.Sprintf("%016x", uint64(c)) }

// MarshalText renders the checksum as hex.
func (c Checksum) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText parses 16 hex digits.
func (c *Checksum) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	*c = Checksum(v)
	return err
}

// RecordChecksum returns the checksum contribution of one record, for callers (tests, tools)
// that keep their own model of a store's content.
func RecordChecksum(source, id string, version int64, payload json.RawMessage, deletedAt *time.Time, reason string) Checksum {
	r := row{source: source, id: id, version: version}
	if payload != nil {
		r.payload = sql.NullString{String: string(payload), Valid: true}
	}
	if deletedAt != nil {
		r.deletedAt = sql.NullInt64{Int64: deletedAt.UnixMilli(), Valid: true}
		r.reason = sql.NullString{String: reason, Valid: true}
	}
	return Checksum(r.sum())
}

// Get returns the record (source, id) from live or, failing that, deleted: ENOTFOUND when it
// was never seen. A tombstone is returned as a record with Deleted set; callers answer 410.
func (s *Store) Get(ctx context.Context, source, id string) (*Record, error) {
	if err := ValidSource(source); err != nil {
		return nil, err
	}
	if err := ValidID(id); err != nil {
		return nil, err
	}
	// One statement for both partitions: a GET costs one round trip whatever it finds, and
	// both sides are primary-key lookups.
	var r row
	var part string
	err := s.get.QueryRowContext(ctx, source, id, source, id).Scan(append([]any{&part}, r.dest()...)...)
	if err == nil {
		return r.record(part), nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, unavailable(err)
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "record %s/%s was never seen", source, clip(id))
}

// Write is one change of a record.
type Write struct {
	ID string `json:"id"`
	// Version is the record's new version; 0 means one more than the current one (counting
	// the deleted partition, so a returning id never restarts at 1).
	Version int64 `json:"version,omitempty"`
	// Payload is the record's JSON, required unless Deleted.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Deleted makes a tombstone; Reason says why (default "deleted").
	Deleted bool   `json:"deleted,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Purge drops the payload of the tombstone (id-only tombstone).
	Purge bool `json:"purge,omitempty"`
}

// Write outcomes.
const (
	StatusCreated   = "created"   // a new record
	StatusUpdated   = "updated"   // a higher version replaced the record
	StatusUnchanged = "unchanged" // the same version and payload: nothing to do
	StatusDeleted   = "deleted"   // a tombstone was made (or purged)
)

// WriteResult is what one Write did; Err is set when it was refused (the rest of a batch
// still applies).
type WriteResult struct {
	ID      string         `json:"id"`
	Version int64          `json:"version,omitempty"`
	Status  string         `json:"status,omitempty"`
	Err     *erasure.Error `json:"-"`
	Record  *Record        `json:"-"`
}

// Put applies one write: a higher version replaces, the same version with an identical
// payload is a no-op, a lower or conflicting one is ECONFLICT; a write to an id in deleted
// brings it back to live in the same transaction. EINVALID for bad input.
func (s *Store) Put(ctx context.Context, source string, w Write) (*Record, string, error) {
	res, err := s.WriteBatch(ctx, source, []Write{w})
	if err != nil {
		return nil, "", err
	}
	if res[0].Err != nil {
		return nil, "", res[0].Err
	}
	return res[0].Record, res[0].Status, nil
}

// DeleteOptions qualify a Delete.
type DeleteOptions struct {
	// Version is the tombstone's version; 0 means the next one.
	Version int64
	Reason  string
	// Purge drops the payload.
	Purge bool
}

// Delete makes (source, id) a tombstone with the next version, the current time and reason;
// on a tombstone it is a no-op, except that Purge drops a payload still there. ENOTFOUND when
// the id was never seen, ECONFLICT for a stale Version.
func (s *Store) Delete(ctx context.Context, source, id string, o DeleteOptions) (*Record, string, error) {
	return s.Put(ctx, source, Write{ID: id, Version: o.Version, Deleted: true, Reason: o.Reason, Purge: o.Purge})
}

// MaxBatch is the largest number of writes one WriteBatch accepts.
const MaxBatch = 10000

// WriteBatch applies writes in one transaction, in order; each write's refusal is reported in
// its result and does not stop the others. EINVALID for a bad source or too many writes.
func (s *Store) WriteBatch(ctx context.Context, source string, writes []Write) ([]WriteResult, error) {
	if err := ValidSource(source); err != nil {
		return nil, err
	}
	if len(writes) > MaxBatch {
		return nil, erasure.Errorf(erasure.ETOOLARGE, "a batch holds at most %d writes", MaxBatch)
	}
	results := make([]WriteResult, len(writes))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		l, err := s.lockLedger(ctx, tx, source)
		if err != nil {
			return err
		}
		now := s.opts.Now().UnixMilli()
		for i, w := range writes {
			results[i] = WriteResult{ID: w.ID}
			if err := validWrite(&w); err != nil {
				results[i].Err = err
				continue
			}
			rec, status, err := s.apply(ctx, tx, l, source, w, now)
			var e *erasure.Error
			if errors.As(err, &e) {
				results[i].Err = e
				continue
			} else if err != nil {
				return unavailable(err)
			}
			results[i].Version, results[i].Status, results[i].Record = rec.Version, status, rec
		}
		return l.save(ctx, tx)
	})
	return results, err
}

func validWrite(w *Write) *erasure.Error {
	var e *erasure.Error
	if err := ValidID(w.ID); errors.As(err, &e) {
		return e
	}
	if w.Version < 0 {
		return erasure.Errorf(erasure.EINVALID, "record %s: version must be positive", clip(w.ID))
	}
	if w.Deleted {
		if w.Payload != nil {
			return erasure.Errorf(erasure.EINVALID, "record %s: a deletion carries no payload", clip(w.ID))
		}
		if len(w.Reason) > 256 {
			return erasure.Errorf(erasure.EINVALID, "record %s: reason is longer than 256 bytes", clip(w.ID))
		}
		return nil
	}
	if w.Purge || w.Reason != "" {
		return erasure.Errorf(erasure.EINVALID, "record %s: purge and reason go with deleted", clip(w.ID))
	}
	if len(w.Payload) == 0 || string(w.Payload) == "null" {
		return erasure.Errorf(erasure.EINVALID, "record %s: payload is required", clip(w.ID))
	}
	if !json.Valid(w.Payload) {
		return erasure.Errorf(erasure.EINVALID, "record %s: payload is not valid JSON", clip(w.ID))
	}
	compact, err := compactJSON(w.Payload)
	if err != nil {
		return erasure.Errorf(erasure.EINVALID, "record %s: payload is not valid JSON", clip(w.ID))
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
		l.count, int64(l.checksum), l.parts[Live], l.parts[Deleted], l.source)
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
	l.parts[Live], l.parts[Deleted] = live, deleted
	l.checksum = uint64(sum)
	return l, nil
}

// current reads (source, id) in tx from live, then deleted.
func (s *Store) current(ctx context.Context, tx *sql.Tx, source, id string) (*row, string, error) {
	for _, part := range []string{Live, Deleted} {
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

// apply performs one validated write inside tx. It returns an *erasure.Error for a refusal.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, l *ledger, source string, w Write, now int64) (*Record, string, error) {
	cur, part, err := s.current(ctx, tx, source, w.ID)
	if err != nil {
		return nil, "", err
	}
	next := row{source: source, id: w.ID, updatedAt: now}
	var status string
	switch {
	case w.Deleted && cur == nil:
		return nil, "", erasure.Errorf(erasure.ENOTFOUND, "record %s/%s was never seen", source, clip(w.ID))
	case w.Deleted && cur.deletedAt.Valid:
		// Already a tombstone: idempotent, except a purge of a payload still kept.
		if !w.Purge || !cur.payload.Valid {
			if w.Version != 0 && w.Version != cur.version {
				return nil, "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is a tombstone at version %d", source, clip(w.ID), cur.version)
			}
			return cur.record(part), StatusUnchanged, nil
		}
		if w.Version != 0 && w.Version <= cur.version {
			return nil, "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is at version %d; a purge needs a higher one", source, clip(w.ID), cur.version)
		}
		next = *cur
		next.version, next.updatedAt, next.payload = versionOr(w.Version, cur.version+1), now, sql.NullString{}
		status = StatusDeleted
	case w.Deleted:
		if w.Version != 0 && w.Version <= cur.version {
			return nil, "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is at version %d; a deletion needs a higher one", source, clip(w.ID), cur.version)
		}
		next = *cur
		next.version, next.updatedAt = versionOr(w.Version, cur.version+1), now
		next.deletedAt = sql.NullInt64{Int64: now, Valid: true}
		next.reason = sql.NullString{String: reasonOr(w.Reason), Valid: true}
		if w.Purge {
			next.payload = sql.NullString{}
		}
		status = StatusDeleted
	default:
		next.payload = sql.NullString{String: string(w.Payload), Valid: true}
		switch {
		case cur == nil:
			next.version, status = versionOr(w.Version, 1), StatusCreated
		case w.Version == cur.version && !cur.deletedAt.Valid && cur.payload.Valid && cur.payload.String == string(w.Payload):
			return cur.record(part), StatusUnchanged, nil
		case w.Version != 0 && w.Version <= cur.version:
			return nil, "", erasure.Errorf(erasure.ECONFLICT, "record %s/%s is at version %d: version %d is stale or conflicting", source, clip(w.ID), cur.version, w.Version)
		default:
			next.version, status = versionOr(w.Version, cur.version+1), StatusUpdated
		}
	}
	// Replace cur by next, in live; a record that was in deleted comes back to live unless it
	// stays a tombstone (a purge of an archived tombstone stays archived).
	target := Live
	if cur != nil && part == Deleted && next.deletedAt.Valid {
		target = Deleted
	}
	if cur != nil {
		l.remove(cur, part)
		if part != target {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM records_`+part+` WHERE source = ? AND id = ?`), source, w.ID); err != nil {
				return nil, "", err
			}
		}
	}
	if cur != nil && part == target {
		_, err = tx.ExecContext(ctx, s.q(`UPDATE records_`+target+` SET version = ?, deleted_at = ?, reason = ?, updated_at = ?, payload = ?, moved_in = NULL WHERE source = ? AND id = ?`),
			next.version, next.deletedAt, next.reason, next.updatedAt, next.payload, source, w.ID)
	} else {
		next.movedIn = sql.NullInt64{}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO records_`+target+` (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), next.args()...)
	}
	if err != nil {
		return nil, "", err
	}
	l.add(&next, target)
	return next.record(target), status, nil
}

func versionOr(v, def int64) int64 {
	if v != 0 {
		return v
	}
	return def
}

func reasonOr(r string) string {
	if r == "" {
		return "deleted"
	}
	return r
}

func compactJSON(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Import inserts records that the store has never seen, as they are (version, tombstone,
// payload), in one transaction: the initial load of a source. Records go to live. EINVALID
// for a bad record, ECONFLICT when an id already exists (nothing is then imported).
func (s *Store) Import(ctx context.Context, source string, recs []Record) error {
	if err := ValidSource(source); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		l, err := s.lockLedger(ctx, tx, source)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO records_live (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`))
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
			if err := ValidID(rec.ID); err != nil {
				return err
			}
			if rec.Version < 1 {
				return erasure.Errorf(erasure.EINVALID, "record %s: version must be positive", clip(rec.ID))
			}
			r := row{source: source, id: rec.ID, version: rec.Version, updatedAt: now}
			if !rec.UpdatedAt.IsZero() {
				r.updatedAt = rec.UpdatedAt.UnixMilli()
			}
			if rec.Payload != nil {
				if !json.Valid(rec.Payload) {
					return erasure.Errorf(erasure.EINVALID, "record %s: payload is not valid JSON", clip(rec.ID))
				}
				r.payload = sql.NullString{String: string(rec.Payload), Valid: true}
			} else if rec.DeletedAt == nil {
				return erasure.Errorf(erasure.EINVALID, "record %s: payload is required", clip(rec.ID))
			}
			if rec.DeletedAt != nil {
				r.deletedAt = sql.NullInt64{Int64: rec.DeletedAt.UnixMilli(), Valid: true}
				r.reason = sql.NullString{String: reasonOr(rec.Reason), Valid: true}
			}
			var n int
			if err := archived.QueryRowContext(ctx, source, rec.ID).Scan(&n); err != nil {
				return unavailable(err)
			} else if n > 0 {
				return erasure.Errorf(erasure.ECONFLICT, "record %s/%s already exists (archived): import takes new records only", source, clip(rec.ID))
			}
			if _, err := stmt.ExecContext(ctx, r.args()...); err != nil {
				if cur, _, cerr := s.current(ctx, tx, source, rec.ID); cerr == nil && cur != nil {
					return erasure.Errorf(erasure.ECONFLICT, "record %s/%s already exists: import takes new records only", source, clip(rec.ID))
				}
				return unavailable(err)
			}
			l.add(&r, Live)
		}
		return l.save(ctx, tx)
	})
}

// Close releases the store's prepared statements; it does not close the database.
func (s *Store) Close() error { return s.get.Close() }
