package httpconn_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"erasure"
	"erasure/connector/connectortest"
)

// userStore is a small service owning users: GET and DELETE /users/{id}, 404 for an unknown
// id, as a service owner would write it.
type userStore struct {
	mu    sync.Mutex
	users map[string]string // id → e-mail
}

func (s *userStore) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		email, ok := s.users[r.PathValue("id")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"id": r.PathValue("id"), "email": email})
	})
	mux.HandleFunc("DELETE /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		_, ok := s.users[r.PathValue("id")]
		delete(s.users, r.PathValue("id"))
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("HEAD /{$}", func(w http.ResponseWriter, r *http.Request) {})
	return mux
}

// TestConnectorContract runs the connectors' common contract against a real HTTP service on
// loopback: erase, verify and lookup (user_id → email) on the user store.
func TestConnectorContract(t *testing.T) {
	connectortest.Run(t, connectortest.Target{
		Open: func(t *testing.T) *connectortest.Service {
			store := &userStore{users: map[string]string{}}
			srv := httptest.NewServer(store.handler())
			t.Cleanup(srv.Close)
			return &connectortest.Service{
				Registry: contractRegistry,
				Env:      map[string]string{"BASE": srv.URL},
				Key:      "user_id",
				Plant: func(t *testing.T, s erasure.Subject) []erasure.Identifier {
					var out []erasure.Identifier
					store.mu.Lock()
					defer store.mu.Unlock()
					for _, v := range s.Values("user_id") {
						store.users[v] = "u" + v + "@example.com"
						out = append(out, erasure.Identifier{Type: "email", Value: store.users[v]})
					}
					return out
				},
				Remaining: func(t *testing.T, s erasure.Subject) int64 {
					store.mu.Lock()
					defer store.mu.Unlock()
					var n int64
					for _, v := range s.Values("user_id") {
						if _, ok := store.users[v]; ok {
							n++
						}
					}
					return n
				},
			}
		},
		Unreachable: func(t *testing.T, at connectortest.Nowhere) *connectortest.Service {
			return &connectortest.Service{Registry: contractRegistry, Env: map[string]string{"BASE": "http://" + at.Addr}, Key: "user_id"}
		},
	})
}

const contractRegistry = `version: 1
identifiers: [user_id, email]
datasets:
  - name: profile-service
    owner: profile-team
    connector: http
    http:
      erase:  { method: DELETE, url: "${BASE}/users/{user_id}" }
      verify: { method: GET, url: "${BASE}/users/{user_id}" }
      lookup: { method: GET, url: "${BASE}/users/{user_id}" }
    provides: [ { identifier: email, field: email } ]
`
