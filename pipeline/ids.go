package pipeline

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewRequestID returns "r_" followed by 26 characters: 48 bits of milliseconds then 80 random
// bits, so ids sort by creation time (the listing cursor relies on it) and cannot be guessed.
func NewRequestID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return "r_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// ValidRequestID reports whether s has the shape of a request id.
func ValidRequestID(s string) bool {
	if len(s) != 28 || !strings.HasPrefix(s, "r_") {
		return false
	}
	_, err := idEncoding.DecodeString(s[2:])
	return err == nil
}
