package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"erasure/client"
)

// Servers for the tests: `erasure serve` in this process (startMain), or in a child process
// that a test can SIGKILL (startChild).

// startMain runs serve's Main over the configuration file cfg, in this process, and closes
// it when the test ends.
func startMain(t *testing.T, cfg string) *Main {
	t.Helper()
	m := NewMain()
	m.ConfigPath = cfg
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatalf("serve %s: %s", cfg, oneLine(err))
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
	})
	return m
}

// randomToken returns a random token secret.
func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// child is a real `erasure serve --config FILE` in a child process (this test binary run again
// with ERASURE_TEST_MAIN=1, see TestMain), so that tests can SIGKILL it and start it again.
type child struct {
	t   *testing.T
	cfg string
	env []string
	cl  *client.Client
	cmd *exec.Cmd

	mu   sync.Mutex
	logs strings.Builder
}

// startChild starts the server, waits until it is ready, and stops it when the test ends.
// env is added to the test's environment.
func startChild(t *testing.T, cfg string, cl *client.Client, env ...string) *child {
	t.Helper()
	c := &child{t: t, cfg: cfg, cl: cl, env: append(append(os.Environ(), "ERASURE_TEST_MAIN=1"), env...)}
	c.start()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.cmd.Wait()
	})
	return c
}

// start runs the server and waits until /readyz answers.
func (c *child) start() {
	c.t.Helper()
	c.cmd = exec.Command(os.Args[0], "serve", "--config", c.cfg)
	c.cmd.Env = c.env
	c.cmd.Stdout, c.cmd.Stderr = c, c
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.cl.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("server not ready; its output:\n%s", c.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restart kills the server with SIGKILL and starts it again.
func (c *child) restart() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	c.start()
}

// Write keeps the server's output (the first MiB), for failure messages.
func (c *child) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logs.Len() < 1<<20 {
		c.logs.Write(p)
	}
	return len(p), nil
}

// output is what the server printed so far.
func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}
