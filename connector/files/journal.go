package files

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"

	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"erasure"
)

// The journal of a sweep lives in <state>/sweeps/<id>/:
//
//	sweep.json            the sweep id, its start time and its key set (mode 0600)
//	parts/<h>.json        one marker per partition handled: clean, or prepared (a synced
//	                      temporary file waits beside the partition), with the partition's
//	                      size and mtime when it was read
//	parts/<h>.keys        for a prepared partition with the index on, the kept keys' hashes
//
// Correctness never rests on a marker: a partition is rewritten only from its current
// content, so reading it again is always safe. Markers only save work on resume, and a marker
// is trusted only while the partition still has the size and mtime it records (and, for a
// prepared one, while its temporary file has the recorded size). The key set is what lets a
// restarted process finish the sweep without the store; it is deleted with the journal when
// the sweep commits. Every journal file is sealed under the index key: an unsealed marker
// means the partition is read again, and a journal whose sweep.json is not believed
// (damagedJournalError) is discarded by Resume and CommitSweep.

// Plan is one sweep: its id, its key set and the partitions it covers. Several workers (even in
// several processes sharing the snapshot's filesystem) may run RewritePartition for the
// partitions of one plan; one of them then calls Commit.
type Plan struct {
	// ID names the sweep (random; a sweep of the same key set interrupted before reopens its
	// journal, see Begin).
	ID string
	// Keys are the key values erased, sorted and distinct.
	Keys []string
	// Partitions are the partitions listed when the plan was made or opened.
	Partitions []Partition
	// BytesTotal is the sum of the partitions' sizes.
	BytesTotal int64

	keys    *keySet
	started time.Time
	mu      sync.Mutex
	known   map[string]bool
}

func (p *Plan) unknown(parts []Partition) []Partition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Partition
	for _, q := range parts {
		if !p.known[q.Path] {
			out = append(out, q)
		}
	}
	return out
}

func (p *Plan) add(parts []Partition) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range parts {
		p.known[q.Path] = true
		p.Partitions = append(p.Partitions, q)
		p.BytesTotal += q.Size
	}
}

type journalHead struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	Keys    []string  `json:"keys"`
}

// newSweepID returns a random sweep id. It is not derived from the keys: a sweep id shows in
// file names and logs, and a hash of the keys, unkeyed, would let anyone with a list of likely
// identifiers tell which subjects were swept.
func newSweepID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// journalOf returns the head of the interrupted sweep of exactly keys (sorted, distinct), if
// one remains.
func (c *Connector) journalOf(keys []string) (journalHead, bool) {
	ids, err := c.journals()
	if err != nil {
		return journalHead{}, false
	}
	for _, id := range ids {
		head, err := c.openJournal(id)
		if err == nil && slices.Equal(head.Keys, keys) {
			return head, true
		}
	}
	return journalHead{}, false
}

func (c *Connector) sweepsDir() string { return filepath.Join(c.cfg.StateDir, "sweeps") }
func (c *Connector) journalDir(id string) string {
	if isJobID(id) {
		return filepath.Join(c.jobsDir(), id)
	}
	return filepath.Join(c.sweepsDir(), id)
}

// Begin starts (or, for a key set whose sweep was interrupted, reopens) the sweep of keys:
// it records the journal and lists the partitions. Errors as for Sweep; EINVALID when keys is
// empty.
func (c *Connector) Begin(ctx context.Context, keys []string) (*Plan, error) {
	keys = normalizeKeys(keys)
	if len(keys) == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "files: a sweep needs at least one key")
	}
	id := newSweepID()
	dir := c.journalDir(id)
	head := journalHead{ID: id, Started: time.Now().UTC(), Keys: keys}
	if old, ok := c.journalOf(keys); ok {
		head = old
	} else {
		if err := os.MkdirAll(filepath.Join(dir, "parts"), 0o700); err != nil {
			return nil, classifyIO(fmt.Errorf("files: creating sweep journal: %w", err))
		}
		b, _ := json.Marshal(head)
		if err := writeFileSync(filepath.Join(dir, "sweep.json"), c.seal(b), 0o600); err != nil {
			return nil, classifyIO(fmt.Errorf("files: writing sweep journal: %w", err))
		}
		if err := syncDir(c.sweepsDir()); err != nil {
			return nil, classifyIO(err)
		}
	}
	return c.plan(ctx, head)
}

