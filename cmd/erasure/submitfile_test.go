package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
)

func TestClientCommands_SubmitFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	count := func(e *clientEnv) int {
		page, _ := e.svc.Requests(t.Context(), erasure.RequestFilter{Limit: 500})
		return len(page.Requests)
	}

	t.Run("CSV", func(t *testing.T) {
		e := newClientEnv(t)
		var b strings.Builder
		b.WriteString("user_id,email,email,reason\n")
		for i := 1; i <= 250; i++ {
			fmt.Fprintf(&b, "%d,u%d@example.com,,retention\n", i, i)
		}
		b.WriteString("251,,,Not A Label\n") // line 252: a bad reason
		b.WriteString("252,too,many,fields,here\n")
		b.WriteString("\n")
		b.WriteString(",,,\n") // no identifier
		path := write("subjects.csv", b.String())
		code, out, errOut := run(t, "submit", "--file", path, "--batch", "40", "--idempotency-prefix", "purge-1")
		if code != 2 {
			t.Fatalf("exit %d, want 2 (some lines refused)\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "250 requests created, 0 already there, 3 failed, of 253 lines") {
			t.Fatalf("summary %q", out)
		}
		for _, want := range []string{"line 252: reason must be", "line 253: 5 fields, the header has 4", "line 255: subject is required"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		if strings.Contains(errOut, "u1@example.com") || strings.Contains(out, "u1@example.com") {
			t.Fatal("an identifier value is printed")
		}
		if n := count(e); n != 250 {
			t.Fatalf("%d requests stored, want 250", n)
		}
		// The same file again: the prefix keys make every line the request it was.
		code, out, _ = run(t, "submit", "--file", path, "--batch", "100", "--idempotency-prefix", "purge-1")
		if code != 2 || !strings.Contains(out, "0 requests created, 250 already there") || count(e) != 250 {
			t.Fatalf("again: exit %d %q, %d stored", code, out, count(e))
		}
	})

	t.Run("JSONLines", func(t *testing.T) {
		e := newClientEnv(t)
		path := write("subjects.jsonl", `{"subject":{"user_id":"1"},"idempotency_key":"a"}
{"subject":{"user_id":"2","email":["x@example.com","y@example.com"]},"reason":"account_closed","deadline":"2099-01-01T00:00:00Z"}

{"subject":{"user_id":"3"},"colour":"red"}
not json
{"subject":{"user_id":["4","5"]}}
{"subject":{"user_id":"6","user_id":"7"}}
{"Subject":{"user_id":"8"}}
{"subject":{"user_id":"9"},"subject":{"user_id":"10"}}
`+"{\"subject\":{\"user_id\":\"\xff\"}}\n")
		code, out, errOut := run(t, "submit", "--file", path, "--reason", "retention")
		if code != 2 || !strings.Contains(out, "3 requests created, 0 already there, 6 failed, of 9 lines") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for _, want := range []string{`line 4: not a submission as JSON (unknown field "colour")`, "line 5: not a submission as JSON (",
			`has key "user_id" twice`, `line 8: not a submission as JSON (unknown field "Subject"`, `has key "subject" twice`,
			"line 10: not a submission as JSON (", "UTF-8"} {
			if !strings.Contains(errOut, want) {
				t.Fatalf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		for _, v := range []string{"user_id=7", `"7"`, `"10"`} {
			if strings.Contains(errOut, v) {
				t.Fatalf("stderr quotes a value (%s):\n%s", v, errOut)
			}
		}
		if n := count(e); n != 3 {
			t.Fatalf("%d stored", n)
		}
	})

	t.Run("BadUsage", func(t *testing.T) {
		newClientEnv(t)
		path := write("x.txt", "user_id\n1\n")
		for _, args := range [][]string{
			{"submit", "--file", path},
			{"submit", "--file", write("ok.csv", "user_id\n1\n"), "user_id=2"},
			{"submit", "--file", write("ok2.csv", "user_id\n1\n"), "--batch", "20000"},
			{"submit", "--file", write("bad.csv", "shoe size\n1\n")},
			{"submit", "--file", filepath.Join(dir, "missing.csv")},
		} {
			if code, out, errOut := run(t, args...); code == 0 {
				t.Errorf("%v: exit 0\n%s%s", args, out, errOut)
			}
		}
	})
}
