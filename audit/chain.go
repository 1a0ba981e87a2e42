package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"erasure"
)

// Chain seals audit blocks with a keyed hash: HMAC-SHA-256, under a key derived from the audit
// key, over the previous block's hash and the block's fields (length-prefixed). The key is not
// in the store, so someone who can rewrite the database cannot compute a chain that verifies.
type Chain struct{ key []byte }

var _ erasure.AuditChain = (*Chain)(nil)

// NewChain returns the chain of the audit key (at least 16 bytes).
func NewChain(auditKey []byte) (*Chain, error) {
	if len(auditKey) < 16 {
		return nil, fmt.Errorf("audit key must be at least 16 bytes")
	}
	m := hmac.New(sha256.New, auditKey)
	m.Write([]byte("erasure audit chain/1"))
	return &Chain{key: m.Sum(nil)}, nil
}

func (c *Chain) hash(prev string, b *erasure.AuditBlock) string {
	m := hmac.New(sha256.New, c.key)
	var n [8]byte
	field := func(s []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write(s)
	}
	field([]byte(prev))
	field([]byte(strconv.FormatInt(b.Seq, 10)))
	field([]byte(strconv.FormatInt(b.FirstEvent, 10)))
	field([]byte(strconv.Itoa(b.Events)))
	field([]byte(strconv.FormatInt(b.Time.UnixMilli(), 10)))
	field(b.Body)
	return hex.EncodeToString(m.Sum(nil))
}

// Chain returns the audit chain under the hasher's key (the same audit key, a derived
// sub-key).
func (h *Hasher) Chain() *Chain {
	c, _ := NewChain(h.key) // the hasher's key is at least 16 bytes
	return c
}

// Seal implements erasure.AuditChain.
func (c *Chain) Seal(prev string, b *erasure.AuditBlock) {
	b.PrevHash = prev
	b.Hash = c.hash(prev, b)
}

// Valid implements erasure.AuditChain.
func (c *Chain) Valid(prev string, b *erasure.AuditBlock) bool {
	return b.PrevHash == prev && hmac.Equal([]byte(b.Hash), []byte(c.hash(prev, b)))
}

// wireEvent is an event as a block's body holds it: its number and block are implied by the
// block, so that they cannot disagree with it.
type wireEvent struct {
	Time      int64           `json:"t"`
	Actor     string          `json:"a"`
	Type      string          `json:"e"`
	RequestID string          `json:"r,omitempty"`
	TaskID    int64           `json:"k,omitempty"`
	Dataset   string          `json:"d,omitempty"`
	Data      json.RawMessage `json:"x,omitempty"`
}

