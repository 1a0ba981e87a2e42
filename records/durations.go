package records

import (
	"encoding/json"
	"time"

	"erasure"
)

// The API writes durations as strings ("1.5s"), never nanoseconds (see erasure.Duration); these
// read the old form too.

type progressPlain Progress

// MarshalJSON writes the progress with elapsed and eta as strings.
func (p Progress) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		progressPlain
		Elapsed erasure.Duration `json:"elapsed"`
		ETA     erasure.Duration `json:"eta"`
	}{progressPlain(p), erasure.Duration(p.Elapsed), erasure.Duration(p.ETA)})
}

// UnmarshalJSON reads a progress whose durations are strings or nanoseconds.
func (p *Progress) UnmarshalJSON(b []byte) error {
	w := struct {
		*progressPlain
		Elapsed erasure.Duration `json:"elapsed"`
		ETA     erasure.Duration `json:"eta"`
	}{progressPlain: (*progressPlain)(p)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	p.Elapsed, p.ETA = time.Duration(w.Elapsed), time.Duration(w.ETA)
	return nil
}

type reindexReportPlain ReindexReport

// MarshalJSON writes the report with elapsed as a string.
func (r ReindexReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		reindexReportPlain
		Elapsed erasure.Duration `json:"elapsed"`
	}{reindexReportPlain(r), erasure.Duration(r.Elapsed)})
}

// UnmarshalJSON reads a report whose elapsed is a string or nanoseconds.
func (r *ReindexReport) UnmarshalJSON(b []byte) error {
	w := struct {
		*reindexReportPlain
		Elapsed erasure.Duration `json:"elapsed"`
	}{reindexReportPlain: (*reindexReportPlain)(r)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Elapsed = time.Duration(w.Elapsed)
	return nil
}