// OpenPlan opens the journal of sweep id, for a worker that did not begin it or for a resume;
// ENOTFOUND when there is no such journal (the sweep committed or never began).
func (c *Connector) OpenPlan(ctx context.Context, id string) (*Plan, error) {
	head, err := c.openJournal(id)
	if err != nil {
		return nil, err
	}
	return c.plan(ctx, head)
}

func (c *Connector) plan(ctx context.Context, head journalHead) (*Plan, error) {
	parts, err := c.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	p := &Plan{ID: head.ID, Keys: head.Keys, keys: newKeySet(head.Keys), started: head.Started, known: map[string]bool{}}
	p.add(parts)
	return p, nil
}

func (c *Connector) openJournal(id string) (journalHead, error) {
	var head journalHead
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return head, erasure.Errorf(erasure.EINVALID, "files: %q is not a sweep id", id)
	}
	b, err := os.ReadFile(filepath.Join(c.journalDir(id), "sweep.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return head, erasure.Errorf(erasure.ENOTFOUND, "files: no journal for sweep %s", id)
	} else if err != nil {
		return head, classifyIO(fmt.Errorf("files: reading sweep journal %s: %w", id, err))
	}
	b, sealed := c.unseal(b)
	if !sealed {
		return head, erasure.Permanent(&damagedJournalError{id: id, why: "unsealed or sealed under another key: written before journals were sealed, or without the index key"})
	}
	if err := json.Unmarshal(b, &head); err != nil || head.ID != id || !slices.Equal(normalizeKeys(head.Keys), head.Keys) || len(head.Keys) == 0 {
		return head, erasure.Permanent(&damagedJournalError{id: id, why: "malformed"})
	}
	return head, nil
}

// damagedJournalError is openJournal's answer for a journal that is not believed: unsealed
// (as every journal written before journals were sealed is), sealed under another index key,
// or malformed. Its key set cannot be trusted, so the sweep cannot go on from it; it can only
// be discarded (discardJournal), which is always safe: a journal only lets a sweep skip work,
// and the next sweep of its subjects reads every partition again.
type damagedJournalError struct {
	id  string
	why string
}

func (e *damagedJournalError) Error() string {
	return fmt.Sprintf("files: sweep journal %s is damaged (%s) and is not believed: the sweep cannot go on from it, and its subjects' next sweep starts afresh (Resume, CommitSweep and AbortSweep discard such a journal)", e.id, e.why)
}

// damagedJournal returns why err's journal is not believed, when err is openJournal's answer
// for such a journal.
func damagedJournal(err error) (string, bool) {
	var de *damagedJournalError
	if errors.As(err, &de) {
		return de.why, true
	}
	return "", false
}

// discardJournal removes the journal of sweep id and its temporary files, for a journal that
// is not believed (why), and says so in the log: the partitions that sweep had already
// swapped stay swapped, and the others are read again by the next sweep of its subjects,
// whose tasks the pipeline still holds.
func (c *Connector) discardJournal(id, why string) {
	// Only a sweep id's first 12 characters name temporary files; a name that is not hex
	// there is no sweep's, and must not match another's (a job's) files.
	if len(id) >= 12 && strings.Trim(id[:12], "0123456789abcdef") == "" {
		c.removeTemps(id)
	}
	os.RemoveAll(filepath.Join(c.sweepsDir(), id))
	c.logger().Warn("sweep journal not believed, discarded with its temporary files; its subjects' next sweep reads every partition again",
		"sweep", id, "reason", why)
}

// Pending returns the ids of the sweeps whose journals remain (interrupted or failed during
// the swap), sorted.
func (c *Connector) Pending() ([]string, error) { return c.journals() }

