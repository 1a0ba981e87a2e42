package files

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/highwayhash"
	"golang.org/x/sync/errgroup"

	"erasure"
)

// The skip index keeps, for each partition, a sidecar in <state>/index/<partition>.idx: the
// sorted, distinct 64-bit keyed hashes (HighwayHash, a PRF, under the index key) of the keys
// the partition holds (an exact set up to hash collisions: a collision only makes a sweep read
// a partition it could have skipped). Keyed, so that nobody without the key can test a value
// against a sidecar; the server gives every connector the deployment's key
// (registry.IndexKey, derived from the audit key), so that its processes share the sidecars.
// A connector without one uses a random key of its own, and its sidecars serve only itself.
//
//	"ERSKIX02"  magic
//	key         uint64  which key hashed it (a keyed hash of a constant)
//	size        int64   the partition's size,
//	mtime       int64   modification time (ns)
//	sample      uint32  and CRC-32C of its first and last 4 KiB when the sidecar was made
//	count       uint32
//	hashes      count × uint64, ascending
//	seal        uint64  HighwayHash of everything before it, under the index key
//
// A sidecar is used only while its seal holds under the connector's key (nobody without the
// key can make or change one: a forged sidecar could otherwise make a sweep skip a partition
// that holds a subject) and the partition's size, mtime and sample checksum match it; otherwise (and when it is missing or torn) the partition is
// read. Sidecars are written
// through a temporary name and not synced: a lost one only costs a read.
//
// A sidecar holds a hash of every key its partition held, so none outlives what it describes:
// a commit rewrites (or, with the index off, removes) the sidecars of the partitions it
// rewrote, and removes those of partitions that no longer exist (deleted or renamed by the
// dataset's owner, whose keys would otherwise stay here for ever, erased subjects' too) and
// the temporary files of writes that never finished; BuildIndex does the same.

const indexMagic = "ERSKIX02"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// indexKey is a skip index key and its id (the keyed hash of a constant, written in each
// sidecar).
type indexKey struct {
	key []byte
	id  uint64
}

func newIndexKey(key []byte) *indexKey {
	return &indexKey{key: key, id: highwayhash.Sum64([]byte("erasure skip index key"), key)}
}

// sum is the keyed hash of one key value.
func (k *indexKey) sum(b []byte) uint64 { return highwayhash.Sum64(b, k.key) }

// SetIndexKey makes key (32 bytes) the key of the skip index's hashes: sidecars made under
// another key are no longer used, and are made again when their partition is read.
func (c *Connector) SetIndexKey(key []byte) error {
	if len(key) != highwayhash.Size {
		return erasure.Errorf(erasure.EINVALID, "files: the index key must be %d bytes, not %d", highwayhash.Size, len(key))
	}
	c.ikey.Store(newIndexKey(bytes.Clone(key)))
	return nil
}

func (c *Connector) indexKey() *indexKey { return c.ikey.Load() }

type skipIndex struct {
	key         uint64 // the id of the key that hashed it
	size, mtime int64
	sample      uint32
	hashes      []uint64
	bytes       int64 // size of the sidecar read
}

// mayHold reports whether any of the sorted query hashes is in the index.
func (ix *skipIndex) mayHold(query []uint64) bool {
	i, j := 0, 0
	for i < len(ix.hashes) && j < len(query) {
		switch {
		case ix.hashes[i] == query[j]:
			return true
		case ix.hashes[i] < query[j]:
			i++
		default:
			j++
		}
	}
	return false
}

func (c *Connector) indexPath(rel string) string {
	return filepath.Join(c.cfg.StateDir, "index", filepath.FromSlash(rel)+".idx")
}

// readIndex returns partition rel's sidecar when it exists, is whole and still describes the
// partition.
func (c *Connector) readIndex(rel string) (*skipIndex, bool) {
	ix, _, ok := c.readIndexN(rel)
	return ix, ok
}

// readIndexN is readIndex that also returns the bytes read.
func (c *Connector) readIndexN(rel string) (*skipIndex, int64, bool) {
	ix, ok := c.loadIndex(rel)
	n := int64(0)
	if ix != nil {
		n = ix.bytes
	}
	return ix, n, ok
}

