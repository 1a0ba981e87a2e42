package main

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// progress is how every command shows long work (sweeps, archives, restores, reindexes): lines
// on stderr saying how much is done of how much, the rate and the time left,
//
//	archive: 12000 of 60000 records (20%), 8410 records/s, ETA 6s
//	events: 2.0 MiB of 4.0 MiB (50%), 1.0 MiB/s, ETA 2s; 2/4 partitions, 1000 rows scanned, 12 removed
//
// at most one per interval and only when something changed, then one final line that says
// what happened.
type progress struct {
	w    io.Writer
	what string
	// unit names what is counted ("records", "ids"); "" counts bytes, shown as KiB, MiB...
	unit  string
	every time.Duration
	now   func() time.Time

	start, last time.Time
	shown       string
	ended       bool
}

// step is how far the work has got.
type step struct {
	Done  int64
	Total int64 // 0 when unknown
	// Elapsed is how long the work has run; 0 means since the progress was made (work that
	// runs elsewhere, such as a sweep in the server, says how long it has run).
	Elapsed time.Duration
	// Note holds further figures, shown after the rate.
	Note string
}

// newProgress returns the progress of work named what, counting unit ("" for bytes), shown
// on w once a second at most.
func newProgress(w io.Writer, what, unit string) *progress {
	return &progress{w: w, what: what, unit: unit, every: time.Second, now: time.Now, start: time.Now()}
}

// report shows s, unless the last line was shown less than every ago or s changes nothing
// in it.
func (p *progress) report(s step) {
	if p.ended {
		return
	}
	now := p.now()
	line := p.line(s)
	if line == p.shown || (!p.last.IsZero() && now.Sub(p.last) < p.every) {
		return
	}
	p.last, p.shown = now, line
	fmt.Fprintln(p.w, line)
}

// line renders s: done of total (share), rate and ETA when they are known, then the note.
func (p *progress) line(s step) string {
	line := p.what + ": " + p.count(s.Done)
	if s.Total > 0 {
		line += fmt.Sprintf(" of %s (%d%%)", p.count(s.Total), s.Done*100/s.Total)
	}
	elapsed := s.Elapsed
	if elapsed <= 0 {
		elapsed = p.now().Sub(p.start)
	}
	if s.Done > 0 && elapsed > 0 {
		rate := float64(s.Done) / elapsed.Seconds()
		if p.unit == "" {
			line += ", " + bytesText(int64(rate)) + "/s"
		} else {
			line += fmt.Sprintf(", %.0f %s/s", rate, p.unit)
		}
		if left := s.Total - s.Done; left > 0 {
			line += ", ETA " + time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String()
		}
	}
	if s.Note != "" {
		line += "; " + s.Note
	}
	return line
}

func (p *progress) count(n int64) string {
	if p.unit == "" {
		return bytesText(n)
	}
	return strconv.FormatInt(n, 10) + " " + p.unit
}

// elapsed is how long the work has run since the progress was made.
func (p *progress) elapsed() time.Duration { return p.now().Sub(p.start) }

// finish prints the one line that says what happened on out (stdout, or stderr when stdout
// carries the command's data) and ends the reports.
func (p *progress) finish(out io.Writer, format string, args ...any) {
	p.ended = true
	fmt.Fprintf(out, format+"\n", args...)
}

// bytesText renders n bytes in binary units: 512 B, 1.5 KiB, 3.0 GiB.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
