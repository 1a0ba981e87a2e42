package erasure

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strings"
)

// SuppressionFilter is a Bloom filter of suppression hashes, for services that check the
// suppression list locally. An element is a suppression hash as the list holds it,
// "type:hex", where hex is the first 32 hex digits of HMAC-SHA-256(suppression key, type ||
// 0x00 || canonical value) (the same construction as the audit trail's keyed hashes, under the
// suppression key). Bit i of the filter is bit i%8 of byte i/8. An element sets bits
// (h1 + j·h2) mod Bits for j = 0..Hashes-1, where h1 and h2 are the first and second big-endian
// uint64 of SHA-256 of the element. A filter answers "not suppressed" for certain and
// "maybe suppressed" with the false-positive rate it was sized for: a maybe is confirmed with
// POST /v1/suppressions:check. Its JSON form is what `erasure suppressions export --format
// bloom` writes.
type SuppressionFilter struct {
	Format string `json:"format"` // "erasure-suppressions-bloom/1"
	// Type is the identifier type of the hashes it holds; empty for every type.
	Type   string  `json:"type,omitempty"`
	Count  int64   `json:"count"`
	Bits   uint64  `json:"bits"`
	Hashes int     `json:"hashes"`
	FPRate float64 `json:"fp_rate"`
	Filter []byte  `json:"filter"` // base64 in JSON
}

// SuppressionFilterFormat is the Format of a SuppressionFilter.
const SuppressionFilterFormat = "erasure-suppressions-bloom/1"

// NewSuppressionFilter returns an empty filter sized for n elements at false-positive rate p
// (0 < p < 1; 0.001 when out of range).
func NewSuppressionFilter(typ string, n int64, p float64) *SuppressionFilter {
	if !(p > 0 && p < 1) {
		p = 0.001
	}
	if n < 1 {
		n = 1
	}
	bits := uint64(math.Ceil(-float64(n) * math.Log(p) / (math.Ln2 * math.Ln2)))
	bits = max(64, (bits+7)/8*8)
	k := int(math.Round(float64(bits) / float64(n) * math.Ln2))
	k = min(max(k, 1), 30)
	return &SuppressionFilter{Format: SuppressionFilterFormat, Type: typ, Bits: bits, Hashes: k, FPRate: p, Filter: make([]byte, bits/8)}
}

func (f *SuppressionFilter) positions(hash string, fn func(bit uint64) bool) bool {
	sum := sha256.Sum256([]byte(hash))
	h1, h2 := binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])
	for j := 0; j < f.Hashes; j++ {
		if !fn((h1 + uint64(j)*h2) % f.Bits) {
			return false
		}
	}
	return true
}

// Add adds a suppression hash.
func (f *SuppressionFilter) Add(hash string) {
	f.Count++
	f.positions(hash, func(b uint64) bool { f.Filter[b/8] |= 1 << (b % 8); return true })
}

// MayHold reports whether hash may be on the list (false: it is not).
func (f *SuppressionFilter) MayHold(hash string) bool {
	if f.Bits == 0 || uint64(len(f.Filter))*8 < f.Bits {
		return false
	}
	return f.positions(hash, func(b uint64) bool { return f.Filter[b/8]&(1<<(b%8)) != 0 })
}

// SplitIdentifier reads "type:value" (as holds, checks and the CLI write identifiers) into an
// Identifier: the type is what comes before the first colon. EINVALID without a colon or a
// value; the message never quotes the value.
func SplitIdentifier(s string) (Identifier, error) {
	typ, value, ok := strings.Cut(s, ":")
	if !ok || value == "" {
		return Identifier{}, Errorf(EINVALID, `identifier must be written type:value, such as user_id:42`)
	}
	id := Identifier{Type: typ, Value: value}
	return id, id.Validate()
}