// NewBlock returns block seq holding evs, numbering the events from firstEvent (it sets their
// Seq, Block and millisecond Time) and encoding them into the body. The block is not sealed.
func NewBlock(seq, firstEvent int64, at time.Time, evs []erasure.AuditEvent) erasure.AuditBlock {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range evs {
		ev := &evs[i]
		ev.Seq, ev.Block, ev.Time = firstEvent+int64(i), seq, ev.Time.UTC().Truncate(time.Millisecond)
		ev.PrevHash, ev.Hash = "", ""
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := json.Marshal(wireEvent{ev.Time.UnixMilli(), ev.Actor, ev.Type, ev.RequestID, ev.TaskID, ev.Dataset, ev.Data})
		if err != nil {
			panic(err) // only the domain's own values are encoded
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return erasure.AuditBlock{Seq: seq, FirstEvent: firstEvent, Events: len(evs), Time: at.UTC().Truncate(time.Millisecond), Body: buf.Bytes()}
}

// Events decodes a block's events; an error means the body is not what NewBlock writes.
func Events(b *erasure.AuditBlock) ([]erasure.AuditEvent, error) {
	var ws []wireEvent
	if err := json.Unmarshal(b.Body, &ws); err != nil {
		return nil, fmt.Errorf("audit block %d: body is not a list of events: %w", b.Seq, err)
	}
	if len(ws) != b.Events {
		return nil, fmt.Errorf("audit block %d: holds %d events, says %d", b.Seq, len(ws), b.Events)
	}
	out := make([]erasure.AuditEvent, len(ws))
	for i, w := range ws {
		out[i] = erasure.AuditEvent{Seq: b.FirstEvent + int64(i), Block: b.Seq, Time: time.UnixMilli(w.Time).UTC(), Actor: w.Actor, Type: w.Type,
			RequestID: w.RequestID, TaskID: w.TaskID, Dataset: w.Dataset, Data: w.Data}
	}
	return out, nil
}

// FirstEvents decodes the first n events of a block (all when n <= 0 or the block holds fewer)
// and returns them with the number of events it holds, without decoding the rest: a page that
// shows the head of large blocks pays for what it shows.
func FirstEvents(b *erasure.AuditBlock, n int) ([]erasure.AuditEvent, int, error) {
	if n <= 0 || n >= b.Events {
		evs, err := Events(b)
		return evs, b.Events, err
	}
	dec := json.NewDecoder(bytes.NewReader(b.Body))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, b.Events, fmt.Errorf("audit block %d: body is not a list of events", b.Seq)
	}
	out := make([]erasure.AuditEvent, 0, n)
	for i := 0; i < n && dec.More(); i++ {
		var w wireEvent
		if err := dec.Decode(&w); err != nil {
			return nil, b.Events, fmt.Errorf("audit block %d: event %d: %w", b.Seq, i, err)
		}
		out = append(out, erasure.AuditEvent{Seq: b.FirstEvent + int64(i), Block: b.Seq, Time: time.UnixMilli(w.Time).UTC(), Actor: w.Actor, Type: w.Type,
			RequestID: w.RequestID, TaskID: w.TaskID, Dataset: w.Dataset, Data: w.Data})
	}
	return out, b.Events, nil
}

// Verifier checks a chain block by block, in order, after the legacy events (if any) of a trail
// started before blocks existed. The zero value is not usable: use NewVerifier.
type Verifier struct {
	chain   erasure.AuditChain
	legacy  LegacyVerifier
	last    string
	lastSeq int64
	events  int64
	// Blocks counts the blocks verified.
	Blocks int64
}

// NewVerifier returns a verifier of the chain sealed by chain.
func NewVerifier(chain erasure.AuditChain) *Verifier { return &Verifier{chain: chain} }

// AddLegacy checks the next event of the legacy part of the trail (before any block).
func (v *Verifier) AddLegacy(ev *erasure.AuditEvent) error {
	if v.Blocks > 0 {
		return fmt.Errorf("audit event %d: a legacy event after block %d", ev.Seq, v.lastSeq)
	}
	return v.legacy.Add(ev)
}

// Add checks the next block. It returns an error naming the first block that is altered, out
// of order, after a gap, or keyed with another key.
func (v *Verifier) Add(b *erasure.AuditBlock) error {
	if v.last == "" {
		_, v.last = v.legacy.Head()
		v.events = v.legacy.Count
	}
	switch {
	case b.Seq != v.lastSeq+1:
		return fmt.Errorf("audit block %d follows block %d: blocks are missing or reordered", b.Seq, v.lastSeq)
	case b.FirstEvent != v.events+1:
		return fmt.Errorf("audit block %d starts at event %d, expected %d: events are missing or renumbered", b.Seq, b.FirstEvent, v.events+1)
	case b.PrevHash != v.last:
		return fmt.Errorf("audit block %d: previous hash does not match block %d: the trail was altered", b.Seq, v.lastSeq)
	case !v.chain.Valid(v.last, b):
		return fmt.Errorf("audit block %d: hash does not match its content under this deployment's key: the block was altered", b.Seq)
	}
	if _, err := Events(b); err != nil {
		return err
	}
	v.last, v.lastSeq = b.Hash, b.Seq
	v.events += int64(b.Events)
	v.Blocks++
	return nil
}

// Head returns the last block verified (0 and the legacy head, or the genesis, before any).
func (v *Verifier) Head() erasure.AuditHead {
	if v.Blocks == 0 {
		seq, h := v.legacy.Head()
		return erasure.AuditHead{Block: 0, Hash: h, Events: seq}
	}
	return erasure.AuditHead{Block: v.lastSeq, Hash: v.last, Events: v.events}
}

// Trail is what VerifyTrail reads: a store's events (for the legacy part) and blocks.
type Trail interface {
	Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error)
	AuditBlocks(ctx context.Context, after int64, limit int) ([]erasure.AuditBlock, error)
	AuditHead(ctx context.Context) (erasure.AuditHead, error)
}

