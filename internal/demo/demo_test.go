package demo_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"erasure/internal/demo"
)

func TestRun_ErasesFourSubjectsAndReports(t *testing.T) {
	var out bytes.Buffer
	if err := demo.Run(t.Context(), demo.Options{Users: 20}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^left in the estate: 16 of 20 users, 32 of 40 logins, 32 of 40 newsletter rows, 16 of 20 profiles, 48 of 60 events$`),
		regexp.MustCompile(`(?m)^  profile-service +realtime +4/4 +0 +0 +6 +4 +4$`), // user 3 needed three attempts
		regexp.MustCompile(`(?m)^sweep s_[0-9a-z]{26} of analytics.events: committed, 4 partitions, 60 rows scanned, 12 removed$`),
		regexp.MustCompile(`(?m)^audit trail verified: \d+ events`),
	} {
		if !want.MatchString(text) {
			t.Errorf("the report lacks %s:\n%s", want, text)
		}
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^demo: 4 of 4 requests completed across 6 datasets in \d+\.\ds$`).MatchString(last) {
		t.Fatalf("last line %q", last)
	}
}

func TestRun_RefusesTooFewUsers(t *testing.T) {
	var out bytes.Buffer
	if err := demo.Run(t.Context(), demo.Options{Users: 3}, &out); err == nil || out.Len() > 0 {
		t.Fatalf("Run with 3 users: %v, output %q", err, out.String())
	}
}
