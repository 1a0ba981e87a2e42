package httpconn_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"erasure"
	"erasure/registry"
)

// userService is a small HTTP service holding users: POST /users creates one from
// {"id": "..."}; GET /users/{id} answers 200 or 404; DELETE /users/{id} deletes it and answers
// {"deleted": N} (N is rows; wide makes it report many), unless broken, when it answers 204
// and deletes nothing.
type userService struct {
	mu     sync.Mutex
	users  map[string]bool
	broken bool
	wide   int
}

func (s *userService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := strings.TrimPrefix(r.URL.Path, "/users/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/users":
		var body struct {
			ID string `json:"id"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.ID == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.users[body.ID] = true
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodGet && s.users[id]:
		w.Write([]byte(`{"id":"x"}`))
	case r.Method == http.MethodGet:
		w.WriteHeader(http.StatusNotFound)
	case r.Method == http.MethodDelete && s.broken:
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && s.users[id]:
		delete(s.users, id)
		n := 1
		if s.wide > 0 {
			n = s.wide
		}
		json.NewEncoder(w).Encode(map[string]int{"deleted": n})
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNotFound)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// TestConnector_Guard: an HTTP service can only be judged by what it reports: over max_removed
// the task fails permanently, saying the service has already erased.
func TestConnector_Guard(t *testing.T) {
	svc := &userService{users: map[string]bool{"1": true, "2": true}, wide: 5000}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	c := build(t, "erase: { url: \""+srv.URL+"/users/{user_id}\", removed: deleted }\n").(erasure.Eraser)
	guarded := erasure.ContextWithGuard(context.Background(), erasure.Guard{MaxRemoved: 100})
	out, err := c.Erase(guarded, users("1"))
	g, ok := erasure.AsGuardError(err)
	if !ok || !erasure.IsPermanent(err) || !g.Reported || g.Count != 5000 || out.Removed != 5000 {
		t.Fatalf("Erase = %+v, %v; want a permanent guard error on the reported 5000", out, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "reports 5000") || !strings.Contains(msg, "max_removed 100") || !strings.Contains(msg, "already erased") {
		t.Fatalf("message %q", msg)
	}
	svc.wide = 0
	if out, err := c.Erase(guarded, users("2")); err != nil || out.Removed != 1 {
		t.Fatalf("Erase of a reported 1 = %+v, %v", out, err)
	}
	t.Run("ResponseWithoutTheCountIsPermanent", func(t *testing.T) {
		srv := newServer(t, func(_ int, r *http.Request, w http.ResponseWriter) { w.Write([]byte(`{"ok":true}`)) })
		c := build(t, "erase: { url: \""+srv.URL+"/users/{user_id}\", removed: deleted }\n").(erasure.Eraser)
		if _, err := c.Erase(context.Background(), users("1")); !erasure.IsPermanent(err) || !strings.Contains(err.Error(), "no count at deleted") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestConnector_Canary: Plant calls the create endpoint, Remains reads the subject back with
// plant.check or the dataset's verify.
func TestConnector_Canary(t *testing.T) {
	ctx := context.Background()
	svc := &userService{users: map[string]bool{}}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	plant := `canary: { plant: { url: "` + srv.URL + `/users", body: '{{"id": "{user_id}"}}', check: { url: "` + srv.URL + `/users/{user_id}" } } }`
	c := build(t, "erase: { url: \""+srv.URL+"/users/{user_id}\" }\n", plant)
	p, ok := c.(erasure.Planter)
	if !ok {
		t.Fatalf("%T is no Planter", c)
	}
	s := users("erasure-canary-1")
	if err := p.Plant(ctx, s); err != nil || !svc.users["erasure-canary-1"] {
		t.Fatalf("Plant: %v; users %v", err, svc.users)
	}
	if held, err := p.Remains(ctx, s); err != nil || !held {
		t.Fatalf("Remains after Plant = %v, %v", held, err)
	}
	if _, err := c.(erasure.Eraser).Erase(ctx, s); err != nil {
		t.Fatal(err)
	}
	if held, err := p.Remains(ctx, s); err != nil || held {
		t.Fatalf("Remains after Erase = %v, %v", held, err)
	}
	t.Run("BrokenDeleteLeavesItThere", func(t *testing.T) {
		svc.broken = true
		defer func() { svc.broken = false }()
		if err := p.Plant(ctx, s); err != nil {
			t.Fatal(err)
		}
		if out, err := c.(erasure.Eraser).Erase(ctx, s); err != nil || out.Removed != 1 {
			t.Fatalf("the broken service's 204 reads as success: %+v, %v", out, err)
		}
		if held, err := p.Remains(ctx, s); err != nil || !held {
			t.Fatalf("Remains after a 204 that deleted nothing = %v, %v; want true", held, err)
		}
	})
	t.Run("VerifyIsTheDefaultCheck", func(t *testing.T) {
		c := build(t, "erase: { url: \""+srv.URL+"/users/{user_id}\" }\nverify: { url: \""+srv.URL+"/users/{user_id}\" }\n",
			`canary: { plant: { url: "`+srv.URL+`/users", body: '{{"id": "{user_id}"}}' } }`)
		s := users("erasure-canary-2")
		if err := c.(erasure.Planter).Plant(ctx, s); err != nil {
			t.Fatal(err)
		}
		if held, err := c.(erasure.Planter).Remains(ctx, s); err != nil || !held {
			t.Fatalf("Remains = %v, %v", held, err)
		}
	})
}

func TestBuild_CanaryNeedsAPlantAndACheck(t *testing.T) {
	for _, tc := range []struct{ name, block, canary, want string }{
		{"NoPlant", "erase: { url: \"http://svc/users/{user_id}\" }\n", "canary: { every: 1h }", "the canary needs canary.plant"},
		{"NoCheckNorVerify", "erase: { url: \"http://svc/users/{user_id}\" }\n", `canary: { plant: { url: "http://svc/users" } }`, "read its subject back"},
		{"PlantUsesAnotherIdentifier", "erase: { url: \"http://svc/users/{user_id}\" }\nverify: { url: \"http://svc/users/{user_id}\" }\n",
			`canary: { plant: { url: "http://svc/users?email={email}" } }`, "{email} is not one of the dataset's keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.Parse("erasure.yaml", []byte(registryYAML(tc.block, tc.canary)), func(string) (string, bool) { return "", false })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
