package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"erasure"
)

// SigningKeyFile is the file of the data dir that holds the signing key generated there.
const SigningKeyFile = "signing.key"

// LoadSigningKey returns the deployment's Ed25519 signing key, which signs what the deployment
// states to others (erasure certificates, checkpoints of the audit chain): configValue when set (the 32-byte seed, or the 64-byte
// private key, in hex or base64), else the key in dataDir/signing.key, generated the first time
// (a hex seed, mode 0600; a file readable by others is an error, not replaced). The key is kept
// outside the store on purpose: whoever can write the database cannot sign.
func LoadSigningKey(configValue, dataDir string) (ed25519.PrivateKey, error) {
	if v := strings.TrimSpace(configValue); v != "" {
		k, err := parsePrivateKey(v)
		if err != nil {
			return nil, fmt.Errorf("audit.signing_key: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(dataDir, SigningKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		k, err := parsePrivateKey(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
		}
		return k, nil
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadSigningKey("", dataDir) // another process generated it first
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(seed) + "\n"); err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), f.Sync()
}

// parsePrivateKey reads a seed or a private key in hex or base64.
func parsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		b, err = base64.StdEncoding.DecodeString(s)
	}
	switch {
	case err != nil:
		return nil, errors.New("not a key in hex or base64")
	case len(b) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case len(b) == ed25519.PrivateKeySize:
		k := ed25519.PrivateKey(b)
		if !ed25519.NewKeyFromSeed(k.Seed()).Equal(k) {
			return nil, errors.New("not a valid Ed25519 private key")
		}
		return k, nil
	}
	return nil, fmt.Errorf("an Ed25519 key is a %d-byte seed (or a %d-byte private key), not %d bytes", ed25519.SeedSize, ed25519.PrivateKeySize, len(b))
}

// PublicKeyOf describes a public key as the API serves it (GET /v1/certificates/key).
func PublicKeyOf(pub ed25519.PublicKey) erasure.CertificateKey {
	return erasure.CertificateKey{Algorithm: "ed25519", KeyID: KeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub)}
}

// KeyID is the first 16 hex digits of the SHA-256 of a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// ParsePublicKey reads an Ed25519 public key given as base64 or hex (32 bytes), as a PEM
// "PUBLIC KEY" block, or as the JSON that GET /v1/certificates/key answers.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var k erasure.CertificateKey
		if err := json.Unmarshal([]byte(s), &k); err != nil {
			return nil, fmt.Errorf("public key: not the JSON of /v1/certificates/key: %v", err)
		}
		if k.Algorithm != "ed25519" {
			return nil, fmt.Errorf("public key: algorithm %q is not ed25519", k.Algorithm)
		}
		s = k.PublicKey
	}
	if block, _ := pem.Decode([]byte(s)); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public key: a PEM %q block is not a PUBLIC KEY", block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %v", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("public key: the PEM key is not an Ed25519 key")
		}
		return pub, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		if h, herr := hex.DecodeString(s); herr == nil {
			b, err = h, nil
		}
	}
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: not %d bytes in base64 or hex, a PEM PUBLIC KEY, or the JSON of /v1/certificates/key", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
