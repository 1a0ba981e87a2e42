package drp_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/drp"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

// direct returns the protocol's routes over a store of their own, on the clock now.
func direct(t *testing.T, now func() time.Time, agents ...drp.Agent) http.Handler {
	t.Helper()
	h, err := audit.NewHasher([]byte("drp-clock-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "e.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Now: now, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Identifiers: []string{"email"}, DefaultDeadline: time.Hour, Now: now}
	srv, err := drp.New(drp.Config{BusinessID: business, Agents: agents, Service: svc, Store: st, Hasher: h, NewID: pipeline.NewRequestID, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, handler := range srv.Routes() {
		mux.Handle(pattern, handler)
	}
	return mux
}

func setUp(h http.Handler, agentID, body string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/agent/"+agentID, strings.NewReader(body)))
	return rec.Code
}

// TestLibsodiumSignedMessage checks a key set-up message signed by libsodium itself
// (testdata/libsodium_fixture.py wrote it with crypto_sign), issued at 12:00 and expiring at
// 12:10, against the clock and the default one-minute skew.
func TestLibsodiumSignedMessage(t *testing.T) {
	var fx struct {
		VerifyKey string `json:"verify_key"`
		Signed    string `json:"signed"`
	}
	b, err := os.ReadFile("testdata/libsodium.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(fx.VerifyKey)
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	h := direct(t, func() time.Time { return now }, drp.Agent{ID: "LIBSODIUM_AGENT", VerifyKey: ed25519.PublicKey(key), Claims: map[string]string{"email": "email"}})
	at := func(hms string) time.Time {
		t, _ := time.Parse(time.RFC3339, "2026-03-01T"+hms+"Z")
		return t
	}
	for _, tc := range []struct {
		at   string
		want int
	}{
		{"12:11:30", http.StatusForbidden}, // expired 90 s ago: beyond the skew
		{"11:58:30", http.StatusForbidden}, // issued 90 s ahead
		{"12:10:30", http.StatusOK},        // expired 30 s ago: within the skew
		{"12:05:00", http.StatusForbidden}, // the same message again
	} {
		now = at(tc.at)
		if got := setUp(h, "LIBSODIUM_AGENT", fx.Signed); got != tc.want {
			t.Errorf("at %s: %d, want %d", tc.at, got, tc.want)
		}
	}
}

func TestClockSkew(t *testing.T) {
	T := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := keyOf("SKEW")
	h := direct(t, func() time.Time { return T }, drp.Agent{ID: "SKEW", VerifyKey: key.Public().(ed25519.PublicKey), Claims: map[string]string{"email": "email"}})
	sign := func(issued, expires string) string {
		msg, _ := json.Marshal(map[string]any{"agent-id": "SKEW", "business-id": business, "issued-at": issued, "expires-at": expires})
		return base64.StdEncoding.EncodeToString(append(ed25519.Sign(key, msg), msg...))
	}
	f := func(d time.Duration) string { return T.Add(d).Format(time.RFC3339Nano) }
	for name, tc := range map[string]struct {
		issued, expires string
		want            int
	}{
		"IssuedWithinTheSkewAhead":    {f(30 * time.Second), f(5 * time.Minute), http.StatusOK},
		"IssuedBeyondTheSkewAhead":    {f(90 * time.Second), f(5 * time.Minute), http.StatusForbidden},
		"ExpiredWithinTheSkew":        {f(-10 * time.Minute), f(-30 * time.Second), http.StatusOK},
		"ExpiredBeyondTheSkew":        {f(-10 * time.Minute), f(-90 * time.Second), http.StatusForbidden},
		"LivingAnHourAtMost":          {f(-time.Minute), f(58 * time.Minute), http.StatusOK},
		"LivingLonger":                {f(-time.Minute), f(61 * time.Minute), http.StatusForbidden},
		"ExpiringBeforeItWasIssued":   {f(-time.Second), f(-2 * time.Second), http.StatusForbidden},
		"WithoutAZoneIsUTC":           {"2026-03-01T11:59:00", "2026-03-01T12:04:00.5", http.StatusOK},
		"WithAnOffset":                {"2026-03-01T13:59:01+02:00", "2026-03-01T14:04:00+0200", http.StatusOK},
		"AnOffsetThatPutsItAhead":     {"2026-03-01T11:59:00-02:00", "2026-03-01T12:04:00-02:00", http.StatusForbidden},
		"NotATimestamp":               {"1772366400", f(5 * time.Minute), http.StatusForbidden},
		"ADateWithoutTimeIsNotEnough": {"2026-03-01", f(5 * time.Minute), http.StatusForbidden},
	} {
		t.Run(name, func(t *testing.T) {
			if got := setUp(h, "SKEW", sign(tc.issued, tc.expires)); got != tc.want {
				t.Fatalf("issued %s, expires %s at %s: %d, want %d", tc.issued, tc.expires, T.Format(time.RFC3339), got, tc.want)
			}
		})
	}
}

func TestNew_RefusesABadConfiguration(t *testing.T) {
	ok := drp.Config{BusinessID: business, Service: &pipeline.Service{}, Store: nil, NewID: pipeline.NewRequestID}
	for name, cfg := range map[string]drp.Config{
		"NoBusiness": {},
		"NoStore":    ok,
	} {
		if _, err := drp.New(cfg); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}
