package audit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"erasure"
)

// Keys derived from the audit key for the policies around erasure: the suppression list's
// keyed hashes and the replay escrow's master key. Each is an HMAC-SHA-256 of the audit key
// over a label, so knowing one tells nothing of the audit key or of the others.

func derive(auditKey []byte, label string) []byte {
	m := hmac.New(sha256.New, auditKey)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// SuppressionKey returns the key of the suppression list's hashes derived from the audit key,
// for deployments that do not configure one of their own. Services that check the list
// locally hash their identifiers with it (see Hasher.Identifier): it may be handed to them,
// since it opens neither the audit trail nor the escrow.
func SuppressionKey(auditKey []byte) []byte { return derive(auditKey, "erasure suppression list/1") }

// IndexKey returns the key connectors hash the identifiers of their own indexes with (the
// files connector's skip index), derived from the audit key: every process of a deployment
// reads the others' indexes, and nobody without the audit key can test a value against them.
func IndexKey(auditKey []byte) []byte { return derive(auditKey, "erasure connector index/1") }

// Escrow is the replay escrow's cipher (erasure.EscrowCipher). Data keys are 32 random bytes,
// stored wrapped with AES-256-GCM under a master key derived from the audit key (which is not
// in the store); what they seal is AES-256-GCM too, with a random 96-bit nonce before the
// ciphertext. Deleting a wrapped data key makes what it sealed unreadable, whoever holds the
// master key: crypto-erasure.
type Escrow struct{ master cipher.AEAD }

var _ erasure.EscrowCipher = (*Escrow)(nil)

// NewEscrow returns the escrow cipher of the audit key (at least 16 bytes).
func NewEscrow(auditKey []byte) (*Escrow, error) {
	if len(auditKey) < 16 {
		return nil, errors.New("audit key must be at least 16 bytes")
	}
	aead, err := newGCM(derive(auditKey, "erasure replay escrow/1"))
	if err != nil {
		return nil, err
	}
	return &Escrow{master: aead}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var wrapAAD = []byte("erasure escrow data key/1")

// NewKey implements erasure.EscrowCipher.
func (e *Escrow) NewKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return seal(e.master, key, wrapAAD)
}

func (e *Escrow) unwrap(wrapped []byte) (cipher.AEAD, error) {
	key, err := open(e.master, wrapped, wrapAAD)
	if err != nil {
		return nil, fmt.Errorf("escrow key cannot be unwrapped (destroyed, or another audit key): %w", err)
	}
	return newGCM(key)
}

// Seal implements erasure.EscrowCipher.
func (e *Escrow) Seal(wrapped, plaintext, aad []byte) ([]byte, error) {
	aead, err := e.unwrap(wrapped)
	if err != nil {
		return nil, err
	}
	return seal(aead, plaintext, aad)
}

// Open implements erasure.EscrowCipher.
func (e *Escrow) Open(wrapped, sealed, aad []byte) ([]byte, error) {
	aead, err := e.unwrap(wrapped)
	if err != nil {
		return nil, err
	}
	return open(aead, sealed, aad)
}

func seal(aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("sealed data is too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
}
