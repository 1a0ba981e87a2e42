package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
)

func testCertificate() *erasure.Certificate {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	done := at.Add(time.Hour)
	return &erasure.Certificate{
		Version: erasure.CertificateVersion, Kind: erasure.CertificateKind, Deployment: "0123456789abcdef0123456789abcdef",
		Request: erasure.CertifiedRequest{ID: "r_06h3aaaaaaaaaaaaaaaaaaaaaa", Status: erasure.RequestCompleted, Reason: "user_request",
			SubmittedBy: "intake", SubmittedAt: at, Deadline: at.Add(720 * time.Hour), CompletedAt: done},
		Subject: []string{"email:0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
		Datasets: []erasure.CertifiedDataset{
			{Dataset: "accounts.users", Kind: erasure.TaskErase, Method: erasure.MethodRealtime, Outcome: erasure.TaskDone, Removed: 1, Attempts: 1, VerifiedAt: &done, FinishedAt: &done},
			{Dataset: "notifications", Kind: erasure.TaskErase, Method: erasure.MethodAsync, Outcome: erasure.TaskDone, Removed: 3, Attempts: 1, FinishedAt: &done,
				Ack: &erasure.CertifiedAck{At: done, By: "messaging-team", Status: erasure.AckDone, Removed: 3, Attempt: 1, AuditEvent: 7}},
		},
		Audit:    erasure.CertifiedAudit{Events: 6, FirstEvent: 1, LastEvent: 9, LastBlock: 5, Head: erasure.AuditHead{Block: 6, Hash: strings.Repeat("ab", 32), Events: 10}},
		IssuedAt: done.Add(time.Minute),
	}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCertificate_SignVerify(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	c := testCertificate()
	doc, err := audit.SignCertificate(key, c)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("VerifiesWithItsKey", func(t *testing.T) {
		got, k, err := audit.VerifyCertificate(doc, pub)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(c)
		have, _ := json.Marshal(got)
		if !bytes.Equal(want, have) {
			t.Fatalf("verified certificate differs:\n%s\n%s", have, want)
		}
		if k != audit.PublicKeyOf(pub) || k.KeyID != audit.KeyID(pub) || len(k.KeyID) != 16 {
			t.Fatalf("key %+v", k)
		}
	})
	t.Run("VerifiesWithoutAKeyGiven", func(t *testing.T) {
		if _, k, err := audit.VerifyCertificate(doc, nil); err != nil || k.KeyID != audit.KeyID(pub) {
			t.Fatalf("%v %+v", err, k)
		}
	})
	t.Run("OtherKeyFails", func(t *testing.T) {
		other := newKey(t).Public().(ed25519.PublicKey)
		_, _, err := audit.VerifyCertificate(doc, other)
		if !errors.Is(err, audit.ErrCertificate) || !strings.Contains(err.Error(), "not by the key given") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("EveryChangedByteFails", func(t *testing.T) {
		for i := range doc {
			for _, b := range []byte{doc[i] ^ 0x01, ' ', '0'} {
				if b == doc[i] {
					continue
				}
				bad := bytes.Clone(doc)
				bad[i] = b
				if _, _, err := audit.VerifyCertificate(bad, nil); !errors.Is(err, audit.ErrCertificate) {
					t.Fatalf("byte %d changed from %q to %q: err %v, want a failure", i, doc[i], b, err)
				}
			}
		}
	})
	t.Run("SpareBase64BitsFail", func(t *testing.T) {
		// The last character of a padded base64 value carries bits that lenient decoders
		// ignore: setting them gives the same bytes, but another document.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		for _, v := range []string{base64.StdEncoding.EncodeToString(pub), mustSig(t, doc)} {
			i := strings.Index(v, "=") - 1
			bad := v[:i] + string(alphabet[strings.IndexByte(alphabet, v[i])|1]) + v[i+1:]
			if bad == v {
				bad = v[:i] + string(alphabet[strings.IndexByte(alphabet, v[i])&^1]) + v[i+1:]
			}
			tampered := bytes.Replace(doc, []byte(v), []byte(bad), 1)
			if _, _, err := audit.VerifyCertificate(tampered, pub); !errors.Is(err, audit.ErrCertificate) {
				t.Fatalf("%s → %s verified: %v", v, bad, err)
			}
		}
	})
	t.Run("ResignedByAnotherKeyFailsWithTheDeploymentsKey", func(t *testing.T) {
		// Someone without the key changes a fact and signs with a key of their own: the
		// document is whole, but not the deployment's.
		forged := testCertificate()
		forged.Datasets[0].Removed = 0
		bad, err := audit.SignCertificate(newKey(t), forged)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := audit.VerifyCertificate(bad, pub); !errors.Is(err, audit.ErrCertificate) {
			t.Fatalf("forged certificate verified against the deployment's key: %v", err)
		}
	})
	t.Run("ReformattedFails", func(t *testing.T) {
		var v any
		json.Unmarshal(doc, &v)
		compact, _ := json.Marshal(v)
		if _, _, err := audit.VerifyCertificate(compact, nil); !errors.Is(err, audit.ErrCertificate) {
			t.Fatalf("re-encoded document: %v", err)
		}
	})
	t.Run("NotACertificate", func(t *testing.T) {
		for _, in := range []string{"", "{}", "[]", `{"certificate":{},"signature":{}}`, string(doc) + "{}"} {
			if _, _, err := audit.VerifyCertificate([]byte(in), nil); !errors.Is(err, audit.ErrCertificate) {
				t.Fatalf("%q: %v", in, err)
			}
		}
	})
}

func TestLoadSigningKey(t *testing.T) {
	t.Run("GeneratedOnceIntoTheDataDir", func(t *testing.T) {
		dir := t.TempDir()
		k1, err := audit.LoadSigningKey("", dir)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := audit.LoadSigningKey("", dir)
		if err != nil || !k1.Equal(k2) {
			t.Fatalf("second load: %v, same key %v", err, k1.Equal(k2))
		}
		fi, err := os.Stat(filepath.Join(dir, audit.SigningKeyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", fi, err)
		}
	})
	t.Run("FromConfig", func(t *testing.T) {
		seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
		want := ed25519.NewKeyFromSeed(seed)
		for _, v := range []string{hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), hex.EncodeToString(want)} {
			dir := t.TempDir()
			k, err := audit.LoadSigningKey(v, dir)
			if err != nil || !k.Equal(want) {
				t.Fatalf("%q: %v", v, err)
			}
			if _, err := os.Stat(filepath.Join(dir, audit.SigningKeyFile)); !os.IsNotExist(err) {
				t.Fatalf("a configured key must not write a key file: %v", err)
			}
		}
	})
	t.Run("BadConfigIsRefused", func(t *testing.T) {
		for _, v := range []string{"zz", hex.EncodeToString(make([]byte, 16)), base64.StdEncoding.EncodeToString(make([]byte, 40))} {
			if _, err := audit.LoadSigningKey(v, t.TempDir()); err == nil {
				t.Fatalf("%q accepted", v)
			}
		}
	})
}

func TestParsePublicKey(t *testing.T) {
	pub := newKey(t).Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(audit.PublicKeyOf(pub))
	for name, in := range map[string]string{
		"base64": base64.StdEncoding.EncodeToString(pub),
		"hex":    hex.EncodeToString(pub),
		"pem":    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"json":   string(js),
	} {
		got, err := audit.ParsePublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, in := range []string{"", "abc", base64.StdEncoding.EncodeToString(make([]byte, 31)), `{"algorithm":"rsa","public_key":"x"}`} {
		if _, err := audit.ParsePublicKey(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestFirstEvents(t *testing.T) {
	evs := make([]erasure.AuditEvent, 7)
	for i := range evs {
		evs[i] = erasure.AuditEvent{Time: time.UnixMilli(int64(1_700_000_000_000 + i)), Actor: "a", Type: "t", RequestID: "r_" + string(rune('a'+i))}
	}
	b := audit.NewBlock(3, 11, time.UnixMilli(1_700_000_000_000), evs)
	all, _ := audit.Events(&b)
	for _, n := range []int{0, 1, 3, 7, 9} {
		got, total, err := audit.FirstEvents(&b, n)
		want := all
		if n > 0 && n < len(all) {
			want = all[:n]
		}
		if err != nil || total != 7 || len(got) != len(want) {
			t.Fatalf("n=%d: %d events of %d, %v", n, len(got), total, err)
		}
		for i := range got {
			if got[i].Seq != want[i].Seq || got[i].RequestID != want[i].RequestID || !got[i].Time.Equal(want[i].Time) {
				t.Fatalf("n=%d event %d: %+v, want %+v", n, i, got[i], want[i])
			}
		}
	}
}

// mustSig returns the signature value of a certificate document.
func mustSig(t *testing.T, doc []byte) string {
	t.Helper()
	var d struct {
		Signature struct {
			Value string `json:"value"`
		} `json:"signature"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || d.Signature.Value == "" {
		t.Fatalf("no signature: %v", err)
	}
	return d.Signature.Value
}