// VerifyTrail verifies a store's whole trail with chain: the legacy events, then every block,
// and that the store's head is the last block verified. It returns the head verified so far
// and, when the trail is broken, an error naming where.
func VerifyTrail(ctx context.Context, s Trail, chain erasure.AuditChain) (erasure.AuditHead, error) {
	return VerifyTrailFrom(ctx, s, chain, nil)
}

// VerifyTrailFrom is VerifyTrail that also checks that the chain passes through every anchor:
// block a.Block has hash a.Hash (block 0: the chain's start, the legacy head or the genesis).
// Someone who holds the audit key can rewrite a trail so that it verifies; they cannot make
// it pass through a block and hash recorded before the rewrite, nor reach a block it was cut
// before. The error names the first anchor missed.
func VerifyTrailFrom(ctx context.Context, s Trail, chain erasure.AuditChain, anchors []erasure.AuditAnchor) (erasure.AuditHead, error) {
	want := map[int64][]string{}
	for _, a := range anchors {
		want[a.Block] = append(want[a.Block], a.Hash)
	}
	check := func(block int64, hash string) error {
		for _, h := range want[block] {
			if h != hash {
				return fmt.Errorf("audit block %d has hash %s, but a checkpoint or expected head says %s: the trail was rewritten", block, short(hash), short(h))
			}
		}
		delete(want, block)
		return nil
	}
	v := NewVerifier(chain)
	var after int64
legacy:
	for {
		evs, err := s.Audit(ctx, erasure.AuditFilter{After: after, Limit: 1000})
		if err != nil {
			return v.Head(), err
		}
		for i := range evs {
			if evs[i].Block != 0 {
				break legacy
			}
			if err := v.AddLegacy(&evs[i]); err != nil {
				return v.Head(), err
			}
			after = evs[i].Seq
		}
		if len(evs) < 1000 {
			break
		}
	}
	if err := check(0, v.Head().Hash); err != nil {
		return v.Head(), err
	}
	var block int64
	for {
		bs, err := s.AuditBlocks(ctx, block, 1000)
		if err != nil {
			return v.Head(), err
		}
		for i := range bs {
			if err := v.Add(&bs[i]); err != nil {
				return v.Head(), err
			}
			if err := check(bs[i].Seq, bs[i].Hash); err != nil {
				return v.Head(), err
			}
			block = bs[i].Seq
		}
		if len(bs) < 1000 {
			break
		}
	}
	head, err := s.AuditHead(ctx)
	if err != nil {
		return v.Head(), err
	}
	if got := v.Head(); head != got {
		return got, fmt.Errorf("the store's head is block %d (%d events), the chain ends at block %d (%d events): the trail was altered", head.Block, head.Events, got.Block, got.Events)
	}
	if len(want) > 0 {
		missing := int64(-1)
		for b := range want {
			if missing < 0 || b < missing {
				missing = b
			}
		}
		return v.Head(), fmt.Errorf("the trail ends at block %d, but a checkpoint or expected head names block %d: the trail was cut short", v.Head().Block, missing)
	}
	return v.Head(), nil
}

// short returns the first 16 digits of a hash, for messages.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
