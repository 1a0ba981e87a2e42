package natsconn_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"erasure"
	"erasure/connector/nats"
	"erasure/registry"
)

func TestConnect(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	t.Run("BadConfigurationIsRefused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cfg  registry.NATS
			dir  string
			code string
		}{
			{"StreamName", registry.NATS{Port: -1, Stream: "ERASURE.X"}, t.TempDir(), erasure.EINVALID},
			{"Port", registry.NATS{Port: 70000}, t.TempDir(), erasure.EINVALID},
			{"NoDataDir", registry.NATS{Port: -1}, "", erasure.EINVALID},
			{"MissingCredentials", registry.NATS{URL: "nats://127.0.0.1:4222", Credentials: filepath.Join(t.TempDir(), "none.creds")}, "", erasure.EINVALID},
			{"Unreachable", registry.NATS{URL: "nats://127.0.0.1:1"}, "", erasure.EUNAVAILABLE},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := natsconn.Connect(tc.cfg, tc.dir, quiet)
				if err == nil {
					c.Close()
				}
				if erasure.ErrorCode(err) != tc.code {
					t.Errorf("Connect = %v, want code %s", err, tc.code)
				}
			})
		}
	})
	t.Run("EmbeddedServerKeepsCommandsInTheDataDir", func(t *testing.T) {
		dir := t.TempDir()
		ctx := context.Background()
		c, err := natsconn.Connect(registry.NATS{Port: -1}, dir, quiet)
		if err != nil {
			t.Fatal(err)
		}
		conn, _ := natsconn.New("notifications", "erasure.notifications", []string{"user_id"})
		if err := c.EnsureStream(ctx, natsconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: conn}}, c)); err != nil {
			t.Fatal(err)
		}
		if err := conn.Dispatch(ctx, command(1, 1, id("user_id", "42"))); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if _, err := os.Stat(filepath.Join(dir, "nats")); err != nil {
			t.Fatalf("no store under the data dir: %v", err)
		}

		c, err = natsconn.Connect(registry.NATS{Port: -1}, dir, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.JetStream().Stream(ctx, natsconn.DefaultStream)
		if err != nil {
			t.Fatalf("stream lost across a restart: %v", err)
		}
		if n := s.CachedInfo().State.Msgs; n != 1 {
			t.Errorf("%d messages after a restart, want 1", n)
		}
	})
}
