package pipeline_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/storetest"
)

func TestCertifier_Certificate(t *testing.T) {
	clock := storetest.NewClock()
	users := &conn{held: map[string]bool{"42": true}}
	flaky := &conn{held: map[string]bool{"42": true}, failures: []error{&erasure.TransientError{Err: errors.New("503 from the test")}}}
	h := newHarness(t, clock, dataset("users", users, []string{"user_id"}), dataset("profiles", flaky, []string{"user_id"}))
	_, key, _ := ed25519.GenerateKey(nil)
	c := &pipeline.Certifier{Store: h.store, Key: key, Now: clock.Now}
	ctx := context.Background()
	r := h.submit(t, "user_id", "42", "email", "alice@example.com")

	t.Run("OpenRequestHasNone", func(t *testing.T) {
		_, err := c.Certificate(ctx, r.ID)
		if erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("certificate of a pending request: %v, want ECONFLICT", err)
		}
	})
	t.Run("UnknownRequestIsNotFound", func(t *testing.T) {
		if _, err := c.Certificate(ctx, "r_00000000000000000000000000"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("%v", err)
		}
		if _, err := c.Certificate(ctx, "../etc"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("%v", err)
		}
	})

	h.step(t)
	clock.Add(2 * time.Second)
	h.step(t)
	if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
		t.Fatalf("request %s", got.Status)
	}
	sc, err := c.Certificate(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	cert, key2, err := audit.VerifyCertificate(sc.Document, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if key2 != c.CertificateKey() {
		t.Fatalf("signed by %+v, the certifier's key is %+v", key2, c.CertificateKey())
	}
	if cert.Request.ID != r.ID || cert.Request.Status != erasure.RequestCompleted || cert.Request.CompletedAt.IsZero() || cert.Request.Late {
		t.Fatalf("request part %+v", cert.Request)
	}
	hasher, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	wantHashes := []string{hasher.Identifier(erasure.Identifier{Type: "email", Value: "alice@example.com"}), hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "42"})}
	slices.Sort(wantHashes)
	if !slices.Equal(cert.Subject, wantHashes) {
		t.Fatalf("subject %v, want %v", cert.Subject, wantHashes)
	}
	if len(cert.Datasets) != 2 || cert.Datasets[0].Dataset != "profiles" || cert.Datasets[0].Attempts != 2 || cert.Datasets[0].Removed != 1 ||
		cert.Datasets[0].VerifiedAt == nil || cert.Datasets[1].Dataset != "users" || cert.Datasets[1].Outcome != erasure.TaskDone {
		t.Fatalf("datasets %+v", cert.Datasets)
	}
	head, _ := h.store.AuditHead(ctx)
	if cert.Audit.Head != head || cert.Audit.LastBlock > head.Block || cert.Audit.Events < 4 || cert.Audit.FirstEvent < 1 || cert.Audit.LastEvent > head.Events {
		t.Fatalf("audit %+v, head %+v", cert.Audit, head)
	}
	if doc := string(sc.Document); strings.Contains(doc, "alice@example.com") || strings.Contains(doc, `"42"`) {
		t.Fatalf("certificate holds an identifier in clear:\n%s", doc)
	}
}

func TestService_RequestsByIdentifier(t *testing.T) {
	users := &conn{held: map[string]bool{}}
	h := newHarness(t, nil, dataset("users", users, []string{"user_id"}))
	h.svc.IdentifierTypes = []erasure.IdentifierType{{Name: "email", Normalize: erasure.NormalizeLower, Trim: true}}
	ctx := context.Background()
	a := h.submit(t, "email", "Alice@Example.com")
	h.submit(t, "email", "bob@example.com")
	h.step(t)
	for _, q := range []string{"alice@example.com", " ALICE@example.COM "} {
		p, err := h.svc.Requests(ctx, erasure.RequestFilter{Identifier: &erasure.Identifier{Type: "email", Value: q}})
		if err != nil || len(p.Requests) != 1 || p.Requests[0].ID != a.ID {
			t.Fatalf("search %q: %v %+v", q, err, p.Requests)
		}
	}
	for _, bad := range []erasure.Identifier{{Type: "phone_number", Value: "1"}, {Type: "email", Value: ""}} {
		_, err := h.svc.Requests(ctx, erasure.RequestFilter{Identifier: &bad})
		if erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("search %s: %v, want EINVALID", bad.Type, err)
		}
	}
	if _, err := h.svc.Requests(ctx, erasure.RequestFilter{Dataset: "nope"}); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("unknown dataset: %v", err)
	}
}
