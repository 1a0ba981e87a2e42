package natsconn_test

import (
	"context"
	"sync"
	"testing"

	"erasure/connector/nats/natstest"
)

// TestPruneCommands: the commands whose task no longer waits are removed from the stream, the
// others stay, and messages that name no task are left alone; on the embedded server and on
// an external one.
func TestPruneCommands(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		ctx := context.Background()
		c := bound(t, env, "notifications", "notifications", "user_id")
		for task := int64(1); task <= 4; task++ {
			if err := c.Dispatch(ctx, command(task, 1, id("user_id", "u"))); err != nil {
				t.Fatal(err)
			}
		}
		publish(t, env, c.Subject(), `{"not":"a command of this build"}`) // no task header
		var mu sync.Mutex
		asked := map[int64]string{}
		pending := func(ctx context.Context, task int64, dispatch string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asked[task] = dispatch
			return task%2 == 0, nil // tasks 1 and 3 were acknowledged or cancelled
		}
		n, err := env.Conn.PruneCommands(ctx, []string{c.Subject()}, pending)
		if err != nil || n != 2 {
			t.Fatalf("PruneCommands = %d, %v; want 2 removed", n, err)
		}
		for task := int64(1); task <= 4; task++ {
			if asked[task] != command(task, 1).Dispatch {
				t.Errorf("task %d asked about with dispatch %q", task, asked[task])
			}
		}
		left := commands(t, env, env.Conn.Stream(), c.Subject())
		if len(left) != 3 { // tasks 2 and 4, and the message without a task header
			t.Fatalf("%d messages left, want 3: %+v", len(left), left)
		}
		if n, err := env.Conn.PruneCommands(ctx, []string{c.Subject()}, pending); err != nil || n != 0 {
			t.Fatalf("a second pass removed %d, %v", n, err)
		}
	})
}
