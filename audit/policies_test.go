package audit_test

import (
	"bytes"
	"testing"

	"erasure/audit"
)

func TestEscrow(t *testing.T) {
	key := []byte("escrow-test-audit-key-0123456789")
	e, err := audit.NewEscrow(key)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := e.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`[{"type":"user_id","value":"42"}]`)
	sealed, err := e.Seal(wrapped, secret, []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("42")) || bytes.Contains(wrapped, []byte("user_id")) {
		t.Fatal("sealed data holds the plaintext")
	}
	t.Run("OpensWithTheSameKeyAndContext", func(t *testing.T) {
		got, err := e.Open(wrapped, sealed, []byte("ctx"))
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("AnotherContextDoesNotOpen", func(t *testing.T) {
		if _, err := e.Open(wrapped, sealed, []byte("other")); err == nil {
			t.Fatal("opened under another aad")
		}
	})
	t.Run("AnotherDataKeyDoesNotOpen", func(t *testing.T) {
		other, _ := e.NewKey()
		if _, err := e.Open(other, sealed, []byte("ctx")); err == nil {
			t.Fatal("opened with another data key")
		}
	})
	t.Run("AnotherAuditKeyCannotUnwrap", func(t *testing.T) {
		f, _ := audit.NewEscrow([]byte("another-audit-key-0123456789abcd"))
		if _, err := f.Open(wrapped, sealed, []byte("ctx")); err == nil {
			t.Fatal("another master key unwrapped the data key")
		}
	})
	t.Run("SuppressionKeyIsNotTheAuditKey", func(t *testing.T) {
		sk := audit.SuppressionKey(key)
		if len(sk) != 32 || bytes.Equal(sk, key) || bytes.Equal(sk, audit.SuppressionKey([]byte("another-audit-key-0123456789abcd"))) {
			t.Fatalf("suppression key %x", sk)
		}
	})
}
