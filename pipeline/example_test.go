package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

// profiles is a dataset held in memory: the user ids it has a profile for. It is a connector:
// an erasure.Eraser, and an erasure.Verifier so that each erasure is checked.
type profiles struct {
	mu    sync.Mutex
	users map[string]bool
}

func (p *profiles) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out erasure.Outcome
	for _, id := range s.Values("user_id") {
		if p.users[id] {
			delete(p.users, id)
			out.Removed++
		}
	}
	return out, nil // erasing what is already gone succeeds with 0 removed
}

func (p *profiles) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range s.Values("user_id") {
		if p.users[id] {
			return true, nil
		}
	}
	return false, nil
}

func (p *profiles) Close() error { return nil }

func (p *profiles) held() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id := range p.users {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// The pipeline erases a subject from a dataset: the Service plans a request (one task per
// dataset) and stores it, the Engine leases the task, calls the connector, verifies, and
// records the outcome with its audit event.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "erasure-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	hasher, err := audit.NewHasher([]byte("a key of 32 bytes for the hashes"))
	if err != nil {
		panic(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "erasure.db"), sqlite.Options{Hasher: hasher, Chain: hasher.Chain()})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	conn := &profiles{users: map[string]bool{"42": true, "43": true}}
	ds := &erasure.Dataset{Name: "profiles", Owner: "profile-team", Connector: "memory", Method: erasure.MethodRealtime,
		Keys: []string{"user_id"}, Conn: conn,
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 5 * time.Second}}
	engine := &pipeline.Engine{Store: store, Datasets: map[string]*erasure.Dataset{ds.Name: ds}}
	svc := &pipeline.Service{Store: store, Hasher: hasher, Chain: hasher.Chain(), Registered: []*erasure.Dataset{ds}, Identifiers: []string{"user_id"},
		DefaultDeadline: 720 * time.Hour, Engine: engine}

	run, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { engine.Run(run); close(stopped) }()
	defer func() { stop(); <-stopped }()

	req, _, err := svc.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}), Reason: "user_request"})
	if err != nil {
		panic(err)
	}
	for req.Status != erasure.RequestCompleted {
		time.Sleep(10 * time.Millisecond)
		if req, err = svc.Request(ctx, req.ID); err != nil {
			panic(err)
		}
	}
	fmt.Println("request", req.Status)
	for _, t := range req.Tasks {
		fmt.Printf("%s: %s, %d removed, verified %t\n", t.Dataset, t.State, t.Removed, t.VerifiedAt != nil)
	}
	fmt.Println("profiles left:", conn.held())
	// Output:
	// request completed
	// profiles: done, 1 removed, verified true
	// profiles left: [43]
}
