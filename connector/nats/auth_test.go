package natsconn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/connector/nats"
	"erasure/connector/nats/natstest"
	"erasure/registry"
)

// violations collects the asynchronous errors (permission violations) of a connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

func (v *violations) count(s string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, e := range v.errs {
		if strings.Contains(strings.ToLower(e), strings.ToLower(s)) {
			n++
		}
	}
	return n
}

func TestEmbeddedServer_Authentication(t *testing.T) {
	t.Run("NoOrWrongCredentialsCannotConnect", func(t *testing.T) {
		env := natstest.Embedded(t)
		bound(t, env, "notifications", "notifications", "user_id")
		creds := env.Credentials(t, "notifications")
		for name, opts := range map[string][]nats.Option{
			"None":          nil,
			"WrongPassword": {nats.UserInfo("notifications", creds.Password+"x")},
			"UnknownUser":   {nats.UserInfo("nobody", creds.Password)},
			"AdminName":     {nats.UserInfo(natsconn.AdminUser, creds.Password)},
		} {
			nc, err := nats.Connect(env.URL, append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Errorf("%s: connected", name)
			} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Errorf("%s: %v, want an authorization violation", name, err)
			}
		}
		nc, err := nats.Connect(env.URL, creds.Options()...)
		if err != nil {
			t.Fatalf("the dataset's own credentials: %v", err)
		}
		nc.Close()
	})
	t.Run("KeyIsPrivateAndKeptAcrossRestarts", func(t *testing.T) {
		dir := t.TempDir()
		quiet := slog.New(slog.DiscardHandler)
		open := func() *natsconn.Conn {
			c, err := natsconn.Connect(registry.NATS{Port: -1}, dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			conn, _ := natsconn.New("notifications", "erasure.notifications", []string{"user_id"})
			if err := c.EnsureStream(context.Background(), natsconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: conn}}, c)); err != nil {
				t.Fatal(err)
			}
			return c
		}
		c := open()
		first, _ := c.Credentials("notifications")
		c.Close()
		info, err := os.Stat(filepath.Join(dir, natsconn.KeyFile))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, mode %v; want 0600", err, info.Mode().Perm())
		}
		// What `erasure nats credentials` computes without the server is what the server admits.
		offline, err := natsconn.DatasetCredentials(registry.NATS{}, dir, "", "notifications", "erasure.notifications")
		if err != nil || offline.Password != first.Password || offline.User != "notifications" || offline.AckSubject != "erasure.ack.notifications" ||
			offline.Consumer != "erasure-notifications" || offline.Subject != "erasure.notifications" || offline.Stream != natsconn.DefaultStream {
			t.Fatalf("offline credentials %+v (%v) differ from the server's %+v", offline, err, first)
		}
		c = open()
		defer c.Close()
		nc, err := nats.Connect(c.ClientURL(), first.Options()...)
		if err != nil {
			t.Fatalf("credentials from before the restart: %v", err)
		}
		nc.Close()
		if _, err := natsconn.DatasetCredentials(registry.NATS{URL: "nats://nats.internal:4222"}, dir, "", "notifications", "s"); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("credentials for an external server: %v, want EINVALID", err)
		}
	})
	t.Run("DatasetUserReachesItsOwnCommandsAndAcksOnly", func(t *testing.T) {
		env := natstest.Embedded(t)
		ctx := context.Background()
		notif := bound(t, env, "notifications", "notifications", "user_id")
		billing := bound(t, env, "billing", "billing", "user_id")
		a := newApplied()
		listen(t, env, a)
		if err := notif.Dispatch(ctx, command(1, 1, id("user_id", "42"))); err != nil {
			t.Fatal(err)
		}
		if err := billing.Dispatch(ctx, command(2, 1, id("user_id", "42"))); err != nil {
			t.Fatal(err)
		}
		var v violations
		creds := env.Credentials(t, "notifications")
		nc, err := nats.Connect(env.URL, append(creds.Options(), nats.ErrorHandler(v.handler))...)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)

		// Its own commands, through its own consumer.
		own, err := js.CreateOrUpdateConsumer(ctx, creds.Stream, jetstream.ConsumerConfig{
			Durable: creds.Consumer, FilterSubject: env.Subject("notifications"), AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatalf("own consumer: %v", err)
		}
		msg, err := own.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil || !strings.Contains(string(msg.Data()), `"task_id":1`) {
			t.Fatalf("own command: %v", err)
		}
		msg.Ack()

		// Not another dataset's: no consumer on its subject, under any name; no direct read.
		for name, cfg := range map[string]jetstream.ConsumerConfig{
			"OwnNameOtherSubject":   {Durable: creds.Consumer, FilterSubject: env.Subject("billing")},
			"OtherNameOtherSubject": {Durable: natsconn.DatasetConsumer("billing"), FilterSubject: env.Subject("billing")},
			"NoFilter":              {Durable: creds.Consumer},
			"Ephemeral":             {FilterSubject: env.Subject("billing")},
		} {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := js.CreateOrUpdateConsumer(cctx, creds.Stream, cfg)
			cancel()
			if err == nil {
				t.Errorf("%s: a consumer was created", name)
			}
		}
		if s, err := js.Stream(ctx, creds.Stream); err == nil {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			if m, err := s.GetMsg(cctx, 2); err == nil {
				t.Errorf("read message 2 directly: %s", m.Data)
			}
			cancel()
		}
		for _, subj := range []string{env.Subject("billing"), "_INBOX.>", natsconn.InboxPrefix("billing") + ".>", ">"} {
			before := v.count("permissions violation")
			if _, err := nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			deadline := time.Now().Add(5 * time.Second)
			for v.count("permissions violation") == before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if v.count("permissions violation") == before {
				t.Errorf("subscribing to %s was not refused", subj)
			}
		}

		// It cannot acknowledge another dataset's task, nor publish elsewhere.
		forged := fmt.Sprintf(`{"task_id":2,"dispatch":%q,"status":"done"}`, dispatchID(2, 1))
		for _, subj := range []string{env.Conn.AckSubject("billing"), env.Subject("billing")} {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := js.Publish(pctx, subj, []byte(forged))
			cancel()
			if err == nil {
				t.Errorf("published on %s", subj)
			}
		}
		// Its own acknowledgement is applied; being applied in stream order, it comes after
		// anything the refused ones could have stored.
		ack := fmt.Sprintf(`{"task_id":1,"dispatch":%q,"status":"done"}`, dispatchID(1, 1))
		if _, err := js.Publish(ctx, creds.AckSubject, []byte(ack)); err != nil {
			t.Fatalf("own ack: %v", err)
		}
		a.waitFor(t, 1)
		for _, c := range a.Calls() {
			if c.Ack.TaskID != 1 || c.Dataset != "notifications" {
				t.Errorf("an acknowledgement that was refused reached apply: %+v", c)
			}
		}
		if n := len(stored(t, env, env.Conn.AckSubject("billing"))); n != 0 {
			t.Errorf("%d messages stored on billing's ack subject", n)
		}
	})
}

