package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"erasure"
	"erasure/client"
	_ "erasure/connector/http" // the profile service's connector
	"erasure/registry"
	"erasure/server"
)

// The Go client submits an erasure and follows it to its end. Here the API it calls is a real
// server (package server: the pipeline over SQLite) erasing from a profile service over HTTP.
func Example() {
	ctx := context.Background()

	// A service of the estate: it holds the profiles of users 42 and 43.
	var mu sync.Mutex
	held := map[string]bool{"42": true, "43": true}
	profiles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := strings.TrimPrefix(r.URL.Path, "/users/")
		if !held[id] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Method == http.MethodDelete {
			delete(held, id)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer profiles.Close()

	// The erasure server, with its registry of one dataset.
	dir, err := os.MkdirTemp("", "erasure-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
auth:
  tokens:
    - { name: intake, secret: "${INTAKE_TOKEN}", roles: [submit, read] }
identifiers: [user_id, email]
datasets:
  - name: profile-service
    owner: profile-team
    connector: http
    http:
      erase:  { method: DELETE, url: "%s/users/{user_id}" }
      verify: { method: GET,    url: "%s/users/{user_id}", gone: [404] }
`, filepath.Join(dir, "data"), profiles.URL, profiles.URL)
	const token = "an-intake-token-of-the-example"
	cfg, err := registry.Parse("erasure.yaml", []byte(yml), func(string) (string, bool) { return token, true })
	if err != nil {
		panic(err)
	}
	srv, err := server.Open(ctx, cfg, nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	run, stop := context.WithCancel(ctx)
	executor := srv.Executor()
	executor.Start(run)
	defer func() { stop(); executor.Wait() }()
	api := httptest.NewServer(srv.API.Handler())
	defer api.Close()

	// The client: submit, under an idempotency key so that a retry cannot submit twice.
	c, err := client.New(api.URL, token)
	if err != nil {
		panic(err)
	}
	sub := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}), Reason: "user_request"}
	req, created, err := c.Submit(ctx, sub, "ticket-1234")
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", created)
	again, created, _ := c.Submit(ctx, sub, "ticket-1234")
	fmt.Println("same request again:", again.ID == req.ID, "created:", created)

	for req.Status != erasure.RequestCompleted {
		time.Sleep(20 * time.Millisecond)
		if req, err = c.Request(ctx, req.ID); err != nil {
			panic(err)
		}
	}
	for _, t := range req.Tasks {
		fmt.Printf("%s %s: %s, %d removed, verified %t\n", t.Dataset, t.Kind, t.State, t.Removed, t.VerifiedAt != nil)
	}
	_, err = c.Request(ctx, "r_00000000000000000000000000")
	fmt.Println("unknown request:", erasure.ErrorCode(err))
	// Output:
	// created: true
	// same request again: true created: false
	// profile-service erase: done, 1 removed, verified true
	// unknown request: not_found
}
