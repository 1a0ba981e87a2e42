// Package connectortest is the conformance suite of connectors: one set of cases stating the
// contracts of erasure.Eraser, Verifier, Resolver, Sweeper, Dispatcher and Checker, and that
// building a connector performs no I/O, run by every connector's tests against its real
// service.
//
// A connector's test calls Run with a Target that says how to get a fresh, private place on
// its service (a schema, a key prefix, a directory, a stream), how to declare the dataset there
// in a registry, and how to plant a subject's data and count what of it remains by going to the
// service directly, around the connector:
//
//	connectortest.Run(t, connectortest.Target{
//		Open:        func(t *testing.T) *connectortest.Service { ... },
//		Unreachable: func(t *testing.T, at connectortest.Nowhere) *connectortest.Service { ... },
//	})
//
// The connector is always built by registry.Parse from the Service's Registry, as the server
// builds it. Run builds it once to learn which interfaces it implements and runs the cases of
// those; each case then opens its own Service. "Erasing" a subject means Erase, or, for a
// connector that only sweeps, a Sweep of that one subject.
package connectortest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/registry"
)

// Target is one connector on one real service.
type Target struct {
	// Open prepares a fresh, private place on the service for one case and returns the Service
	// there. It removes that place when t ends.
	Open func(t *testing.T) *Service
	// Unreachable returns the Service of the same dataset pointed at a service that is not
	// there: at.Addr for a network service, at.Path for a local one. Only its Registry, Env,
	// Dataset, Bind and Key are used.
	Unreachable func(t *testing.T, at Nowhere) *Service
	// Local says that the service is a path on this machine (an SQLite file, a snapshot
	// directory) rather than a server. A path that does not exist is a configuration error, so
	// the first call against Nowhere.Path may fail permanently; it must create nothing there.
	// Calls against a server that refuses connections must fail transiently.
	Local bool
}

// Nowhere is where Target.Unreachable points the dataset.
type Nowhere struct {
	// Addr is a loopback host:port. It accepts connections while the connector is built (the
	// case fails if one is made) and refuses them from the first call on.
	Addr string
	// Path is a path whose parent directory does not exist.
	Path string
}

// Service is one case's view of the service: the dataset declared on it and direct access to
// its data.
type Service struct {
	// Registry is a configuration (erasure.yaml) declaring the dataset under test.
	Registry string
	// Env holds the values of the ${VAR}s of Registry; a variable it lacks is an error.
	Env map[string]string
	// Dataset names the dataset under test; empty means the first one of Registry.
	Dataset string
	// Bind, when set, hands the built connectors the service they work on, as the server does
	// once it has loaded the registry: it provides the registry.Resources they asked for (the
	// record store, the NATS connection) or binds them by hand.
	Bind func(t *testing.T, cfg *registry.Config)
	// Key is the identifier type of the subjects the cases make. Their values are decimal
	// numbers, so that any key column can hold them.
	Key string

	// Plant stores data of s on the service, going around the connector, and returns the
	// identifiers of the dataset's provided types that the data holds for s (what Resolve must
	// find), or nil when the dataset provides none. Required unless the connector only
	// dispatches.
	Plant func(t *testing.T, s erasure.Subject) []erasure.Identifier
	// Remaining counts what of s the service holds, going around the connector, in the unit
	// of erasure.Outcome.Removed and erasure.SweepResult.Removed (rows, keys and members,
	// records...). Required with Plant.
	Remaining func(t *testing.T, s erasure.Subject) int64
	// Messages counts the commands the service has stored with c's dispatch id.
	// Required for a Dispatcher.
	Messages func(t *testing.T, c erasure.Command) int
}

// kinds is what a connector implements.
type kinds struct {
	eraser, verifier, resolver, sweeper, dispatcher, checker bool
}

func kindsOf(c erasure.Connector) kinds {
	_, e := c.(erasure.Eraser)
	_, v := c.(erasure.Verifier)
	_, r := c.(erasure.Resolver)
	_, s := c.(erasure.Sweeper)
	_, d := c.(erasure.Dispatcher)
	_, k := c.(erasure.Checker)
	return kinds{e, v, r, s, d, k}
}

// erases reports whether the connector erases subjects one way or the other.
func (k kinds) erases() bool { return k.eraser || k.sweeper }

