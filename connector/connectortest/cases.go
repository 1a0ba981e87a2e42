package connectortest

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"erasure"
)

// testEraseTwice: erasing is idempotent. The first erase removes what was planted, the second
// succeeds and removes nothing.
func testEraseTwice(t *testing.T, tg Target) {
	e := open(t, tg)
	s := e.subject(1)
	planted, _ := e.plant(s)
	if n := e.mustErase(s); n != planted {
		t.Errorf("first %s removed %d, the service held %d", e.how(), n, planted)
	}
	if n := e.remaining(s); n != 0 {
		t.Errorf("after the first %s the service still holds %d of the subject", e.how(), n)
	}
	if n := e.mustErase(s); n != 0 {
		t.Errorf("second %s removed %d, want 0", e.how(), n)
	}
	if n := e.remaining(s); n != 0 {
		t.Errorf("after the second %s the service holds %d of the subject", e.how(), n)
	}
}

// testEraseAbsent: erasing what was never there is success with Removed 0, and touches
// nothing else.
func testEraseAbsent(t *testing.T, tg Target) {
	e := open(t, tg)
	other, absent := e.subject(1), e.subject(2)
	kept, _ := e.plant(other)
	if n := e.mustErase(absent); n != 0 {
		t.Errorf("%s of a subject never planted removed %d, want 0", e.how(), n)
	}
	if n := e.remaining(other); n != kept {
		t.Errorf("another subject: %d remain, %d were planted", n, kept)
	}
}

// testOthersIntact: erasing one subject leaves another one's data, its verification and its
// lookups as they were.
func testOthersIntact(t *testing.T, tg Target) {
	e := open(t, tg)
	a, b := e.subject(1), e.subject(2)
	e.plant(a)
	kept, provided := e.plant(b)
	e.mustErase(a)
	if n := e.remaining(a); n != 0 {
		t.Errorf("the erased subject: %d remain", n)
	}
	if n := e.remaining(b); n != kept {
		t.Errorf("the other subject: %d remain, %d were planted", n, kept)
	}
	if e.k.verifier && !e.holds(b) {
		t.Error("Holds of the other subject = false, want true")
	}
	if e.k.resolver {
		if got := e.resolve(b); !sameIdentifiers(got, provided) {
			t.Errorf("Resolve of the other subject = %v, want %v", got, provided)
		}
	}
}

// testHolds: Holds is true while a planted subject is there, false after its erase, and false
// for a subject never planted.
func testHolds(t *testing.T, tg Target) {
	e := open(t, tg)
	s, absent := e.subject(1), e.subject(2)
	e.plant(s)
	if !e.holds(s) {
		t.Error("Holds before the erase = false, want true: the subject was planted")
	}
	if e.holds(absent) {
		t.Error("Holds of a subject never planted = true, want false")
	}
	e.mustErase(s)
	if e.holds(s) {
		t.Errorf("Holds after the %s = true, want false", e.how())
	}
}

// testConcurrentErase: erases of distinct subjects running at once (as the pipeline's workers
// run them) each remove their own subject and nothing else.
func testConcurrentErase(t *testing.T, tg Target) {
	e := open(t, tg)
	const n = 8
	subjects := make([]erasure.Subject, n)
	planted := make([]int64, n)
	for i := range subjects {
		subjects[i] = e.subject(i + 1)
		planted[i], _ = e.plant(subjects[i])
	}
	control := e.subject(n + 1)
	kept, _ := e.plant(control)

	removed := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range subjects {
		wg.Go(func() {
			out, err := e.ds.Conn.(erasure.Eraser).Erase(e.ctx, s)
			removed[i], errs[i] = out.Removed, err
		})
	}
	wg.Wait()
	for i, s := range subjects {
		if errs[i] != nil {
			t.Errorf("subject %d: Erase: %v", i+1, errs[i])
			continue
		}
		if removed[i] != planted[i] {
			t.Errorf("subject %d: Erase removed %d, the service held %d", i+1, removed[i], planted[i])
		}
		if r := e.remaining(s); r != 0 {
			t.Errorf("subject %d: %d remain after Erase", i+1, r)
		}
	}
	if r := e.remaining(control); r != kept {
		t.Errorf("a subject nobody erased: %d remain, %d were planted", r, kept)
	}
}