func (c *Connector) journals() ([]string, error) {
	ents, err := os.ReadDir(c.sweepsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, classifyIO(fmt.Errorf("files: listing sweep journals: %w", err))
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(c.sweepsDir(), e.Name(), "sweep.json")); err == nil {
				ids = append(ids, e.Name())
			} else {
				// A journal whose head never reached the disk did nothing yet.
				os.RemoveAll(filepath.Join(c.sweepsDir(), e.Name()))
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// marker is a partition's state in a sweep's journal.
type marker struct {
	Path     string `json:"path"`
	State    string `json:"state"` // clean or prepared
	Size     int64  `json:"size"`
	ModNs    int64  `json:"mod_ns"`
	TempSize int64  `json:"temp_size,omitempty"`
	Rows     int64  `json:"rows"`
	Removed  int64  `json:"removed"`
	Read     int64  `json:"read"`
	Skipped  bool   `json:"skipped,omitempty"`
	// Hits counts the matching rows of each key, by its index in the plan's Keys (for the
	// guard's count of each subject's rows).
	Hits map[int]int64 `json:"hits,omitempty"`
}

// hitIndexes turns the rows matched per key into counts by the key's index in p.Keys.
func (p *Plan) hitIndexes(hits map[string]int64) map[int]int64 {
	if len(hits) == 0 {
		return nil
	}
	out := make(map[int]int64, len(hits))
	for k, n := range hits {
		if i := sort.SearchStrings(p.Keys, k); i < len(p.Keys) && p.Keys[i] == k {
			out[i] += n
		}
	}
	return out
}

const (
	stateClean    = "clean"
	statePrepared = "prepared"
)

func markerName(rel string) string {
	h := sha256.Sum256([]byte(rel))
	return hex.EncodeToString(h[:12])
}

func (c *Connector) markerPath(id, rel string) string {
	return filepath.Join(c.journalDir(id), "parts", markerName(rel)+".json")
}

func (c *Connector) writeMarker(id string, m marker) error {
	b, _ := json.Marshal(m)
	// No fsync: a lost or torn marker only makes a resume read the partition again.
	return writeFileAtomic(c.markerPath(id, m.Path), c.seal(b), 0o600, false)
}

// seal returns b followed by its seal under the index key ("\n" and 16 hex digits): a
// journal file says which partitions a sweep has handled and which keys it erases, and one
// made or changed by anyone without the key (to make a sweep pass over a partition, or drop
// a key) must not be believed.
func (c *Connector) seal(b []byte) []byte {
	return fmt.Appendf(b, "\n%016x", c.indexKey().sum(b))
}

// unseal returns the content of a sealed file; false when the seal does not hold.
func (c *Connector) unseal(b []byte) ([]byte, bool) {
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 || len(b)-i-1 != 16 {
		return nil, false
	}
	want := fmt.Appendf(nil, "%016x", c.indexKey().sum(b[:i]))
	if !hmac.Equal(b[i+1:], want) {
		return nil, false
	}
	return b[:i], true
}

// validMarker returns the partition's marker when it still describes the partition as it is.
func (c *Connector) validMarker(id, rel string) (marker, bool) {
	var m marker
	b, err := os.ReadFile(c.markerPath(id, rel))
	if err != nil {
		return m, false
	}
	b, ok := c.unseal(b)
	if !ok || json.Unmarshal(b, &m) != nil || m.Path != rel {
		return m, false
	}
	st, err := os.Stat(c.abs(rel))
	if err != nil || st.Size() != m.Size || st.ModTime().UnixNano() != m.ModNs {
		return m, false
	}
	if m.State == statePrepared {
		ts, err := os.Stat(c.tempPath(rel, id))
		if err != nil || ts.Size() != m.TempSize {
			return m, false
		}
	} else if m.State != stateClean {
		return m, false
	}
	return m, true
}

// tempPath is where partition rel is rewritten by sweep id: a hidden name beside it.
func (c *Connector) tempPath(rel, id string) string {
	p := c.abs(rel)
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".erasure-"+id[:12]+".tmp")
}

func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".erasure-") && strings.HasSuffix(name, ".tmp")
}

