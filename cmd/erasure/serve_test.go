package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
	"erasure/registry"
)

// TestServe_PortTakenTouchesNothing: serve binds the API's port before anything else, so a
// port already in use is reported without starting NATS or creating or migrating the store.
func TestServe_PortTakenTouchesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	natsPort := freeTCPPort(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	yml := fmt.Sprintf(`version: 1
server: { addr: %q, data_dir: %q }
nats: { port: %d }
identifiers: [user_id]
datasets:
  - { name: notifications, owner: team, connector: nats, nats: { subject: erasure.serve.notifications, identifiers: [user_id] } }
`, taken.Addr().String(), data, natsPort)
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg}
	err = m.Run(context.Background())
	defer m.Close()
	if erasure.ErrorCode(err) != erasure.EUNAVAILABLE || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("Run on a taken port: %v, want EUNAVAILABLE naming the address", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data dir was touched before the port was checked: %v", err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", natsPort))
	if err != nil {
		t.Fatalf("the embedded NATS was started before the port was checked: %v", err)
	}
	ln.Close()
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