// Run runs every case that applies to the target's connector, each as a subtest named like a
// specification, each on its own Service.
func Run(t *testing.T, tg Target) {
	t.Helper()
	if tg.Open == nil || tg.Unreachable == nil {
		t.Fatal("connectortest: Target needs Open and Unreachable")
	}
	probe := open(t, tg)
	k := kindsOf(probe.ds.Conn)
	switch {
	case !k.erases() && !k.dispatcher:
		t.Fatalf("connectortest: connector %T of dataset %s is neither an Eraser, a Sweeper nor a Dispatcher", probe.ds.Conn, probe.ds.Name)
	case k.erases() && (probe.svc.Plant == nil || probe.svc.Remaining == nil):
		t.Fatal("connectortest: a connector that erases needs Service.Plant and Service.Remaining")
	case k.dispatcher && probe.svc.Messages == nil:
		t.Fatal("connectortest: a Dispatcher needs Service.Messages")
	case k.resolver && len(probe.ds.Provides) == 0:
		t.Fatalf("connectortest: dataset %s is a Resolver but provides nothing: declare provides so that lookups can be seen", probe.ds.Name)
	}

	if k.erases() {
		t.Run("ErasingTwiceRemovesNothingTheSecondTime", func(t *testing.T) { testEraseTwice(t, tg) })
		t.Run("ErasingAnAbsentSubjectSucceedsWithNothingRemoved", func(t *testing.T) { testEraseAbsent(t, tg) })
		t.Run("ErasingOneSubjectLeavesOthersIntact", func(t *testing.T) { testOthersIntact(t, tg) })
	}
	if k.verifier {
		t.Run("HoldsIsTrueBeforeTheEraseAndFalseAfter", func(t *testing.T) { testHolds(t, tg) })
	}
	if k.eraser {
		t.Run("ConcurrentErasesOfDistinctSubjects", func(t *testing.T) { testConcurrentErase(t, tg) })
	}
	if k.resolver {
		t.Run("LookupsReturnOnlyIdentifiersThatAreThere", func(t *testing.T) { testResolve(t, tg) })
	}
	if k.sweeper {
		t.Run("SweepRemovesExactlyTheBatchAndAgainIsANoOp", func(t *testing.T) { testSweep(t, tg) })
	}
	if k.dispatcher {
		t.Run("DispatchIsIdempotentPerDispatch", func(t *testing.T) { testDispatch(t, tg) })
	}
	if k.checker {
		t.Run("CheckSucceedsOnTheService", func(t *testing.T) { testCheck(t, tg) })
	}
	t.Run("CancelledContextIsTransientAndChangesNothing", func(t *testing.T) { testCancelled(t, tg) })
	t.Run("BuildingPerformsNoIO", func(t *testing.T) { testNoIO(t, tg) })
}

// env is one case: its Service and the dataset built on it.
type env struct {
	t   *testing.T
	svc *Service
	cfg *registry.Config
	ds  *erasure.Dataset
	k   kinds
	ctx context.Context
}

// open opens a Service for t and builds its dataset.
func open(t *testing.T, tg Target) *env {
	t.Helper()
	svc := tg.Open(t)
	return build(t, svc)
}