// Report is what a committed sweep did, or, with Discarded set, that Resume discarded the
// journal of a sweep instead of finishing it.
type Report struct {
	ID string `json:"id"`
	// Discarded is set when the sweep's journal was not believed (see Resume) and was removed
	// with the sweep's temporary files: the sweep did not commit, and every count below is
	// zero. Reason says why the journal was not believed.
	Discarded bool   `json:"discarded,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Partitions is how many partitions the sweep covered; Rewritten how many it replaced;
	// Skipped how many the skip index let it leave unread.
	Partitions int `json:"partitions"`
	Rewritten  int `json:"rewritten"`
	Skipped    int `json:"skipped"`
	// Rows is the rows read, Removed the rows erased.
	Rows    int64 `json:"rows_scanned"`
	Removed int64 `json:"rows_removed"`
	// BytesRead is the partition bytes read (some twice when a partition was rewritten),
	// BytesTotal the snapshot's size.
	BytesRead  int64 `json:"bytes_read"`
	BytesTotal int64 `json:"bytes_total"`
	// IndexBytes is the skip index bytes read in this process's part of the sweep.
	IndexBytes int64     `json:"index_bytes"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	// RemovedByKey is the rows removed per key value, summed from the partitions' journal
	// markers (so a resumed sweep counts the partitions prepared before its interruption). It
	// holds key values in clear: it is never written down.
	RemovedByKey map[string]int64 `json:"-"`
}

// SweepResult returns the report in the domain's terms (Bytes is the bytes read).
func (r Report) SweepResult() erasure.SweepResult {
	return erasure.SweepResult{Partitions: r.Partitions, Scanned: r.Rows, Removed: r.Removed, Bytes: r.BytesRead}
}

// Commit swaps in every prepared partition of plan and ends the sweep: each temporary file is
// renamed over its partition, the directories are synced, the skip index is brought up to
// date, and the journal is removed. Every partition listed now must have been handled by
// RewritePartition and be unchanged since, or Commit returns ECONFLICT and swaps nothing. A
// failure during the renames leaves the journal, so that Resume finishes the swap.
func (c *Connector) Commit(ctx context.Context, plan *Plan) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	parts, err := c.Partitions(ctx)
	if err != nil {
		return Report{}, err
	}
	rep := Report{ID: plan.ID, Partitions: len(parts), Started: plan.started, RemovedByKey: map[string]int64{}}
	for i, n := range c.keyHits(plan) {
		if n > 0 {
			rep.RemovedByKey[plan.Keys[i]] = n
		}
	}
	var prepared []marker
	for _, p := range parts {
		m, ok := c.validMarker(plan.ID, p.Path)
		if !ok {
			return Report{}, erasure.Errorf(erasure.ECONFLICT, "files: partition %s was not swept or changed since; rewrite it before committing sweep %s", c.abs(p.Path), plan.ID)
		}
		rep.Rows += m.Rows
		rep.Removed += m.Removed
		rep.BytesRead += m.Read
		rep.BytesTotal += p.Size
		if m.Skipped {
			rep.Skipped++
		}
		if m.State == statePrepared {
			prepared = append(prepared, m)
		}
	}
	dirs := map[string]bool{}
	for _, m := range prepared {
		hook("rename", m.Path)
		if err := os.Rename(c.tempPath(m.Path, plan.ID), c.abs(m.Path)); err != nil {
			return Report{}, errCommit(classifyIO(fmt.Errorf("files: swapping in %s: %w", c.abs(m.Path), err)))
		}
		dirs[filepath.Dir(c.abs(m.Path))] = true
		hook("renamed", m.Path)
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return Report{}, errCommit(classifyIO(err))
		}
	}
	rep.Rewritten = len(prepared)
	for _, m := range prepared {
		if c.cfg.Index {
			hashes, err := c.readHashes(filepath.Join(c.journalDir(plan.ID), "parts", markerName(m.Path)+".keys"))
			if err == nil {
				c.writeIndex(m.Path, hashes) // best effort: a missing sidecar only costs a read
				continue
			}
		}
		// With the index off (or the kept keys' hashes unreadable), a sidecar an earlier
		// configuration left would keep the removed keys' hashes: it goes.
		if err := os.Remove(c.indexPath(m.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.logger().Warn("skip index: the sidecar of a rewritten partition was not removed", "partition", m.Path, "err", err)
		}
	}
	c.pruneIndex()
	hook("committed", "")
	c.removeTemps(plan.ID)
	os.RemoveAll(c.journalDir(plan.ID))
	c.dropSubsumed(plan.Keys)
	rep.Finished = time.Now().UTC()
	what := "sweep committed"
	if isJobID(plan.ID) {
		what = "job committed" // a retention or replay job
	}
	c.logger().Info(what, "sweep", plan.ID, "partitions", rep.Partitions, "rewritten", rep.Rewritten,
		"skipped", rep.Skipped, "rows_scanned", rep.Rows, "rows_removed", rep.Removed, "bytes_read", rep.BytesRead)
	return rep, nil
}

