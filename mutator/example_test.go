package mutator_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"erasure"
	natsconn "erasure/connector/nats"
	"erasure/mutator"
	"erasure/registry"
)

// A notification service owns the async dataset "notifications": mutator.Run hands it each
// erasure command and reports the outcome back. Here erasure's side is an embedded NATS
// server: the nats connector publishes the command and ListenAcks reads the acknowledgement.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "erasure-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// erasure's side: NATS with the stream, a connector for the dataset, the ack listener.
	conn, err := natsconn.Connect(registry.NATS{Port: -1}, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	notifications, err := natsconn.New("notifications", "erasure.notifications", []string{"user_id"})
	if err != nil {
		panic(err)
	}
	natsconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: notifications}}, conn)
	if err := conn.EnsureStream(ctx, []string{notifications.Subject()}); err != nil {
		panic(err)
	}
	acked := make(chan erasure.Ack, 1)
	err = conn.ListenAcks(ctx, func(ctx context.Context, dataset string, a erasure.Ack) error {
		acked <- a
		return nil
	})
	if err != nil {
		panic(err)
	}

	// The service's side: its notifications by user, and the mutator erasing them.
	var mu sync.Mutex
	pending := map[string]int{"42": 3, "43": 1}
	stopped := make(chan error, 1)
	go func() {
		stopped <- mutator.Run(ctx, conn.JetStream(), "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			var removed int64
			for _, user := range c.Identifiers.Values("user_id") {
				removed += int64(pending[user])
				delete(pending, user) // erasing again finds nothing: 0 removed
			}
			return removed, nil
		}, mutator.Stream(conn.Stream()))
	}()

	// erasure dispatches task 7 of a request for user 42, under this deployment's dispatch id
	// (the service acknowledges with it).
	cmd := erasure.Command{TaskID: 7, RequestID: "r_example", Attempt: 1, Deadline: time.Now().Add(time.Hour),
		Dispatch: "0123456789abcdef0123456789abcdef", Identifiers: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"})}
	if err := notifications.Dispatch(ctx, cmd); err != nil {
		panic(err)
	}
	a := <-acked
	fmt.Printf("task %d: %s, %d removed\n", a.TaskID, a.Status, a.Removed)
	mu.Lock()
	fmt.Println("users with notifications:", len(pending))
	mu.Unlock()
	cancel()
	fmt.Println("mutator stopped:", <-stopped)
	// Output:
	// task 7: done, 3 removed
	// users with notifications: 1
	// mutator stopped: <nil>
}
