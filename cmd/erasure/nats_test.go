package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"erasure"
	natsconn "erasure/connector/nats"
	"erasure/registry"
)

// TestNATSCredentials: the command hands a dataset's owners credentials that the embedded
// server of the same data dir admits, printed or written to a private file.
func TestNATSCredentials(t *testing.T) {
	dir := t.TempDir()
	const config = `version: 1
server: { data_dir: %q }
nats: { port: %d, ack_prefix: prod.ack }
identifiers: [user_id]
datasets:
  - name: notifications
    owner: messaging-team
    connector: nats
    nats: { subject: prod.notifications, identifiers: [user_id] }
  - name: profile
    owner: profile-team
    connector: http
    http: { erase: { method: DELETE, url: "http://127.0.0.1:1/users/{user_id}" } }
`
	path := writeConfig(t, fmt.Sprintf(config, dir, 4299))
	code, stdout, stderr := run(t, "nats", "credentials", "notifications", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var creds natsconn.Credentials
	if err := json.Unmarshal([]byte(stdout), &creds); err != nil {
		t.Fatalf("output is not the credentials: %v\n%s", err, stdout)
	}
	if creds.URL != "nats://127.0.0.1:4299" || creds.User != "notifications" || creds.Subject != "prod.notifications" ||
		creds.AckSubject != "prod.ack.notifications" || creds.Consumer != "erasure-notifications" || len(creds.Password) < 32 {
		t.Fatalf("credentials %+v", creds)
	}
	if info, err := os.Stat(filepath.Join(dir, natsconn.KeyFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}

	out := filepath.Join(t.TempDir(), "notifications.json")
	os.WriteFile(out, nil, 0o644) // an existing file becomes private too
	code, stdout, stderr = run(t, "nats", "credentials", "notifications", "--config", path, "--out", out)
	if code != 0 || !strings.Contains(stdout, "wrote the credentials of dataset notifications to "+out) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if info, _ := os.Stat(out); info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", info.Mode().Perm())
	}

	// The server of that data dir admits them.
	cfg := registry.NATS{Port: -1, AckPrefix: "prod.ack"}
	conn, err := natsconn.Connect(cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, _ := natsconn.New("notifications", "prod.notifications", []string{"user_id"})
	if err := conn.EnsureStream(context.Background(), natsconn.Bind([]*erasure.Dataset{{Name: "notifications", Conn: c}}, conn)); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(conn.ClientURL(), creds.Options()...)
	if err != nil {
		t.Fatalf("the server refuses the printed credentials: %v", err)
	}
	nc.Close()

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"profile"}, 2, "is not on NATS"},
		{[]string{"nosuch"}, 3, "not declared"},
		{nil, 2, "give one dataset"},
	} {
		code, _, stderr := run(t, append(append([]string{"nats", "credentials"}, tc.args...), "--config", path)...)
		if code != tc.code || !strings.Contains(stderr, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d saying %q", tc.args, code, stderr, tc.code, tc.says)
		}
	}
	external := writeConfig(t, strings.Replace(fmt.Sprintf(config, dir, 4299), "nats: { port: 4299,", `nats: { url: "nats://nats.internal:4222",`, 1))
	if code, _, stderr := run(t, "nats", "credentials", "notifications", "--config", external); code != 2 || !strings.Contains(stderr, "external NATS") {
		t.Errorf("external server: exit %d, stderr %q", code, stderr)
	}
}
