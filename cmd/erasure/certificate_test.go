package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRequestsAndCertificates_OverThePipeline: `requests list` with the API's filters and the
// search by identifier, and a certificate fetched, checked offline, and refused once tampered.
func TestRequestsAndCertificates_OverThePipeline(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(pipelineConfig, filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ERASURE_PIPELINE_TOKEN", "admin-secret-0123456789")
	m := startMain(t, cfg)
	t.Setenv("ERASURE_URL", m.URL())
	t.Setenv("ERASURE_TOKEN", "admin-secret-0123456789")
	first := waitFirstPoll
	waitFirstPoll = 5 * time.Millisecond
	t.Cleanup(func() { waitFirstPoll = first })

	submit := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(t, append([]string{"submit", "--wait", "--timeout", "1m"}, args...)...)
		id, _, _ := strings.Cut(out, "\n")
		if !strings.HasPrefix(id, "r_") {
			t.Fatalf("submit: exit %d %q %q", code, out, errOut)
		}
		return id
	}
	done := submit("user_id=42", "email=alice@example.com")
	failed := submit("user_id=13", "email=bob@example.com")

	t.Run("ListByIdentifier", func(t *testing.T) {
		code, out, errOut := run(t, "requests", "list", "--identifier", "email=alice@example.com")
		if code != 0 || !strings.Contains(out, done) || strings.Contains(out, failed) || strings.Contains(strings.ToLower(out+errOut), "alice") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
		if lastLine(errOut) != "1 request listed" {
			t.Fatalf("stderr %q", errOut)
		}
	})
	t.Run("IdentifierFromStandardInput", func(t *testing.T) {
		old := stdin
		stdin = strings.NewReader("alice@example.com\n")
		defer func() { stdin = old }()
		code, out, errOut := run(t, "requests", "list", "--identifier", "email=-")
		if code != 0 || !strings.Contains(out, done) {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("Filters", func(t *testing.T) {
		code, out, _ := run(t, "requests", "list", "--status", "failed", "--dataset", "profile-service")
		if code != 0 || !strings.Contains(out, failed) || strings.Contains(out, done) {
			t.Fatalf("exit %d %q", code, out)
		}
		code, out, errOut := run(t, "requests", "list", "--limit", "1")
		if code != 0 || strings.Count(out, "\nr_") != 1 || !strings.Contains(errOut, "more with --cursor r_") {
			t.Fatalf("one page: exit %d %q %q", code, out, errOut)
		}
		code, out, errOut = run(t, "requests", "list", "--limit", "1", "--all", "--json")
		if code != 0 || strings.Count(out, `"id":"r_`) != 2 || lastLine(errOut) != "2 requests listed" {
			t.Fatalf("all pages: exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("BadFilters", func(t *testing.T) {
		for _, args := range [][]string{{"--identifier", "alice@example.com"}, {"--identifier", "phone=1"}, {"--status", "done"}, {"--limit", "0"}, {"--dataset", "nope"}, {"extra"}} {
			code, _, errOut := run(t, append([]string{"requests", "list"}, args...)...)
			if code != 2 || strings.Contains(errOut, "alice@example.com") {
				t.Fatalf("%v: exit %d %q", args, code, errOut)
			}
		}
	})

	file := filepath.Join(dir, "cert.json")
	keyFile := filepath.Join(dir, "key.json")
	t.Run("GetAndVerify", func(t *testing.T) {
		if code, _, errOut := run(t, "certificate", "get", done, "-o", file); code != 0 {
			t.Fatalf("get: exit %d %q", code, errOut)
		}
		code, out, _ := run(t, "certificate", "key")
		if code != 0 || os.WriteFile(keyFile, []byte(out), 0o600) != nil {
			t.Fatalf("key: exit %d %q", code, out)
		}
		code, out, errOut := run(t, "certificate", "verify", file, "--public-key", keyFile)
		if code != 0 || !strings.HasPrefix(errOut, "verified: certificate of "+done) || !strings.Contains(out, "profile-service") {
			t.Fatalf("verify: exit %d %q %q", code, out, errOut)
		}
		code, _, errOut = run(t, "certificate", "verify", file)
		if code != 0 || !strings.HasPrefix(errOut, "whole: ") {
			t.Fatalf("verify without a key: exit %d %q", code, errOut)
		}
		doc, _ := os.ReadFile(file)
		if bytes.Contains(bytes.ToLower(doc), []byte("alice@example.com")) {
			t.Fatalf("the certificate holds the identifier in clear")
		}
	})
	t.Run("TamperedFails", func(t *testing.T) {
		doc, _ := os.ReadFile(file)
		i := bytes.Index(doc, []byte(`"removed": 1`))
		if i < 0 {
			t.Fatalf("no removed count in %s", doc)
		}
		bad := bytes.Clone(doc)
		bad[i+len(`"removed": `)] = '7'
		tampered := filepath.Join(dir, "tampered.json")
		os.WriteFile(tampered, bad, 0o600)
		code, _, errOut := run(t, "certificate", "verify", tampered, "--public-key", keyFile)
		if code != 1 || !strings.Contains(errOut, "certificate does not verify") {
			t.Fatalf("tampered: exit %d %q", code, errOut)
		}
	})
	t.Run("OtherKeyFails", func(t *testing.T) {
		pub, _, _ := ed25519.GenerateKey(nil)
		code, _, errOut := run(t, "certificate", "verify", file, "--public-key", base64.StdEncoding.EncodeToString(pub))
		if code != 1 || !strings.Contains(errOut, "not by the key given") {
			t.Fatalf("other key: exit %d %q", code, errOut)
		}
	})
	t.Run("NoneForAFailedRequest", func(t *testing.T) {
		if code, _, errOut := run(t, "certificate", "get", failed); code != 5 {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
}