func TestEnsureStream_Isolation(t *testing.T) {
	t.Run("SubjectOfAnotherStreamIsReportedClearly", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			bound(t, env, "notifications", "notifications", "user_id")
			// A second deployment, with a stream of its own, declares the same subject.
			other, err := natsconn.Connect(registry.NATS{URL: env.URL, Stream: env.Conn.Stream() + "_B"}, "", slog.New(slog.DiscardHandler),
				append(clientAuth(t, env), natsconn.WithAckPrefix(env.Prefix+".ackb"))...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { other.DeleteStream(context.Background()); other.Close() }()
			err = other.EnsureStream(context.Background(), []string{env.Subject("notifications")})
			if erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), "already captured by stream "+env.Conn.Stream()) ||
				!strings.Contains(err.Error(), "nats.subject") {
				t.Fatalf("EnsureStream = %v, want a clear EINVALID naming the other stream and what to configure", err)
			}
		})
	})
	t.Run("StreamOfARunningDeploymentIsRefusedAnIdleOneTakenOver", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			ctx := context.Background()
			open := func(deployment string) *natsconn.Conn {
				c, err := natsconn.Connect(registry.NATS{URL: env.URL, Stream: env.Conn.Stream()}, "", slog.New(slog.DiscardHandler),
					append(clientAuth(t, env), natsconn.WithAckPrefix(env.Prefix+".ack"), natsconn.WithDeployment(deployment))...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			first := open("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
			if err := first.EnsureStream(ctx, []string{env.Subject("n")}); err != nil {
				t.Fatal(err)
			}
			lctx, stopListening := context.WithCancel(ctx)
			if err := first.ListenAcks(lctx, newApplied().apply); err != nil {
				t.Fatal(err)
			}
			waitWaiting(t, env, first.AckConsumer(), true)
			second := open("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
			if second.AckConsumer() == first.AckConsumer() {
				t.Fatalf("both deployments read acknowledgements as %s", first.AckConsumer())
			}
			err := second.EnsureStream(ctx, []string{env.Subject("n")})
			if erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), "in use by another erasure deployment that is running") {
				t.Fatalf("EnsureStream while the first runs = %v, want a clear EINVALID", err)
			}
			stopListening()
			first.Close()
			waitWaiting(t, env, first.AckConsumer(), false)
			if err := second.EnsureStream(ctx, []string{env.Subject("n")}); err != nil {
				t.Fatalf("EnsureStream once the first stopped = %v, want it taken over", err)
			}
		})
	})
}

// clientAuth returns the options that connect a second Conn to env's server as erasure.
func clientAuth(t *testing.T, env *natstest.Env) []natsconn.Option {
	t.Helper()
	if !env.Embedded() {
		return nil
	}
	creds, err := env.Conn.AdminCredentials()
	if err != nil {
		t.Fatal(err)
	}
	return []natsconn.Option{natsconn.WithNATSOptions(creds.Options()...)}
}

// waitWaiting waits until the ack consumer name has pull requests waiting (a deployment is
// reading) or has none.
func waitWaiting(t *testing.T, env *natstest.Env, name string, want bool) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		cons, err := env.Conn.JetStream().Consumer(context.Background(), env.Conn.Stream(), name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		waiting := false
		if err == nil {
			info, err := cons.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			waiting = info.NumWaiting > 0
		}
		if waiting == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s waiting = %v, want %v", name, waiting, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
