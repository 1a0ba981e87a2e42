package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/client"
	"erasure/internal/testenv"
	"erasure/mutator"
)

// fleetConfig: one PostgreSQL store shared by every process; an HTTP dataset (a service in the
// test process), an async dataset on an external NATS (a mutator in the test process
// acknowledges it) and a files dataset swept every 2s. Leases are short, so that the work of a
// killed process is taken over within seconds.
const fleetConfig = `version: 1
server: { addr: %q, data_dir: %q, workers: 8, lease: 3s }
store: { dsn: "${FLEET_DSN}" }
audit: { key: "${FLEET_AUDIT_KEY}", signing_key: "${FLEET_SIGNING_KEY}" }
nats: { url: "${FLEET_NATS}", stream: %s, ack_prefix: %s.ack }
auth:
  tokens:
    - { name: fleet, secret: "${FLEET_TOKEN}", roles: [submit, read, operate] }
identifiers: [user_id]
defaults: { max_attempts: 50, backoff: { initial: 50ms, max: 1s }, timeout: 2s, ack_timeout: 20s }
datasets:
  - name: profiles
    owner: team
    connector: http
    http:
      erase:  { method: DELETE, url: "%s/profiles/{user_id}" }
      verify: { method: GET, url: "%s/profiles/{user_id}", gone: [404] }
  - name: notifications
    owner: team
    connector: nats
    nats: { subject: %s.notifications, identifiers: [user_id] }
  - name: events
    owner: data-team
    connector: files
    sweep: { every: 2s }
    files: { path: %q, format: jsonl, key: { field: user_id, identifier: user_id }, workers: 2 }
    # The test erases 5 of every 6 users of each partition: one sweep that catches most of them
    # would trip the default share guard (0.5 of a partition of 100 rows or more), depending on
    # how the sweeps fall. The guard has tests of its own.
    guard: { max_removed_share: 1 }
`

// proc is one erasure process of the fleet (serve or worker), a child of the test binary.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	logs    strings.Builder
	leading bool // the last leadership line it logged says it leads
	alive   bool
	starts  int
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(os.Args[0], p.args...)
	cmd.Env = p.env
	out, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.alive, p.leading = cmd, true, false
	p.starts++
	go p.read(bufio.NewScanner(out), cmd)
}

// read keeps the process's output and follows its leadership.
func (p *proc) read(sc *bufio.Scanner, cmd *exec.Cmd) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if p.cmd == cmd {
			switch {
			case strings.Contains(line, "msg=\"leading:"):
				p.leading = true
			case strings.Contains(line, "lost the lead"), strings.Contains(line, "stopped leading"):
				p.leading = false
			}
		}
		if p.logs.Len() < 4<<20 {
			fmt.Fprintf(&p.logs, "[%s #%d] %s\n", p.name, p.starts, line)
		}
		p.mu.Unlock()
	}
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.alive, p.leading = false, false
	p.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