// testResolve: lookups return the identifiers of the provided types that the dataset holds
// for the subject, and nothing for a subject it does not hold.
func testResolve(t *testing.T, tg Target) {
	e := open(t, tg)
	a, b, absent := e.subject(1), e.subject(2), e.subject(3)
	_, want := e.plant(a)
	_, other := e.plant(b)
	if len(want) == 0 || len(other) == 0 {
		t.Fatal("connectortest: Plant returned no provided identifiers, so lookups cannot be checked")
	}
	got := e.resolve(a)
	for _, id := range got {
		if !slices.ContainsFunc(e.ds.Provides, func(p erasure.Provide) bool { return p.Identifier == id.Type }) {
			t.Errorf("Resolve returned %s, a type the dataset does not provide", id.Type)
		}
	}
	if !sameIdentifiers(got, want) {
		t.Errorf("Resolve = %v, want %v (what the service holds for the subject)", got, want)
	}
	if got := e.resolve(absent); len(got) != 0 {
		t.Errorf("Resolve of a subject never planted = %v, want nothing", got)
	}
	if e.k.erases() {
		e.mustErase(a)
		if got := e.resolve(a); len(got) != 0 {
			t.Errorf("Resolve after the %s = %v, want nothing", e.how(), got)
		}
		if got := e.resolve(b); !sameIdentifiers(got, other) {
			t.Errorf("Resolve of another subject after the %s = %v, want %v", e.how(), got, other)
		}
	}
}

// testSweep: a sweep removes exactly the subjects of its batch, and running it again is a
// no-op.
func testSweep(t *testing.T, tg Target) {
	e := open(t, tg)
	sw := e.ds.Conn.(erasure.Sweeper)
	a, b, c, absent := e.subject(1), e.subject(2), e.subject(3), e.subject(4)
	pa, _ := e.plant(a)
	pb, _ := e.plant(b)
	pc, _ := e.plant(c)
	batch := []erasure.SweepSubject{{TaskID: 1, Subject: a}, {TaskID: 2, Subject: b}, {TaskID: 3, Subject: absent}}
	res, err := sw.Sweep(e.ctx, batch)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if res.Removed != pa+pb {
		t.Errorf("Sweep removed %d, the batch's subjects held %d", res.Removed, pa+pb)
	}
	for i, s := range []erasure.Subject{a, b} {
		if n := e.remaining(s); n != 0 {
			t.Errorf("swept subject %d: %d remain", i+1, n)
		}
	}
	if n := e.remaining(c); n != pc {
		t.Errorf("a subject outside the batch: %d remain, %d were planted", n, pc)
	}
	again, err := sw.Sweep(e.ctx, batch)
	if err != nil || again.Removed != 0 {
		t.Errorf("second Sweep = %+v, %v; want nothing removed", again, err)
	}
	if n := e.remaining(c); n != pc {
		t.Errorf("after the second Sweep a subject outside the batch: %d remain, %d were planted", n, pc)
	}
	if res, err := sw.Sweep(e.ctx, nil); err != nil || res.Removed != 0 {
		t.Errorf("Sweep of an empty batch = %+v, %v; want nothing removed", res, err)
	}
}

// testDispatch: the same command twice is one message; another attempt, another task or
// another deployment's command is another message.
func testDispatch(t *testing.T, tg Target) {
	e := open(t, tg)
	d := e.ds.Conn.(erasure.Dispatcher)
	s := e.subject(1)
	first := e.command(7, 1, s)
	for i := range 2 {
		if err := d.Dispatch(e.ctx, first); err != nil {
			t.Fatalf("Dispatch #%d of task 7 attempt 1: %v", i+1, err)
		}
	}
	if n := e.svc.Messages(t, first); n != 1 {
		t.Errorf("task 7 attempt 1 dispatched twice: %d messages, want 1", n)
	}
	for _, c := range []erasure.Command{e.command(7, 2, s), e.command(8, 1, s)} {
		if err := d.Dispatch(e.ctx, c); err != nil {
			t.Fatalf("Dispatch of task %d attempt %d: %v", c.TaskID, c.Attempt, err)
		}
		if n := e.svc.Messages(t, c); n != 1 {
			t.Errorf("task %d attempt %d: %d messages, want 1", c.TaskID, c.Attempt, n)
		}
	}
	if n := e.svc.Messages(t, first); n != 1 {
		t.Errorf("task 7 attempt 1 after other commands: %d messages, want 1", n)
	}
	// Another deployment's task 7, attempt 1, is another command: task ids repeat across
	// deployments, dispatch ids do not.
	other := e.commandOf("another-deployment", 7, 1, s)
	if err := d.Dispatch(e.ctx, other); err != nil {
		t.Fatalf("Dispatch of another deployment's task 7 attempt 1: %v", err)
	}
	if n := e.svc.Messages(t, other); n != 1 {
		t.Errorf("another deployment's task 7 attempt 1: %d messages, want 1 (not taken for a duplicate)", n)
	}
}

