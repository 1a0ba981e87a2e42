package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"erasure"
	"erasure/registry"
)

// emptyDataset holds nothing: every erasure finds nothing.
type emptyDataset struct{ key string }

func (emptyDataset) Close() error { return nil }

func (emptyDataset) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	return erasure.Outcome{Detail: "0 rows matched"}, nil
}

func (emptyDataset) Holds(ctx context.Context, s erasure.Subject) (bool, error) { return false, nil }

type emptyDriver struct{}

func (emptyDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (emptyDriver) Build(b *registry.Build) erasure.Connector {
	var blk struct {
		Key string `yaml:"key"`
	}
	if !b.Decode(b.Block, &blk) {
		return nil
	}
	b.Dataset.Keys = []string{blk.Key}
	return emptyDataset{blk.Key}
}

func init() { registry.Register("empty", emptyDriver{}) }

// TestClientCommands_NothingFound: a request that erased nothing anywhere says so, and says
// why for each dataset.
func TestClientCommands_NothingFound(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "erasure.yaml")
	src := fmt.Sprintf(`version: 1
server: { addr: "127.0.0.1:0", data_dir: %q }
auth:
  tokens:
    - { name: admin, secret: "${ERASURE_FOUND_TOKEN}", roles: [submit, operate] }
identifiers: [user_id, email]
defaults: { backoff: { initial: 10ms, max: 1s } }
datasets:
  - { name: accounts, owner: a, connector: empty, empty: { key: user_id } }
  - { name: newsletter, owner: b, connector: empty, empty: { key: email } }
  - { name: billing, owner: c, connector: flaky, flaky: {} }
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ERASURE_FOUND_TOKEN", "found-secret-0123456789")
	m := startMain(t, cfg)
	t.Setenv("ERASURE_URL", m.URL())
	t.Setenv("ERASURE_TOKEN", "found-secret-0123456789")

	// billing (flaky) removes one row for any user_id: with only an e-mail, nothing is found.
	// submit --wait prints the id alone on stdout, and the outcome on stderr.
	code, out, errOut := run(t, "submit", "email=nobody@example.com", "--wait", "--timeout", "1m")
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 0 || !regexp.MustCompile(`^r_[0-9a-z]{26}\n$`).MatchString(out) {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	if !regexp.MustCompile(`^r_[0-9a-z]{26} completed: nothing found in 3 datasets$`).MatchString(lines[len(lines)-1]) {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	for _, want := range []string{"  accounts: skipped: no identifier (needs user_id)", "  newsletter: 0 rows matched", "  billing: skipped: no identifier (needs user_id)"} {
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("no line %q in\n%s", want, errOut)
		}
	}
	code, out, _ = run(t, "status", strings.TrimSpace(out))
	if code != 0 || !strings.HasSuffix(out, "completed: nothing found in 3 datasets\n") || !strings.Contains(out, "  newsletter: 0 rows matched\n") {
		t.Fatalf("status: exit %d %q", code, out)
	}
	// With a user_id, billing finds something: the usual line.
	code, out, errOut = run(t, "submit", "user_id=5", "--wait", "--timeout", "1m")
	if code != 0 || !regexp.MustCompile(`completed: 3 of 3 tasks done, 1 removed\n$`).MatchString(errOut) {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
}