func (c *Connector) loadIndex(rel string) (*skipIndex, bool) {
	b, err := os.ReadFile(c.indexPath(rel))
	if err != nil {
		return nil, false
	}
	c.indexRead.Add(int64(len(b)))
	ix, err := decodeIndex(b, c.indexKey())
	if err != nil {
		return &skipIndex{bytes: int64(len(b))}, false
	}
	ix.bytes = int64(len(b))
	if ix.key != c.indexKey().id {
		return ix, false
	}
	st, err := os.Stat(c.abs(rel))
	if err != nil || st.Size() != ix.size || st.ModTime().UnixNano() != ix.mtime {
		return ix, false
	}
	sample, err := sampleSum(c.abs(rel), st.Size())
	if err != nil || sample != ix.sample {
		return ix, false
	}
	return ix, true
}

// decodeIndex reads a sidecar made under k; an error when it is not one, is torn, or was
// made or changed by anyone without k (its seal).
func decodeIndex(b []byte, k *indexKey) (*skipIndex, error) {
	const head = 8 + 8 + 8 + 8 + 4 + 4
	if len(b) < head+8 || string(b[:8]) != indexMagic {
		return nil, errors.New("not a skip index")
	}
	body, seal := b[:len(b)-8], binary.LittleEndian.Uint64(b[len(b)-8:])
	if k.sum(body) != seal {
		return nil, errors.New("skip index torn, changed, or made under another key")
	}
	ix := &skipIndex{
		key:    binary.LittleEndian.Uint64(b[8:]),
		size:   int64(binary.LittleEndian.Uint64(b[16:])),
		mtime:  int64(binary.LittleEndian.Uint64(b[24:])),
		sample: binary.LittleEndian.Uint32(b[32:]),
	}
	n := int(binary.LittleEndian.Uint32(b[36:]))
	if len(body) != head+8*n {
		return nil, errors.New("skip index length mismatch")
	}
	ix.hashes = make([]uint64, n)
	for i := range ix.hashes {
		ix.hashes[i] = binary.LittleEndian.Uint64(b[head+8*i:])
	}
	if !slices.IsSorted(ix.hashes) {
		return nil, errors.New("skip index hashes out of order")
	}
	return ix, nil
}

// encodeIndex writes ix sealed under k.
func encodeIndex(ix *skipIndex, k *indexKey) []byte {
	b := make([]byte, 0, 40+8*len(ix.hashes)+8)
	b = append(b, indexMagic...)
	b = binary.LittleEndian.AppendUint64(b, ix.key)
	b = binary.LittleEndian.AppendUint64(b, uint64(ix.size))
	b = binary.LittleEndian.AppendUint64(b, uint64(ix.mtime))
	b = binary.LittleEndian.AppendUint32(b, ix.sample)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ix.hashes)))
	for _, h := range ix.hashes {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return binary.LittleEndian.AppendUint64(b, k.sum(b))
}

// sampleSum is the CRC-32C of a file's first and last 4 KiB.
func sampleSum(name string, size int64) (uint32, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const n = 4 << 10
	buf := make([]byte, 2*n)
	head := min(size, n)
	if _, err := io.ReadFull(f, buf[:head]); err != nil {
		return 0, err
	}
	tail := min(size, n)
	if _, err := f.ReadAt(buf[head:head+tail], size-tail); err != nil {
		return 0, err
	}
	return crc32.Checksum(buf[:head+tail], castagnoli), nil
}

// writeIndex writes partition rel's sidecar from the hashes of the keys it now holds.
func (c *Connector) writeIndex(rel string, hashes []uint64) {
	st, err := os.Stat(c.abs(rel))
	if err == nil {
		c.writeIndexFor(rel, st, hashes)
	} else {
		os.Remove(c.indexPath(rel))
	}
}

// writeIndexFor writes the sidecar of partition rel as it was when st was taken, unless it
// has changed since; then the sidecar it had, which describes older content, is removed.
// Failures are logged and ignored: a missing sidecar only costs a read.
func (c *Connector) writeIndexFor(rel string, st os.FileInfo, hashes []uint64) {
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	sample, err := sampleSum(c.abs(rel), st.Size())
	if err != nil {
		os.Remove(c.indexPath(rel))
		return
	}
	now, err := os.Stat(c.abs(rel))
	if err != nil || now.Size() != st.Size() || !now.ModTime().Equal(st.ModTime()) {
		os.Remove(c.indexPath(rel))
		return
	}
	ix := &skipIndex{key: c.indexKey().id, size: st.Size(), mtime: st.ModTime().UnixNano(), sample: sample, hashes: hashes}
	p := c.indexPath(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
		err = writeFileAtomic(p, encodeIndex(ix, c.indexKey()), 0o600, false)
	}
	if err != nil {
		c.logger().Warn("skip index not written", "partition", rel, "err", err)
	}
}

