package words_test

import (
	"testing"

	"erasure/internal/words"
)

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "task", "0 tasks"}, {1, "task", "1 task"}, {2, "task", "2 tasks"}, {1, "batch", "1 batch"}, {3, "batch", "3 batches"},
		{2, "entry", "2 entries"}, {2, "key", "2 keys"}, {2, "process", "2 processes"}, {2, "live record", "2 live records"}, {-1, "day", "-1 days"},
	} {
		if got := words.Count(tc.n, tc.noun); got != tc.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
	if got := words.Count(int64(1), "row"); got != "1 row" {
		t.Errorf("int64: %q", got)
	}
}

func TestPrefixes(t *testing.T) {
	ids := []string{"r_06h36cyxp5jbq0ya2admxtyrtw", "r_06h36cyxp8ypepw62nytmja9dw", "r_06h36cyxpnqg403mg86vgdpnc8", "r_06h37aaaaaaaaaaaaaaaaaaaaa"}
	got := words.Prefixes(ids, 8)
	want := map[string]string{ids[0]: "r_06h36cyxp5", ids[1]: "r_06h36cyxp8", ids[2]: "r_06h36cyxpn", ids[3]: "r_06h37a"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("prefix of %s = %q, want %q", id, got[id], w)
		}
	}
	if p := words.Prefixes([]string{"abc", "abcdef"}, 2); p["abc"] != "abc" || p["abcdef"] != "abcd" {
		t.Errorf("an id that is another's prefix: %v", p)
	}
}
