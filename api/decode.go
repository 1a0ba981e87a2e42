package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"erasure"
	"erasure/internal/strictjson"
)

// DefaultMaxBodyBytes is the body size limit when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// submissionWire is the JSON body of POST /v1/requests.
type submissionWire struct {
	Subject  *subjectWire `json:"subject"`
	Reason   string       `json:"reason"`
	Deadline string       `json:"deadline"`
	// Grace is the grace window ("72h", "3d", "0s" for none); absent: the registry's default.
	Grace *string `json:"grace"`
	// Suppress false keeps the subject off the suppression list once erased.
	Suppress *bool `json:"suppress"`
}

// subjectWire is a subject as submitted: an object from identifier type to one value or an
// array of values, {"user_id":"42","email":["a@x","b@x"]}.
type subjectWire struct{ ids []erasure.Identifier }

// UnmarshalJSON decodes the object token by token so that a type given twice is an error
// instead of one value silently replacing the other.
func (s *subjectWire) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return erasure.Errorf(erasure.EINVALID, `subject must be an object such as {"user_id":"42"}`)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return erasure.Errorf(erasure.EINVALID, "subject is not valid JSON")
		}
		typ, _ := tok.(string)
		if seen[typ] {
			return erasure.Errorf(erasure.EINVALID, "subject gives identifier type %q twice: give several values as an array", truncate(typ, 64))
		}
		seen[typ] = true
		if !erasure.ValidIdentifierType(typ) {
			return erasure.Errorf(erasure.EINVALID, "identifier type %q is not valid: use lower case letters, digits and _", truncate(typ, 64))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return erasure.Errorf(erasure.EINVALID, "subject is not valid JSON")
		}
		var values []string
		switch {
		case len(raw) > 0 && raw[0] == '"':
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return erasure.Errorf(erasure.EINVALID, "identifier %s: not a valid JSON string", typ)
			}
			values = []string{v}
		case len(raw) > 0 && raw[0] == '[':
			if err := json.Unmarshal(raw, &values); err != nil {
				return erasure.Errorf(erasure.EINVALID, "identifier %s: expected an array of strings", typ)
			}
			if len(values) == 0 {
				return erasure.Errorf(erasure.EINVALID, "identifier %s: the array of values is empty", typ)
			}
		default:
			return erasure.Errorf(erasure.EINVALID, "identifier %s: expected a string or an array of strings", typ)
		}
		for _, v := range values {
			if len(s.ids) == erasure.MaxSubjectIdentifiers {
				return erasure.Errorf(erasure.EINVALID, "subject has more than %d identifiers", erasure.MaxSubjectIdentifiers)
			}
			s.ids = append(s.ids, erasure.Identifier{Type: typ, Value: v})
		}
	}
	return nil
}

// DecodeSubmission reads the JSON body of POST /v1/requests from r, reading at most limit
// bytes, and returns the submission. It returns ETOOLARGE when the body is longer than limit
// and EINVALID for anything else wrong: malformed JSON, unknown fields, trailing data, a type
// given twice, a bad deadline, and whatever erasure.Submission.Validate refuses. Error messages
// never contain identifier values. It does not check that identifier types are declared nor
// the deadline's bounds (the Service does).
func DecodeSubmission(r io.Reader, limit int64) (erasure.Submission, error) {
	var w submissionWire
	if err := decodeJSON(r, limit, &w); err != nil {
		return erasure.Submission{}, err
	}
	return w.submission(time.Time{}, "")
}

// submission is the validated submission w describes, under idempotency key key; with a
// non-zero now, a deadline not after it is refused too.
func (w *submissionWire) submission(now time.Time, key string) (erasure.Submission, error) {
	sub := erasure.Submission{IdempotencyKey: key}
	if w.Subject != nil {
		sub.Subject = erasure.NewSubject(w.Subject.ids...)
	}
	sub.Reason = w.Reason
	if w.Deadline != "" {
		d, err := time.Parse(time.RFC3339Nano, w.Deadline)
		if err != nil || d.IsZero() {
			return erasure.Submission{}, erasure.Errorf(erasure.EINVALID, "deadline %q is not an RFC 3339 time such as 2026-01-31T00:00:00Z", truncate(w.Deadline, 64))
		}
		if !now.IsZero() && !d.After(now) {
			return erasure.Submission{}, erasure.Errorf(erasure.EINVALID, "deadline %s is in the past", d.Format(time.RFC3339))
		}
		sub.Deadline = d.UTC()
	}
	if w.Grace != nil {
		g, err := parseGrace(*w.Grace)
		if err != nil {
			return erasure.Submission{}, err
		}
		sub.Grace = &g
	}
	if w.Suppress != nil && !*w.Suppress {
		sub.NoSuppress = true
	}
	if err := sub.Validate(); err != nil {
		return erasure.Submission{}, err
	}
	return sub, nil
}

// parseGrace reads a grace window: a Go duration or a number of days ("3d", "1d12h"); "0s" or
// "0" is none.
func parseGrace(s string) (time.Duration, error) {
	bad := erasure.Errorf(erasure.EINVALID, "grace %q is not a duration such as 72h or 3d (0s for none)", truncate(s, 32))
	if s == "0" {
		return 0, nil
	}
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days < 0 || days > 366 {
			return 0, bad
		}
		d, rest = time.Duration(days)*24*time.Hour, s[i+1:]
	}
	if rest != "" {
		x, err := time.ParseDuration(rest)
		if err != nil || x < 0 {
			return 0, bad
		}
		d += x
	}
	return d, nil
}

// DecodeJSON decodes the JSON body of r into v, strictly: the body must be declared as JSON
// (EUNSUPPORTED otherwise), at most limit bytes (ETOOLARGE), one well-formed value (EINVALID)
// with no unknown fields (EINVALID naming the field) and nothing after it. Handlers mounted next
// to the API use it to get the same answers to bad input.
func DecodeJSON(r *http.Request, limit int64, v any) error {
	if err := checkJSONType(r); err != nil {
		return err
	}
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	return decodeJSON(r.Body, limit, v)
}

// checkBody checks what the headers say of a JSON body: its type, and its length against limit.
func checkBody(r *http.Request, limit int64) error {
	if err := checkJSONType(r); err != nil {
		return err
	}
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	return nil
}

func checkJSONType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return erasure.Errorf(EUNSUPPORTED, "Content-Type must be application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return erasure.Errorf(EUNSUPPORTED, "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return erasure.Errorf(EUNSUPPORTED, "JSON bodies must be UTF-8")
	}
	return nil
}

func tooLarge(limit int64) error { return strictjson.TooLarge(limit) }

// decodeJSON decodes at most limit bytes of r into v with the strict decoder shared by every
// JSON body erasure accepts (internal/strictjson): one value, valid UTF-8 without lone
// surrogates, no key twice, field names exactly as documented, nothing after the value.
func decodeJSON(r io.Reader, limit int64, v any) error {
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	err := strictjson.Decode(r, limit, v)
	var e *erasure.Error
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &e):
		return err
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return erasure.Errorf(ETIMEOUT, "the request body did not arrive in time: send it at once after the headers")
	}
	return erasure.Errorf(erasure.EINVALID, "the request body could not be read: the connection failed")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