func errCommit(err error) error { return fmt.Errorf("%w (%w)", err, errCommitted) }

// Abort abandons a sweep that has not begun its swap: its temporary files and journal are
// removed, and no partition changes. Aborting a sweep that is swapping would leave a mix, so
// callers abort only after a failure before Commit.
func (c *Connector) Abort(plan *Plan) {
	c.removeTemps(plan.ID)
	os.RemoveAll(c.journalDir(plan.ID))
}

// removeTemps deletes the temporary files of sweep id ("" for every sweep) in the snapshot.
func (c *Connector) removeTemps(id string) {
	suffix := ".tmp"
	if id != "" {
		suffix = ".erasure-" + id[:12] + ".tmp"
	}
	filepath.WalkDir(c.cfg.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p != c.cfg.Path && d.Name() == stateDirName {
				return filepath.SkipDir
			}
			return nil
		}
		if isTempName(d.Name()) && strings.HasSuffix(d.Name(), suffix) {
			os.Remove(p)
		}
		return nil
	})
}

// dropSubsumed removes the journals of interrupted sweeps whose keys are all in keys (the
// sweep that just committed erased their keys too), and the journals that are not believed.
func (c *Connector) dropSubsumed(keys []string) {
	ids, _ := c.journals()
	set := map[string]bool{}
	for _, k := range keys {
		set[k] = true
	}
	for _, id := range ids {
		head, err := c.openJournal(id)
		if why, damaged := damagedJournal(err); damaged {
			// Nothing would ever finish it (Begin does not reopen a journal it does not
			// believe), and an unsealed one holds its keys in clear: it goes too. Journals are
			// written whole (renamed into place), so this is never one being begun.
			c.discardJournal(id, why)
			continue
		} else if err != nil {
			continue
		}
		all := true
		for _, k := range head.Keys {
			if !set[k] {
				all = false
				break
			}
		}
		if all {
			c.removeTemps(id)
			os.RemoveAll(c.journalDir(id))
		}
	}
}

// lock takes the snapshot's lock file for the life of a sweep, a resume or an index build.
// The snapshot directory must exist: creating it (with the state directory inside) would turn
// a snapshot that is not there, such as an unmounted volume, into an empty one that every
// sweep erases successfully.
func (c *Connector) lock() (func(), error) {
	if st, err := os.Stat(c.cfg.Path); err != nil {
		return nil, classifyIO(fmt.Errorf("files: snapshot directory %s: %w", c.cfg.Path, err))
	} else if !st.IsDir() {
		return nil, erasure.Permanentf("files: snapshot path %s is not a directory", c.cfg.Path)
	}
	if err := os.MkdirAll(c.cfg.StateDir, 0o700); err != nil {
		return nil, classifyIO(fmt.Errorf("files: creating state directory: %w", err))
	}
	f, err := os.OpenFile(filepath.Join(c.cfg.StateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, classifyIO(fmt.Errorf("files: opening lock file: %w", err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, erasure.Transient(erasure.Errorf(erasure.ECONFLICT, "files: another sweep of %s is running", c.cfg.Path), 0)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// writeFileSync writes a file whole through a temporary name and syncs it before the rename.
func writeFileSync(name string, b []byte, perm os.FileMode) error {
	return writeFileAtomic(name, b, perm, true)
}

// The temporary name is the writer's own: two processes writing the same file at once (a unit
// taken over from a slow worker) each rename a whole file, the last one winning.
func writeFileAtomic(name string, b []byte, perm os.FileMode, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*.new")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("files: syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("files: syncing directory %s: %w", dir, err)
	}
	return nil
}

// classifyIO marks an I/O failure transient (a full disk or a flaky mount may recover), except
// a missing or unreadable snapshot directory, which needs an operator.
func classifyIO(err error) error {
	if err == nil {
		return nil
	}
	var ee *erasure.Error
	if errors.As(err, &ee) || erasure.IsPermanent(err) {
		return err
	}
	var te *erasure.TransientError
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return erasure.Permanent(err)
	}
	return erasure.Transient(err, 0)
}