func (p *proc) isLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alive && p.leading
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// TestFleet: `erasure serve` and three `erasure worker` processes share one PostgreSQL
// database, with an HTTP, an async and a files dataset. 1,000 requests go in while processes
// are SIGKILLed at random (the leader among them) and restarted. Every request completes, no
// task completes twice and every partition of every sweep is swept exactly once (both from
// the audit trail), the trail verifies, and the data is gone from every dataset.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test skipped in -short mode")
	}
	const requests, kept = 1000, 200
	const kills = 12
	dsn := testenv.PostgresSchema(t, "fleet")
	natsURL := testenv.Address(t, "ERASURE_TEST_NATS")
	nc, err := nats.Connect(natsURL)
	if err != nil {
		testenv.Unavailable(t, "ERASURE_TEST_NATS", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.Name("fleet")
	stream := strings.ToUpper(prefix)
	t.Cleanup(func() { js.DeleteStream(context.Background(), stream) })

	// The HTTP dataset: users 1…requests and the kept ones; DELETE is idempotent.
	var hmu sync.Mutex
	profiles := map[string]bool{}
	for u := 1; u <= requests+kept; u++ {
		profiles[fmt.Sprint(u)] = true
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	estate := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		hmu.Lock()
		defer hmu.Unlock()
		switch {
		case r.Method == http.MethodDelete:
			delete(profiles, id)
			w.WriteHeader(http.StatusNoContent)
		case profiles[id]:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})}
	go estate.Serve(ln)
	defer estate.Close()
	base := "http://" + ln.Addr().String()

	// The files dataset: 24 partitions, each user in one of them, a row or two each.
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	os.MkdirAll(events, 0o755)
	const parts = 24
	rowsOf := map[string]int{}
	for p := 0; p < parts; p++ {
		var b strings.Builder
		for u := 1 + p; u <= requests+kept; u += parts {
			for r := 0; r <= u%2; r++ {
				fmt.Fprintf(&b, "{\"user_id\":%d,\"event\":\"e%d\"}\n", u, r)
				rowsOf[fmt.Sprint(u)]++
			}
		}
		os.WriteFile(filepath.Join(events, fmt.Sprintf("part-%02d.jsonl", p)), []byte(b.String()), 0o644)
	}

	addr := freeAddr(t)
	cfg := filepath.Join(dir, "erasure.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(fleetConfig, addr, filepath.Join(dir, "data"), stream, prefix, base, base, prefix, events)), 0o600)
	token := randomToken()
	env := append(os.Environ(), "ERASURE_TEST_MAIN=1", "FLEET_DSN="+dsn, "FLEET_NATS="+natsURL, "FLEET_TOKEN="+token,
		"FLEET_AUDIT_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		"FLEET_SIGNING_KEY=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100")
	cl, _ := client.New("http://"+addr, token)
	procs := []*proc{{t: t, name: "serve", args: []string{"serve", "--config", cfg}, env: env}}
	for i := 1; i <= 3; i++ {
		procs = append(procs, &proc{t: t, name: fmt.Sprintf("worker-%d", i), args: []string{"worker", "--config", cfg}, env: env})
	}
	dump := func() {
		for _, p := range procs {
			out := p.output()
			if len(out) > 200<<10 {
				out = "…" + out[len(out)-200<<10:]
			}
			t.Log(out)
		}
	}
	for _, p := range procs {
		p.start()
	}
	defer func() {
		for _, p := range procs {
			p.mu.Lock()
			cmd := p.cmd
			p.mu.Unlock()
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		if t.Failed() {
			dump()
		}
	}()
	ctx := context.Background()
	waitReady := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for cl.Ready(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatal("serve not ready")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReady()

	// The async dataset's owner: a mutator erasing from its own store.
	var amu sync.Mutex
	notifications := map[string]bool{}
	for u := 1; u <= requests+kept; u++ {
		notifications[fmt.Sprint(u)] = true
	}
	mctx, stopMutator := context.WithCancel(ctx)
	defer stopMutator()
	go func() {
		for mctx.Err() == nil {
			err := mutator.Run(mctx, js, "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
				amu.Lock()
				defer amu.Unlock()
				var n int64
				for _, u := range c.Identifiers.Values("user_id") {
					if notifications[u] {
						delete(notifications, u)
						n++
					}
				}
				return n, nil
			}, mutator.Subject(prefix+".notifications"), mutator.Stream(stream), mutator.MaxInFlight(32), mutator.AckWait(5*time.Second))
			if err != nil && mctx.Err() == nil {
				time.Sleep(100 * time.Millisecond) // the stream may not exist yet
			}
		}
	}()

	// Intake: batches of 100 with keys, sent again until accepted while serve may be down.
	var accepted sync.Map
	var intake sync.WaitGroup
	intake.Add(1)
	go func() {
		defer intake.Done()
		for start := 1; start <= requests; start += 100 {
			var subs []client.BatchSubmission
			for u := start; u < start+100; u++ {
				subs = append(subs, client.BatchSubmission{IdempotencyKey: fmt.Sprintf("fleet-%d", u),
					Submission: erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: fmt.Sprint(u)}), Reason: "account_closed"}})
			}
			for {
				res, err := cl.SubmitBatch(ctx, subs)
				if err == nil && res.Failed == 0 {
					for i, it := range res.Results {
						accepted.Store(start+i, it.ID)
					}
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Duration(200+rand.IntN(300)) * time.Millisecond)
		}
	}()

	// Kills: a random process, every third kill the leader; each restarted after a moment.
	killedLeader := 0
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		var victim *proc
		if k%3 == 2 {
			for deadline := time.Now().Add(10 * time.Second); victim == nil && time.Now().Before(deadline); {
				for _, p := range procs {
					if p.isLeader() {
						victim = p
					}
				}
				if victim == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if victim == nil {
				t.Fatal("no process leads")
			}
			killedLeader++
		} else {
			victim = procs[rand.IntN(len(procs))]
		}
		t.Logf("SIGKILL %s (leader: %v)", victim.name, victim.isLeader())
		victim.kill()
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		victim.start()
		if victim.name == "serve" {
			waitReady()
		}
	}
	intake.Wait()

	// Every accepted request completes.
	ids := map[int]string{}
	accepted.Range(func(k, v any) bool { ids[k.(int)] = v.(string); return true })
	if len(ids) != requests {
		t.Fatalf("%d requests accepted, want %d", len(ids), requests)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		open := 0
		for _, status := range []erasure.RequestStatus{erasure.RequestPending, erasure.RequestRunning, erasure.RequestFailed} {
			page, err := cl.Requests(ctx, erasure.RequestFilter{Status: status, Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			open += len(page.Requests)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			page, _ := cl.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestRunning, Limit: 3})
			for _, r := range page.Requests {
				full, _ := cl.Request(ctx, r.ID)
				t.Logf("still running: %+v", full.Tasks)
			}
			t.Fatalf("%d requests still open", open)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for u, id := range ids {
		r, err := cl.Request(ctx, id)
		if err != nil || r.Status != erasure.RequestCompleted {
			t.Fatalf("request of user %d: %+v %v", u, r, err)
		}
	}

	// The trail: it verifies; every task is done once; every unit of every sweep is done once,
	// and a committed sweep's units are all its planned units.
	rep, err := cl.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("audit trail: %+v %v", rep, err)
	}
	done := map[int64]int{}
	doneOf := map[string]int{}
	planned := map[string]int{}
	unitDone := map[string]map[string]int{}
	committed := map[string]int{}
	err = cl.AuditEach(ctx, erasure.AuditFilter{}, func(ev erasure.AuditEvent) error {
		var d struct {
			Outcome string `json:"outcome"`
			Sweep   string `json:"sweep"`
			Unit    string `json:"unit"`
			Units   int    `json:"units"`
		}
		json.Unmarshal(ev.Data, &d)
		switch ev.Type {
		case erasure.EventTaskAttempt, erasure.EventTaskAcked:
			if d.Outcome == "done" {
				done[ev.TaskID]++
				doneOf[ev.RequestID]++
			}
		case erasure.EventSweepPlanned:
			planned[d.Sweep] = d.Units
		case erasure.EventSweepUnit:
			if d.Outcome == "done" {
				if unitDone[d.Sweep] == nil {
					unitDone[d.Sweep] = map[string]int{}
				}
				unitDone[d.Sweep][d.Unit]++
			}
		case erasure.EventSweepCommitted:
			committed[d.Sweep]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for task, n := range done {
		if n != 1 {
			t.Errorf("task %d completed %d times", task, n)
		}
	}
	for u, id := range ids {
		if doneOf[id] != 3 {
			t.Errorf("request of user %d: %d tasks done in the trail, want 3", u, doneOf[id])
		}
	}
	unitsSwept := 0
	for sw, n := range committed {
		if n != 1 {
			t.Errorf("sweep %s committed %d times", sw, n)
		}
		if planned[sw] == 0 {
			continue // a sweep committed without units (nothing to plan)
		}
		if len(unitDone[sw]) != planned[sw] {
			t.Errorf("sweep %s: %d of its %d units done", sw, len(unitDone[sw]), planned[sw])
		}
		for unit, n := range unitDone[sw] {
			unitsSwept++
			if n != 1 {
				t.Errorf("sweep %s: partition %s swept %d times", sw, unit, n)
			}
		}
	}
	if len(committed) == 0 {
		t.Fatal("no sweep committed")
	}

	// The data is gone from every dataset; the kept subjects' data is all there.
	stopMutator()
	hmu.Lock()
	for u := 1; u <= requests+kept; u++ {
		if profiles[fmt.Sprint(u)] != (u > requests) {
			t.Errorf("profiles: user %d present %v", u, profiles[fmt.Sprint(u)])
		}
	}
	hmu.Unlock()
	amu.Lock()
	for u := 1; u <= requests+kept; u++ {
		if notifications[fmt.Sprint(u)] != (u > requests) {
			t.Errorf("notifications: user %d present %v", u, notifications[fmt.Sprint(u)])
		}
	}
	amu.Unlock()
	left := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(events, "*.jsonl"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var row struct {
				UserID json.Number `json:"user_id"`
			}
			if json.Unmarshal([]byte(l), &row) == nil {
				left[row.UserID.String()]++
			}
		}
	}
	for u := 1; u <= requests+kept; u++ {
		id := fmt.Sprint(u)
		if want := map[bool]int{true: rowsOf[id], false: 0}[u > requests]; left[id] != want {
			t.Errorf("events: user %d has %d rows, want %d", u, left[id], want)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(events, ".*.tmp")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	restarts := 0
	for _, p := range procs {
		restarts += p.starts - 1
	}
	t.Logf("%d requests through %d SIGKILLs (%d of the leader): all completed, %d tasks done once, %d sweeps committed, %d partitions swept once each, %d audit events verified",
		requests, restarts, killedLeader, len(done), len(committed), unitsSwept, rep.Head.Events)
	if killedLeader == 0 || restarts < 10 {
		t.Fatalf("%d kills, %d of the leader", restarts, killedLeader)
	}
}
