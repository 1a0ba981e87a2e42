package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"erasure"
	"erasure/api"
)

func TestAPI_RequestsByIdentifier(t *testing.T) {
	e := newEnv(t)
	alice := e.submit(`{"subject":{"email":"alice@example.com","user_id":"7"},"reason":"user_request"}`)
	e.submit(`{"subject":{"email":"bob@example.com"},"reason":"user_request"}`)
	list := func(q string) (response, erasure.RequestPage) {
		t.Helper()
		r := e.call("GET", "/v1/requests?"+q, tokRead, "")
		var p erasure.RequestPage
		json.Unmarshal(r.body, &p)
		return r, p
	}

	t.Run("Found", func(t *testing.T) {
		r, p := list("identifier=" + url.QueryEscape("email:alice@example.com"))
		if r.status != http.StatusOK || len(p.Requests) != 1 || p.Requests[0].ID != alice.ID {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if strings.Contains(string(r.body), "alice@example.com") {
			t.Fatalf("the answer holds the identifier in clear: %s", r.body)
		}
	})
	t.Run("ValueWithColons", func(t *testing.T) {
		r, p := list("identifier=" + url.QueryEscape("user_id:7:8"))
		if r.status != http.StatusOK || len(p.Requests) != 0 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("CombinesWithStatus", func(t *testing.T) {
		r, p := list("status=completed&identifier=" + url.QueryEscape("email:alice@example.com"))
		if r.status != http.StatusOK || len(p.Requests) != 0 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("BadInputNeverEchoesTheValue", func(t *testing.T) {
		for _, q := range []string{"alice@example.com", "email:", ":alice@example.com", "Email:alice@example.com", "phone:alice@example.com"} {
			r, _ := list("identifier=" + url.QueryEscape(q))
			if r.status != http.StatusBadRequest {
				t.Fatalf("identifier=%s: %d %s", q, r.status, r.body)
			}
			if strings.Contains(string(r.body), "alice@example.com") {
				t.Fatalf("identifier=%s: the error repeats the value: %s", q, r.body)
			}
		}
	})
	t.Run("NeedsTheReadRole", func(t *testing.T) {
		if r := e.call("GET", "/v1/requests?identifier=email:a@b.c", tokSubmit, ""); r.status != http.StatusForbidden {
			t.Fatalf("%d", r.status)
		}
	})
	t.Run("DatasetFilter", func(t *testing.T) {
		r, p := list("dataset=profile-service")
		if r.status != http.StatusOK || len(p.Requests) != 2 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r, _ := list("dataset=Not%20A%20Name"); r.status != http.StatusBadRequest {
			t.Fatalf("bad dataset name: %d", r.status)
		}
	})
	if logs := e.logs.String(); strings.Contains(logs, "alice@example.com") || strings.Contains(logs, "alice%40example.com") {
		t.Fatalf("the logs hold the identifier:\n%s", logs)
	}
}

// certifier is a Certifier with one certificate, of request "r_done".
type certifier struct{ doc []byte }

func (c certifier) Certificate(ctx context.Context, id string) (*erasure.SignedCertificate, error) {
	switch id {
	case "r_done":
		return &erasure.SignedCertificate{Document: c.doc}, nil
	case "r_open":
		return nil, erasure.Errorf(erasure.ECONFLICT, "request r_open is running: a certificate is issued once it has completed")
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
}

func (c certifier) CertificateKey() erasure.CertificateKey {
	return erasure.CertificateKey{Algorithm: "ed25519", KeyID: "0011223344556677", PublicKey: "AAAA"}
}

func TestAPI_Certificates(t *testing.T) {
	doc := []byte("{\n  \"certificate\": {},\n  \"signature\": {}\n}\n")
	e := newEnv(t)
	for p, h := range api.CertificateRoutes(e.api, certifier{doc}) {
		e.api.Mount(p, h)
	}
	t.Run("DocumentAsSigned", func(t *testing.T) {
		r := e.call("GET", "/v1/requests/r_done/certificate", tokRead, "")
		if r.status != http.StatusOK || string(r.body) != string(doc) || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %q %v", r.status, r.body, r.header)
		}
	})
	t.Run("Codes", func(t *testing.T) {
		for path, want := range map[string]int{
			"/v1/requests/r_open/certificate":   http.StatusConflict,
			"/v1/requests/r_none/certificate":   http.StatusNotFound,
			"/v1/requests/r_done/certificate?x": http.StatusBadRequest,
		} {
			if r := e.call("GET", path, tokRead, ""); r.status != want {
				t.Errorf("%s: %d, want %d (%s)", path, r.status, want, r.body)
			}
		}
		if r := e.call("GET", "/v1/requests/r_done/certificate", "", ""); r.status != http.StatusUnauthorized {
			t.Errorf("without a token: %d", r.status)
		}
		if r := e.call("GET", "/v1/requests/r_done/certificate", tokSubmit, ""); r.status != http.StatusForbidden {
			t.Errorf("without the read role: %d", r.status)
		}
	})
	t.Run("KeyIsPublic", func(t *testing.T) {
		r := e.call("GET", "/v1/certificates/key", "", "")
		var k erasure.CertificateKey
		if r.status != http.StatusOK || json.Unmarshal(r.body, &k) != nil || k.KeyID != "0011223344556677" || k.Algorithm != "ed25519" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}
