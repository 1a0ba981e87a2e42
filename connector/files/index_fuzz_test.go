package files

import (
	"bytes"
	"testing"
)

// FuzzDecodeIndex: a sidecar is a file of the state dir, which someone with file access can
// replace: whatever it holds, decoding returns an error or an index that encodes back to the
// same bytes (so only what the key sealed), and never allocates more than the file holds.
func FuzzDecodeIndex(f *testing.F) {
	k := newIndexKey(bytes.Repeat([]byte{1}, 32))
	f.Add(encodeIndex(&skipIndex{key: 7, size: 10, mtime: 20, sample: 30, hashes: []uint64{1, 2, 3}}, k))
	f.Add(encodeIndex(&skipIndex{}, k))
	f.Add([]byte(indexMagic))
	f.Add(append([]byte("ERSKIX01"), make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := decodeIndex(b, k)
		if err != nil {
			return
		}
		if len(ix.hashes)*8 > len(b) {
			t.Fatalf("%d hashes from %d bytes", len(ix.hashes), len(b))
		}
		if again := encodeIndex(ix, k); !bytes.Equal(again, b) {
			t.Fatalf("decoded then encoded differs:\n%x\n%x", b, again)
		}
	})
}