// testCheck: Check passes against a service that is there and configured as declared.
func testCheck(t *testing.T, tg Target) {
	e := open(t, tg)
	if err := e.ds.Conn.(erasure.Checker).Check(e.ctx); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
}

// testCancelled: every call with a cancelled context fails with a *erasure.TransientError
// (the task is retried, not failed) and changes nothing.
func testCancelled(t *testing.T, tg Target) {
	e := open(t, tg)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	s := e.subject(1)
	var planted int64
	if e.k.erases() {
		planted, _ = e.plant(s)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if n := e.svc.Remaining(t, s); n != planted {
			t.Errorf("%d of the subject remain, %d were planted", n, planted)
		}
	}
	if e.k.eraser {
		t.Run("Erase", func(t *testing.T) {
			_, err := e.ds.Conn.(erasure.Eraser).Erase(ctx, s)
			wantTransient(t, "Erase", err)
			unchanged(t)
		})
	}
	if e.k.sweeper {
		t.Run("Sweep", func(t *testing.T) {
			_, err := e.ds.Conn.(erasure.Sweeper).Sweep(ctx, []erasure.SweepSubject{{TaskID: 1, Subject: s}})
			wantTransient(t, "Sweep", err)
			unchanged(t)
		})
	}
	if e.k.verifier {
		t.Run("Holds", func(t *testing.T) {
			_, err := e.ds.Conn.(erasure.Verifier).Holds(ctx, s)
			wantTransient(t, "Holds", err)
		})
	}
	if e.k.resolver {
		t.Run("Resolve", func(t *testing.T) {
			_, err := e.ds.Conn.(erasure.Resolver).Resolve(ctx, s)
			wantTransient(t, "Resolve", err)
		})
	}
	if e.k.dispatcher {
		t.Run("Dispatch", func(t *testing.T) {
			c := e.command(7, 1, s)
			wantTransient(t, "Dispatch", e.ds.Conn.(erasure.Dispatcher).Dispatch(ctx, c))
			if n := e.svc.Messages(t, c); n != 0 {
				t.Errorf("%d messages stored, want 0", n)
			}
		})
	}
	if e.k.checker {
		t.Run("Check", func(t *testing.T) {
			if err := e.ds.Conn.(erasure.Checker).Check(ctx); err == nil {
				t.Error("Check with a cancelled context passed")
			}
		})
	}
}

// testNoIO: building the connector touches nothing, so a registry whose service is absent
// still loads (datasets validate works offline); the first call then fails, transiently for a
// server that refuses connections.
func testNoIO(t *testing.T, tg Target) {
	nw := listenNowhere(t)
	at := Nowhere{Addr: nw.ln.Addr().String(), Path: missingPath(t)}
	e := build(t, tg.Unreachable(t, at))
	if nw.connected() {
		t.Errorf("building the connector connected to %s", at.Addr)
	}
	fails := func(what string, err error) {
		t.Helper()
		if tg.Local {
			if err == nil {
				t.Errorf("%s against a missing path succeeded", what)
			}
			return
		}
		wantTransient(t, what+" against a service refusing connections", err)
	}
	s := e.subject(1)
	if e.k.eraser {
		_, err := e.ds.Conn.(erasure.Eraser).Erase(e.ctx, s)
		fails("Erase", err)
	}
	if e.k.sweeper {
		_, err := e.ds.Conn.(erasure.Sweeper).Sweep(e.ctx, []erasure.SweepSubject{{TaskID: 1, Subject: s}})
		fails("Sweep", err)
	}
	if e.k.verifier {
		_, err := e.ds.Conn.(erasure.Verifier).Holds(e.ctx, s)
		fails("Holds", err)
	}
	if e.k.resolver {
		_, err := e.ds.Conn.(erasure.Resolver).Resolve(e.ctx, s)
		fails("Resolve", err)
	}
	if e.k.dispatcher {
		fails("Dispatch", e.ds.Conn.(erasure.Dispatcher).Dispatch(e.ctx, e.command(7, 1, s)))
	}
	if e.k.checker {
		if err := e.ds.Conn.(erasure.Checker).Check(e.ctx); err == nil {
			t.Error("Check of an unreachable service passed")
		}
	}
	for _, p := range []string{at.Path, filepath.Dir(at.Path)} {
		if exists(p) {
			t.Errorf("the connector created %s", p)
		}
	}
}
