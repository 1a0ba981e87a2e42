package records

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Checksum is an order-independent digest of a set of records (a sum of per-record hashes
// modulo 2^64), printed as 16 hex digits. It does not depend on the partition a record sits
// in, so a move never changes the checksum of live ∪ deleted.
type Checksum uint64

func (c Checksum) String() string { return fmt.Sprintf("%016x", uint64(c)) }

// MarshalText renders the checksum as hex.
func (c Checksum) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText parses 16 hex digits.
func (c *Checksum) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		return fmt.Errorf("checksum %q: %w", b, err)
	}
	*c = Checksum(v)
	return nil
}

// Checksum is the record's contribution to a checksum: the first 8 bytes of SHA-256 over its
// identity and content (source, id, version, deletion time and reason when deleted, payload
// when kept), each field length-prefixed. Its update time and partition are not part of it.
func (r *RawRecord) Checksum() Checksum {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte, ok bool) {
		if !ok {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var num [20]byte
	field([]byte(r.Source), true)
	field([]byte(r.ID), true)
	field(strconv.AppendInt(num[:0], r.Version, 10), true)
	field(strconv.AppendInt(num[:0], r.DeletedAt, 10), r.Deleted)
	field([]byte(r.Reason), r.Deleted)
	field(r.Payload, r.Payload != nil)
	var out [sha256.Size]byte
	return Checksum(binary.BigEndian.Uint64(h.Sum(out[:0])[:8]))
}

// RecordChecksum returns the checksum contribution of one record, for callers (tests, tools)
// that keep their own model of a store's content. deletedAt is nil for a live record, payload
// nil once purged.
func RecordChecksum(source, id string, version int64, payload json.RawMessage, deletedAt *time.Time, reason string) Checksum {
	r := RawRecord{Source: source, ID: id, Version: version, Payload: payload}
	if deletedAt != nil {
		r.Deleted, r.DeletedAt, r.Reason = true, deletedAt.UnixMilli(), reason
	}
	return r.Checksum()
}
