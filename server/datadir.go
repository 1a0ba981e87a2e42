package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"erasure"
)

// DataDirLock is the file in a data dir that the process owning it keeps locked.
const DataDirLock = "erasure.lock"

// lockDataDir takes an exclusive lock on dir's lock file for as long as the file stays open,
// and writes this process's id in it. A SQLite store is owned by one process: a second one
// would take over the first's leases and run the same tasks twice at once. ECONFLICT, naming
// the holder, when another process holds it.
func lockDataDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, DataDirLock)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, err := os.ReadFile(name); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
					holder = fmt.Sprintf("process %d", pid)
				}
			}
			return nil, erasure.Errorf(erasure.ECONFLICT, "data dir %s is in use by %s: a SQLite store has one owner. Stop it first, or share a PostgreSQL store (store.dsn) between several processes", dir, holder)
		}
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockDataDir releases the lock (closing the file releases it too; a process that dies
// releases it with its files).
func unlockDataDir(f *os.File) error {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return f.Close()
}
