package erasure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration as the API writes it: a string such as "720h", "1h30m" or
// "1.5s" (FormatDuration), never nanoseconds. It reads that form, a number of days ("30d",
// "1d12h"), and, for clients written against the old API, a JSON number of nanoseconds.
//
// The domain types keep their time.Duration fields; their MarshalJSON and UnmarshalJSON go
// through Duration (Policy, Backoff, SweepProgress, IndexReport).
type Duration time.Duration

// FormatDuration writes d as time.Duration.String does, without the zero units it appends:
// 720h, 1h30m, 90s, 1.5s, 250ms, 0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration reads a duration as time.ParseDuration does, also accepting a leading number
// of days ("30d", "1d12h"). EINVALID when s is none of these.
func ParseDuration(s string) (time.Duration, error) {
	bad := Errorf(EINVALID, "%q is not a duration such as 30s, 90m, 720h or 30d", truncateValid(s, 40))
	rest, neg := s, false
	if strings.HasPrefix(rest, "-") {
		rest, neg = rest[1:], true
	}
	var d time.Duration
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		days, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || days < 0 || days > 100000 {
			return 0, bad
		}
		d, rest = time.Duration(days)*24*time.Hour, rest[i+1:]
		if rest == "" {
			if neg {
				d = -d
			}
			return d, nil
		}
	}
	if rest == "" || rest[0] == '+' || rest[0] == '-' {
		return 0, bad
	}
	x, err := time.ParseDuration(rest)
	if err != nil {
		return 0, bad
	}
	d += x
	if neg {
		d = -d
	}
	return d, nil
}

// String returns FormatDuration(d).
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// MarshalJSON writes d as a string ("720h").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatDuration(time.Duration(d)))
}

// UnmarshalJSON reads a string ("720h", "30d") or a number of nanoseconds (the old form).
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		x, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(x)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("a duration is a string such as \"720h\" or a number of nanoseconds: %w", err)
	}
	if i, err := n.Int64(); err == nil {
		*d = Duration(i)
		return nil
	}
	f, err := n.Float64()
	if err != nil {
		return err
	}
	*d = Duration(int64(f))
	return nil
}

// The JSON forms of the domain types holding durations: each is the type's own fields (an
// alias without its methods) with the durations overridden by Duration fields of the same
// JSON name, which encoding/json prefers to the embedded ones.

type policyJSON struct {
	Deadline    Duration    `json:"deadline"`
	MaxAttempts int         `json:"max_attempts"`
	Backoff     backoffJSON `json:"backoff"`
	Timeout     Duration    `json:"timeout"`
	AckTimeout  Duration    `json:"ack_timeout,omitempty"`
	SweepEvery  Duration    `json:"sweep_every,omitempty"`
	SweepMode   SweepMode   `json:"sweep_mode,omitempty"`
}

type backoffJSON struct {
	Initial Duration `json:"initial"`
	Max     Duration `json:"max"`
}

// MarshalJSON writes the policy with its durations as strings.
func (p Policy) MarshalJSON() ([]byte, error) {
	return json.Marshal(policyJSON{Deadline: Duration(p.Deadline), MaxAttempts: p.MaxAttempts,
		Backoff: backoffJSON{Duration(p.Backoff.Initial), Duration(p.Backoff.Max)}, Timeout: Duration(p.Timeout),
		AckTimeout: Duration(p.AckTimeout), SweepEvery: Duration(p.SweepEvery), SweepMode: p.SweepMode})
}

// UnmarshalJSON reads a policy whose durations are strings or, in the old form, nanoseconds.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var w policyJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = Policy{Deadline: time.Duration(w.Deadline), MaxAttempts: w.MaxAttempts,
		Backoff: Backoff{time.Duration(w.Backoff.Initial), time.Duration(w.Backoff.Max)}, Timeout: time.Duration(w.Timeout),
		AckTimeout: time.Duration(w.AckTimeout), SweepEvery: time.Duration(w.SweepEvery), SweepMode: w.SweepMode}
	return nil
}

// MarshalJSON writes the backoff with its durations as strings.
func (b Backoff) MarshalJSON() ([]byte, error) {
	return json.Marshal(backoffJSON{Duration(b.Initial), Duration(b.Max)})
}

// UnmarshalJSON reads a backoff whose durations are strings or nanoseconds.
func (b *Backoff) UnmarshalJSON(data []byte) error {
	var w backoffJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*b = Backoff{time.Duration(w.Initial), time.Duration(w.Max)}
	return nil
}

type sweepProgressPlain SweepProgress

// MarshalJSON writes the progress with elapsed as a string.
func (p SweepProgress) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		sweepProgressPlain
		Elapsed Duration `json:"elapsed"`
	}{sweepProgressPlain(p), Duration(p.Elapsed)})
}

// UnmarshalJSON reads a progress whose elapsed is a string or nanoseconds.
func (p *SweepProgress) UnmarshalJSON(b []byte) error {
	w := struct {
		*sweepProgressPlain
		Elapsed Duration `json:"elapsed"`
	}{sweepProgressPlain: (*sweepProgressPlain)(p)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	p.Elapsed = time.Duration(w.Elapsed)
	return nil
}

type indexReportPlain IndexReport

// MarshalJSON writes the report with elapsed as a string.
func (r IndexReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		indexReportPlain
		Elapsed Duration `json:"elapsed"`
	}{indexReportPlain(r), Duration(r.Elapsed)})
}

// UnmarshalJSON reads a report whose elapsed is a string or nanoseconds.
func (r *IndexReport) UnmarshalJSON(b []byte) error {
	w := struct {
		*indexReportPlain
		Elapsed Duration `json:"elapsed"`
	}{indexReportPlain: (*indexReportPlain)(r)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Elapsed = time.Duration(w.Elapsed)
	return nil
}
