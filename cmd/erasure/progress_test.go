package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clockedProgress is a progress on a clock the test moves.
func clockedProgress(what, unit string) (*progress, *bytes.Buffer, *time.Time) {
	var out bytes.Buffer
	p := newProgress(&out, what, unit)
	now := p.start
	p.now = func() time.Time { return now }
	return p, &out, &now
}

func TestProgress_Line(t *testing.T) {
	for _, tc := range []struct {
		name  string
		unit  string
		after time.Duration
		s     step
		want  string
	}{
		{"NothingDoneYet", "records", 0, step{Total: 600},
			"archive: 0 records of 600 records (0%)"},
		{"RateAndETAFromItsOwnClock", "records", 2 * time.Second, step{Done: 150, Total: 600},
			"archive: 150 records of 600 records (25%), 75 records/s, ETA 6s"},
		{"ElapsedOfTheWorkWins", "records", time.Hour, step{Done: 150, Total: 600, Elapsed: 3 * time.Second},
			"archive: 150 records of 600 records (25%), 50 records/s, ETA 9s"},
		{"UnknownTotalHasNoETA", "records", time.Second, step{Done: 40},
			"archive: 40 records, 40 records/s"},
		{"AllDoneHasNoETA", "ids", time.Second, step{Done: 3, Total: 3},
			"archive: 3 ids of 3 ids (100%), 3 ids/s"},
		{"BytesAndNote", "", time.Second, step{Done: 1 << 20, Total: 4 << 20, Note: "1/4 partitions"},
			"archive: 1.0 MiB of 4.0 MiB (25%), 1.0 MiB/s, ETA 3s; 1/4 partitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, now := clockedProgress("archive", tc.unit)
			*now = now.Add(tc.after)
			if got := p.line(tc.s); got != tc.want {
				t.Fatalf("\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestProgress_Report(t *testing.T) {
	t.Run("AtMostOneLinePerIntervalAndOnlyChanges", func(t *testing.T) {
		p, out, now := clockedProgress("reindex", "records")
		p.report(step{Done: 0, Total: 10}) // first: shown
		*now = now.Add(300 * time.Millisecond)
		p.report(step{Done: 5, Total: 10}) // too soon
		*now = now.Add(time.Second)
		p.report(step{Done: 6, Total: 10}) // shown
		p.report(step{Done: 6, Total: 10}) // the same line
		*now = now.Add(2 * time.Second)
		p.report(step{Done: 9, Total: 10}) // shown
		if n := strings.Count(out.String(), "\n"); n != 3 {
			t.Fatalf("%d lines, want 3:\n%s", n, out)
		}
	})
	t.Run("FinishIsTheLastLine", func(t *testing.T) {
		p, out, now := clockedProgress("reindex", "records")
		var final bytes.Buffer
		p.report(step{Done: 1, Total: 2})
		p.finish(&final, "reindexed %d records", 2)
		*now = now.Add(time.Minute)
		p.report(step{Done: 2, Total: 2})
		if final.String() != "reindexed 2 records\n" || strings.Count(out.String(), "\n") != 1 {
			t.Fatalf("final %q, progress %q", final.String(), out.String())
		}
	})
}