// build parses svc's registry as the server does, closes its connectors when t ends, and binds
// them when svc says how.
func build(t *testing.T, svc *Service) *env {
	t.Helper()
	if svc == nil || svc.Registry == "" || svc.Key == "" {
		t.Fatal("connectortest: a Service needs Registry and Key")
	}
	cfg, err := registry.Parse("connectortest.yaml", []byte(svc.Registry), func(k string) (string, bool) {
		v, ok := svc.Env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("the registry refused the dataset:\n%v", err)
	}
	t.Cleanup(func() {
		for _, d := range cfg.Datasets {
			d.Conn.Close()
		}
	})
	ds := cfg.Datasets[0]
	if svc.Dataset != "" {
		if ds = cfg.Dataset(svc.Dataset); ds == nil {
			t.Fatalf("connectortest: the registry declares no dataset %s", svc.Dataset)
		}
	}
	if !slices.Contains(ds.Keys, svc.Key) {
		t.Fatalf("connectortest: dataset %s is keyed by %v, not by %s", ds.Name, ds.Keys, svc.Key)
	}
	if svc.Bind != nil {
		svc.Bind(t, cfg)
	}
	return &env{t: t, svc: svc, cfg: cfg, ds: ds, k: kindsOf(ds.Conn), ctx: t.Context()}
}

// subject returns the n-th subject of a case.
func (e *env) subject(n int) erasure.Subject {
	return erasure.NewSubject(erasure.Identifier{Type: e.svc.Key, Value: strconv.Itoa(40000 + n)})
}

// plant plants s and returns how much of it the service holds, which must be something.
func (e *env) plant(s erasure.Subject) (int64, []erasure.Identifier) {
	e.t.Helper()
	ids := e.svc.Plant(e.t, s)
	n := e.svc.Remaining(e.t, s)
	if n <= 0 {
		e.t.Fatalf("connectortest: after Plant the service holds %d of the subject: Plant or Remaining is wrong", n)
	}
	return n, ids
}

func (e *env) remaining(s erasure.Subject) int64 {
	e.t.Helper()
	return e.svc.Remaining(e.t, s)
}

// erase erases s the connector's way (Erase, or a Sweep of s alone) and returns what it says
// it removed.
func (e *env) erase(ctx context.Context, s erasure.Subject) (int64, error) {
	if c, ok := e.ds.Conn.(erasure.Eraser); ok {
		out, err := c.Erase(ctx, s)
		return out.Removed, err
	}
	res, err := e.ds.Conn.(erasure.Sweeper).Sweep(ctx, []erasure.SweepSubject{{TaskID: 1, Subject: s}})
	return res.Removed, err
}

// mustErase erases s and fails the case on an error.
func (e *env) mustErase(s erasure.Subject) int64 {
	e.t.Helper()
	n, err := e.erase(e.ctx, s)
	if err != nil {
		e.t.Fatalf("%s: %v", e.how(), err)
	}
	return n
}

// how names the way erase erases, for messages.
func (e *env) how() string {
	if e.k.eraser {
		return "Erase"
	}
	return "Sweep"
}

func (e *env) holds(s erasure.Subject) bool {
	e.t.Helper()
	h, err := e.ds.Conn.(erasure.Verifier).Holds(e.ctx, s)
	if err != nil {
		e.t.Fatalf("Holds: %v", err)
	}
	return h
}

func (e *env) resolve(s erasure.Subject) []erasure.Identifier {
	e.t.Helper()
	ids, err := e.ds.Conn.(erasure.Resolver).Resolve(e.ctx, s)
	if err != nil {
		e.t.Fatalf("Resolve: %v", err)
	}
	return ids
}

func (e *env) command(task int64, attempt int, s erasure.Subject) erasure.Command {
	return e.commandOf("connectortest-deployment", task, attempt, s)
}

// commandOf returns the command of task and attempt as deployment would dispatch it.
func (e *env) commandOf(deployment string, task int64, attempt int, s erasure.Subject) erasure.Command {
	return erasure.Command{
		TaskID: task, RequestID: "req_connectortest", Dataset: e.ds.Name, Attempt: attempt,
		Dispatch:    erasure.DispatchID(hasher, deployment, task, attempt),
		Identifiers: s, Deadline: time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second),
	}
}

// hasher is the key of the dispatch ids of the commands the suite sends.
var hasher = func() erasure.Hasher {
	h, err := audit.NewHasher([]byte("connectortest-dispatch-key-0123456789"))
	if err != nil {
		panic(err)
	}
	return h
}()

// wantTransient fails t unless err is a *erasure.TransientError and not a permanent one.
func wantTransient(t *testing.T, what string, err error) {
	t.Helper()
	var tr *erasure.TransientError
	switch {
	case err == nil:
		t.Errorf("%s succeeded, want a transient error", what)
	case erasure.IsPermanent(err):
		t.Errorf("%s = %v (permanent), want a transient error", what, err)
	case !errors.As(err, &tr):
		t.Errorf("%s = %v (%T), want an *erasure.TransientError", what, err, err)
	}
}

// sameIdentifiers reports whether a and b hold the same identifiers, in any order.
func sameIdentifiers(a, b []erasure.Identifier) bool {
	return slices.Equal(erasure.NewSubject(a...), erasure.NewSubject(b...))
}

// nowhere is a loopback listener that tells whether anyone connected to it.
type nowhere struct {
	ln *net.TCPListener
}

func listenNowhere(t *testing.T) *nowhere {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &nowhere{ln: ln.(*net.TCPListener)}
}

// connected reports whether a connection is waiting to be accepted (a dial completes its
// handshake in the kernel, so a dial made before this call is there at once), then closes the
// listener so that the port refuses connections from now on.
func (n *nowhere) connected() bool {
	n.ln.SetDeadline(time.Now().Add(20 * time.Millisecond))
	c, err := n.ln.Accept()
	n.ln.Close()
	if err == nil {
		c.Close()
		return true
	}
	return false
}

// missingPath returns a path whose parent directory does not exist.
func missingPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "absent", "data")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
