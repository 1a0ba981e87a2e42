package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/client"
)

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe_LogLinesAreFlat: a server whose connectors were built before the process set its
// logger (as a program embedding the packages may do) still writes each line once, through
// that logger: no line folded into another's message (msg="INFO sweep committed files.…"), no
// attribute whose group repeats (records.records.source), no identifier.
func TestServe_LogLinesAreFlat(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	writeSnapshot(t, events, 2, 5, 2, 10)
	cfgPath := filepath.Join(dir, "erasure.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(sweepConfig, "127.0.0.1:0", filepath.Join(dir, "data"), events, filepath.Join(dir, "lake"))), 0o600)
	t.Setenv("ERASURE_SWEEP_TOKEN", "ops-secret-0123456789")
	cfg, err := loadConfig(cfgPath) // the connectors are built now, before the logger is set
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedLog
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(log)

	m := &Main{Config: cfg, Logger: log}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, _ := client.New(m.URL(), "ops-secret-0123456789")
	r, _, err := c.Submit(t.Context(), erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "3"}), Reason: "user_request"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := c.Request(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Tasks[0].State == erasure.TaskQueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task was not queued: %+v", got.Tasks)
		}
	}
	sw, err := c.RunSweep(t.Context(), "events")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "files.sweep="); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the files connector did not log its sweep %s:\n%s", sw.ID, logs.String())
		}
	}
	folded := regexp.MustCompile(`msg="?(DEBUG|INFO|WARN|ERROR) `)
	repeated := regexp.MustCompile(`(?:^| )(?:[a-z_]+\.)*([a-z_]+)\.([a-z_]+\.)*?([a-z_]+)=`)
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if folded.MatchString(line) {
			t.Errorf("a line folded into another's message: %s", line)
		}
		for _, key := range repeated.FindAllString(line, -1) {
			parts := strings.Split(strings.TrimSuffix(strings.TrimSpace(key), "="), ".")
			for i := 1; i < len(parts); i++ {
				if parts[i] == parts[i-1] {
					t.Errorf("attribute %s repeats its group: %s", strings.TrimSpace(key), line)
				}
			}
		}
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("a line not written by the process's logger: %s", line)
		}
	}
}
