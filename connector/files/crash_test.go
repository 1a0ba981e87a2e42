package files_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"erasure/connector/files"
)

// The crash tests run a sweep in a child process (this test binary again, with
// ERASURE_FILES_CRASH_DIR set), kill it with SIGKILL at a chosen point or at a random time,
// and then resume the sweep in the parent.

const crashKeys = "42,7,1001"

func crashConfig(dir string) files.Config {
	return files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id", Identifier: "user_id"}, Workers: 2, Index: true}
}

// TestCrashChild is the child's side; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("ERASURE_FILES_CRASH_DIR")
	if dir == "" {
		t.Skip("runs only as the child of the crash tests")
	}
	point := os.Getenv("ERASURE_FILES_CRASH_POINT")
	n, _ := strconv.Atoi(os.Getenv("ERASURE_FILES_CRASH_N"))
	seen := 0
	files.SetHook(func(p, partition string) {
		if point == "slow" {
			time.Sleep(5 * time.Millisecond) // widen the windows for random kills
			return
		}
		if p == point {
			seen++
			if seen == n {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
		}
	})
	c, err := files.New(crashConfig(dir))
	if err == nil {
		err = c.SetIndexKey(testIndexKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sweep(context.Background(), batch(strings.Split(crashKeys, ",")...)); err != nil {
		t.Fatal(err)
	}
}

// crashSnapshot writes 12 partitions, half gzip, each with rows to erase, and returns each
// partition's content before and after the sweep.
func crashSnapshot(t *testing.T, dir string) (before, after map[string][]byte) {
	t.Helper()
	before, after = map[string][]byte{}, map[string][]byte{}
	keys := []string{"42", "7", "1001"}
	for p := 0; p < 12; p++ {
		var ls []line
		for i := 0; i < 3000; i++ {
			id := strconv.Itoa(2000 + (p*3000+i)%5000)
			erased := false
			if i%97 == p%5 {
				id, erased = keys[i%3], true
			}
			ls = append(ls, line{fmt.Sprintf(`{"user":{"id":"%s"},"p":%d,"i":%d,"pad":"%s"}`+"\n", id, p, i, strings.Repeat("z", i%40)), erased})
		}
		name := fmt.Sprintf("part-%02d.jsonl", p)
		if p%2 == 1 {
			name += ".gz"
		}
		writeFile(t, filepath.Join(dir, name), content(ls, false))
		before[name], after[name] = content(ls, false), content(ls, true)
	}
	return before, after
}

func runChild(t *testing.T, dir, point string, n int, killAfter time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ERASURE_FILES_CRASH_DIR="+dir, "ERASURE_FILES_CRASH_POINT="+point, "ERASURE_FILES_CRASH_N="+strconv.Itoa(n))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	cmd.Wait()
}

// checkWhole fails when a partition is neither its old nor its new content.
func checkWhole(t *testing.T, dir string, before, after map[string][]byte) {
	t.Helper()
	for name := range before {
		got := string(readFile(t, filepath.Join(dir, name)))
		if got != string(before[name]) && got != string(after[name]) {
			t.Errorf("%s is neither the old nor the new partition after the crash (torn or mixed)", name)
		}
	}
}

func TestSweep_SurvivesCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests start child processes")
	}
	type crash struct {
		name  string
		point string
		n     int
		after time.Duration
	}
	tests := []crash{
		{"DuringRewrite", "prepared", 4, 0},
		{"BeforeTheSwap", "rename", 1, 0},
		{"DuringTheSwap", "renamed", 3, 0},
		{"AfterTheSwapBeforeTheJournalIsRemoved", "committed", 1, 0},
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	for i := 0; i < 5; i++ {
		d := time.Duration(rng.IntN(400)) * time.Millisecond
		tests = append(tests, crash{fmt.Sprintf("AtRandom/%v", d), "slow", 0, d})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			before, after := crashSnapshot(t, dir)
			runChild(t, dir, tt.point, tt.n, tt.after)
			checkWhole(t, dir, before, after)

			c, err := files.New(crashConfig(dir))
			if err == nil {
				err = c.SetIndexKey(testIndexKey)
			}
			if err != nil {
				t.Fatal(err)
			}
			if ids, _ := c.Pending(); tt.point != "slow" && len(ids) != 1 {
				t.Fatalf("no interrupted sweep after the crash (journals %v): the child did not die where it should", ids)
			}
			if _, err := c.Resume(context.Background()); err != nil {
				t.Fatalf("resume: %v", err)
			}
			// The task's sweep runs again (its tasks stayed queued) and finds nothing left.
			res, err := c.Sweep(context.Background(), batch(strings.Split(crashKeys, ",")...))
			if err != nil {
				t.Fatal(err)
			}
			if res.Removed != 0 && tt.point != "slow" {
				t.Errorf("the sweep after resume removed %d rows: resume did not finish the sweep", res.Removed)
			}
			for name, want := range after {
				if got := readFile(t, filepath.Join(dir, name)); string(got) != string(want) {
					t.Errorf("%s after resume: %d bytes, want %d (an erased row survived or a kept row was lost)", name, len(got), len(want))
				}
			}
			noLeftovers(t, dir)
		})
	}
}
