package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"erasure"
	"erasure/store/sqlite"
	"erasure/store/sqlstore"
	"erasure/store/storetest"
)

// TestStore_EndedRequestsLeaveNoIdentifierOnDisk: once a request ends, no byte of the database
// files (the database, its write-ahead log, its shared memory) holds its identifiers in clear:
// the scrubbed values are zeroed (secure_delete) and the log is checkpointed and truncated
// shortly after, while the store stays open.
func TestStore_EndedRequestsLeaveNoIdentifierOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "erasure.db")
	c := storetest.NewClock()
	db, err := sqlite.Open(ctx, path, sqlite.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var values, open []string
	for i := 0; i < 40; i++ {
		v := fmt.Sprintf("subject-%02d-%x@example.org", i, time.Now().UnixNano())
		id := fmt.Sprintf("r_%026d", i)
		_, _, err := db.CreateRequest(ctx, erasure.NewRequest{ID: id, Subject: erasure.NewSubject(erasure.Identifier{Type: "email", Value: v}),
			Reason: "test", Deadline: c.Now().Add(time.Hour), SubmittedBy: "t",
			Tasks: []erasure.TaskSpec{{Dataset: "a", Kind: erasure.TaskErase, Method: erasure.MethodRealtime, Keys: []string{"email"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			open = append(open, v) // still open: kept in clear, as it must be
			continue
		}
		values = append(values, v)
		if _, err := db.CancelRequest(ctx, id, "t"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(sqlstore.ScrubDelay + 500*time.Millisecond)
	files, _ := filepath.Glob(path + "*")
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	for _, v := range values {
		if bytes.Contains(all, []byte(v)) {
			t.Errorf("the identifier of an ended request is still in the database files: %s", v)
		}
	}
	found := 0
	for _, v := range open {
		if bytes.Contains(all, []byte(v)) {
			found++
		}
	}
	if found != len(open) {
		t.Fatalf("only %d of the %d identifiers of open requests found: the scan reads the wrong files", found, len(open))
	}
}
