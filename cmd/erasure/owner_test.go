package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"erasure/client"
)

// TestServe_OneProcessPerDataDir: a second `erasure serve` on the data dir of a running one is
// refused with a message naming the first, and changes nothing; `erasure worker` on SQLite is
// refused too.
func TestServe_OneProcessPerDataDir(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "erasure.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(crashConfig, addr, filepath.Join(dir, "data"), "http://127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1")), 0o600)
	token := randomToken()
	cl, _ := client.New("http://"+addr, token)
	first := startChild(t, cfg, cl, "ERASURE_CRASH_TOKEN="+token)

	run := func(args ...string) (string, error) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "ERASURE_TEST_MAIN=1", "ERASURE_CRASH_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("serve", "--config", cfg, "--addr", freeAddr(t))
	if err == nil {
		t.Fatalf("a second serve on the data dir ran:\n%s", out)
	}
	if pid := strconv.Itoa(first.cmd.Process.Pid); !strings.Contains(out, "in use by process "+pid) {
		t.Fatalf("refusal does not name process %s:\n%s", pid, out)
	}
	if err := cl.Ready(t.Context()); err != nil {
		t.Fatalf("the first server suffered from the second: %v", err)
	}
	out, err = run("worker", "--config", cfg)
	if err == nil || !strings.Contains(out, "needs a shared store") {
		t.Fatalf("worker on SQLite: %v\n%s", err, out)
	}
}
