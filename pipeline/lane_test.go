package pipeline

import (
	"testing"
	"time"

	"erasure"
)

// A task leased while its dataset's lane is full waits a short pause while the lane moves (a
// healthy dataset's backlog: a bulk intake of thousands of subjects must not wait half a
// timeout per wave) and about half the dataset's timeout once the lane stopped moving (a hung
// dataset, whose tasks must not be leased again and again).
func TestDispatch_FullLanePauseFollowsTheLane(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	d := &erasure.Dataset{Name: "d", Policy: erasure.Policy{Timeout: 30 * time.Second}}
	e := &Engine{Datasets: map[string]*erasure.Dataset{"d": d}, Now: func() time.Time { return now }}
	e.init()
	l := &lane{queue: make(chan queued, 1)}
	l.queue <- queued{erasure.Task{ID: 1, Dataset: "d"}, now} // the lane is full
	e.lanes = map[string]*lane{"d": l}
	results := make(chan erasure.TaskResult, 1)
	for _, c := range []struct {
		name  string
		moved time.Time
		pause time.Duration
	}{
		{"moving", now.Add(-100 * time.Millisecond), busyPause},
		{"still", now.Add(-laneStill - time.Second), 15 * time.Second},
	} {
		l.moved.Store(c.moved.UnixNano())
		e.dispatch([]erasure.Task{{ID: 2, Dataset: "d", Attempts: 1}}, results)
		r := <-results
		if !r.Deferred || r.TaskID != 2 || r.DueAt.Sub(now) != c.pause {
			t.Fatalf("%s lane: result deferred=%v task %d due in %v, want deferred task 2 due in %v", c.name, r.Deferred, r.TaskID, r.DueAt.Sub(now), c.pause)
		}
	}
}