// writeHashes and readHashes keep a prepared partition's kept-key hashes in the journal,
// under the connector's index key: hashes made under another are refused.
func (c *Connector) writeHashes(name string, hashes []uint64) error {
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	return writeFileAtomic(name, encodeIndex(&skipIndex{key: c.indexKey().id, hashes: hashes}, c.indexKey()), 0o600, false)
}

func (c *Connector) readHashes(name string) ([]uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	ix, err := decodeIndex(b, c.indexKey())
	if err != nil {
		return nil, err
	}
	if ix.key != c.indexKey().id {
		return nil, errors.New("kept-key hashes made under another index key")
	}
	return ix.hashes, nil
}

// staleTemp is how old a sidecar's temporary file must be to be taken for the leftover of a
// write that never finished (a write takes milliseconds).
const staleTemp = time.Minute

// currentFormat reports whether the sidecar at p is of this version's format (or could not
// be read: it is left alone). Sidecars of the first format held unkeyed hashes.
func currentFormat(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return true
	}
	defer f.Close()
	magic := make([]byte, len(indexMagic))
	if _, err := io.ReadFull(f, magic); err != nil {
		return true
	}
	return string(magic) == indexMagic
}

// pruneIndex removes the sidecars of partitions that no longer exist and those of an earlier
// format, and the leftover temporary files of sidecar writes, and returns how many files it
// removed. A partition that
// appears while it runs keeps its sidecar: the partition's own file is looked at, not a
// listing.
func (c *Connector) pruneIndex() int {
	root := filepath.Join(c.cfg.StateDir, "index")
	removed := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		switch {
		case strings.HasSuffix(name, ".idx"):
			rel, err := filepath.Rel(root, strings.TrimSuffix(p, ".idx"))
			if err != nil {
				return nil
			}
			if _, err := os.Lstat(c.abs(filepath.ToSlash(rel))); !errors.Is(err, fs.ErrNotExist) && currentFormat(p) {
				return nil
			}
		case strings.HasSuffix(name, ".new") && strings.Contains(name, ".idx."):
			if info, err := d.Info(); err != nil || time.Since(info.ModTime()) < staleTemp {
				return nil
			}
		default:
			return nil
		}
		if err := os.Remove(p); err == nil {
			removed++
		} else if !errors.Is(err, fs.ErrNotExist) {
			c.logger().Warn("skip index: a sidecar that outlived its partition was not removed", "err", err)
		}
		return nil
	})
	return removed
}

// IndexReport is what BuildIndex did: the domain's.
type IndexReport = erasure.IndexReport

var _ erasure.Indexer = (*Connector)(nil)

// BuildIndex brings the skip index up to date: every partition whose sidecar is missing or
// stale is read and gets a new one. It works whether or not Config.Index is set (sweeps use
// the index only when it is). progress may be nil. Errors as for Sweep, naming the file.
func (c *Connector) BuildIndex(ctx context.Context, progress ProgressFunc) (IndexReport, error) {
	start := time.Now()
	unlock, err := c.lock()
	if err != nil {
		return IndexReport{}, err
	}
	defer unlock()
	parts, err := c.Partitions(ctx)
	if err != nil {
		return IndexReport{}, err
	}
	var total int64
	for _, p := range parts {
		total += p.Size
	}
	tr := &tracker{fn: progress, start: start}
	tr.p.PartitionsTotal, tr.p.BytesTotal = len(parts), total
	ctx = withTracker(ctx, tr)
	rep := IndexReport{Partitions: len(parts)}
	var built, current, rows, read atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Workers)
	for _, p := range parts {
		g.Go(func() error {
			if _, ok := c.readIndex(p.Path); ok {
				current.Add(1)
				tr.partDone(p.Size, 0, 0)
				return nil
			}
			st, err := os.Stat(c.abs(p.Path))
			if err != nil {
				return classifyIO(fmt.Errorf("files: %s: %w", c.abs(p.Path), err))
			}
			var hashes []uint64
			s, err := c.process(gctx, p.Path, newKeySet(nil), modeScan, &processOut{hashes: &hashes, key: c.indexKey()})
			if err != nil {
				return err
			}
			c.writeIndexFor(p.Path, st, hashes)
			built.Add(1)
			rows.Add(s.rows)
			read.Add(s.read)
			tr.partDone(p.Size, s.rows, 0)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		return rep, err
	}
	tr.final()
	c.pruneIndex()
	rep.Built, rep.Current, rep.Rows, rep.BytesRead = int(built.Load()), int(current.Load()), rows.Load(), read.Load()
	rep.Elapsed = time.Since(start)
	return rep, nil
}
