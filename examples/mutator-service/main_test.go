package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"erasure"
	"erasure/connector/nats"
	"erasure/connector/nats/natstest"
)

// TestService_ErasesAUsersNotifications runs the example against erasure's side (connector and
// ack listener) on both NATS servers: a command for user 7 removes the 3 seeded notifications,
// and a second attempt for the same user removes nothing and still succeeds.
func TestService_ErasesAUsersNotifications(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		subject := env.Subject("notifications")
		conn, err := natsconn.New("notifications", subject, []string{"user_id"})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Conn.EnsureStream(ctx, natsconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: conn}}, env.Conn)); err != nil {
			t.Fatal(err)
		}
		acks := make(chan erasure.Ack, 10)
		if err := env.Conn.ListenAcks(ctx, func(_ context.Context, _ string, a erasure.Ack) error { acks <- a; return nil }); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, slog.New(slog.DiscardHandler), env.URL, env.CredentialsFile(t, "notifications"), "notifications", subject, 10)
		}()
		dispatches := []string{"0000000000000000000000000000a001", "0000000000000000000000000000a002"}
		for attempt, want := range []int64{3, 0} {
			err := conn.Dispatch(ctx, erasure.Command{TaskID: 1, RequestID: "req", Dataset: "notifications", Attempt: attempt + 1, Dispatch: dispatches[attempt],
				Identifiers: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "7"}), Deadline: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case a := <-acks:
				if a != (erasure.Ack{TaskID: 1, Dispatch: dispatches[attempt], Status: "done", Removed: want}) {
					t.Errorf("attempt %d: ack %+v, want done with %d removed", attempt+1, a, want)
				}
			case err := <-done:
				t.Fatalf("service stopped: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatalf("attempt %d: no acknowledgement", attempt+1)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v after a stop, want nil", err)
		}
	})
}
