package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"erasure"
	"erasure/api"
)

// FuzzDecodeSubmission checks that the request decoder never panics, fails only with the
// documented codes, and that what it accepts is valid and survives a re-encoding with the same
// fingerprint. Seeds are in testdata/fuzz/FuzzDecodeSubmission.
func FuzzDecodeSubmission(f *testing.F) {
	f.Add([]byte(okBody))
	f.Add([]byte(`{"subject":{"user_id":"42"},"reason":"user_request","deadline":"2030-01-01T00:00:00+02:00"}`))
	const limit = 2048
	f.Fuzz(func(t *testing.T, body []byte) {
		sub, err := api.DecodeSubmission(bytes.NewReader(body), limit)
		if err != nil {
			var e *erasure.Error
			if !errors.As(err, &e) || (e.Code != erasure.EINVALID && e.Code != erasure.ETOOLARGE) {
				t.Fatalf("error %v (%T) is not an EINVALID or ETOOLARGE *erasure.Error", err, err)
			}
			if e.Code == erasure.ETOOLARGE && len(body) <= limit {
				t.Fatalf("ETOOLARGE for a body of %d bytes", len(body))
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("accepted a body of %d bytes over the limit %d", len(body), limit)
		}
		if len(sub.Subject) == 0 || len(sub.Subject) > erasure.MaxSubjectIdentifiers {
			t.Fatalf("accepted a subject of %d identifiers", len(sub.Subject))
		}
		for _, id := range sub.Subject {
			if err := id.Validate(); err != nil {
				t.Fatalf("accepted an invalid identifier: %v", err)
			}
		}
		if sub.Reason == "" || len(sub.Reason) > 64 || strings.ContainsFunc(sub.Reason, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Fatalf("accepted reason %q", sub.Reason)
		}
		// Re-encode canonically and decode again: same submission, same fingerprint.
		subject := map[string][]string{}
		for _, id := range sub.Subject {
			subject[id.Type] = append(subject[id.Type], id.Value)
		}
		again := map[string]any{"subject": subject, "reason": sub.Reason}
		if !sub.Deadline.IsZero() {
			again["deadline"] = sub.Deadline.Format(time.RFC3339Nano)
		}
		b, _ := json.Marshal(again)
		sub2, err := api.DecodeSubmission(bytes.NewReader(b), 1<<20)
		if err != nil {
			t.Fatalf("re-encoded submission refused: %v\n%s", err, b)
		}
		if !bytes.Equal(sub2.Canonical(), sub.Canonical()) {
			t.Fatalf("re-encoding changed the fingerprint:\n%s\n%s", body, b)
		}
	})
}

func TestFingerprint_DistinguishesContent(t *testing.T) {
	base := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}), Reason: "user_request"}
	variants := map[string]erasure.Submission{
		"OtherValue":    {Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "43"}), Reason: "user_request"},
		"OtherType":     {Subject: erasure.NewSubject(erasure.Identifier{Type: "email", Value: "42"}), Reason: "user_request"},
		"OtherReason":   {Subject: base.Subject, Reason: "legal"},
		"WithDeadline":  {Subject: base.Subject, Reason: "user_request", Deadline: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		"ShiftedFields": {Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "4"}), Reason: "2user_request"},
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(v.Canonical(), base.Canonical()) {
				t.Fatal("same fingerprint for different submissions")
			}
		})
	}
	t.Run("SameInstantOtherZone", func(t *testing.T) {
		a, b := base, base
		a.Deadline = time.Date(2030, 1, 1, 2, 0, 0, 0, time.FixedZone("CEST", 7200))
		b.Deadline = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		if !bytes.Equal(a.Canonical(), b.Canonical()) {
			t.Fatal("the same deadline in two zones has two fingerprints")
		}
	})
}

// FuzzDecodeRecordPut checks the record write decoder: it never panics, fails only with
// EINVALID or ETOOLARGE, and what it accepts is a valid write whose payload is strict JSON
// (valid UTF-8, no lone surrogate, no key twice) and survives a re-encoding unchanged. Run it
// with
//
//	go test -run XXX -fuzz FuzzDecodeRecordPut -fuzztime 60s ./api
func FuzzDecodeRecordPut(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"payload":{"title":"t","n":[1,2,{"x":null}]}}`,
		`{"payload":{"a":1,"a":2}}`,
		`{"Version":1,"payload":{}}`,
		`{"deleted":true,"reason":"withdrawn","purge":true}`,
		`{"payload":{"t":"\ud800"}}`,
		`{"payload":{"t":"\ud83d\ude00"},"force":true}`,
		"{\"payload\":{\"t\":\"\xff\"}}",
		`{"version":-1,"payload":1}`,
	} {
		f.Add([]byte(s))
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := api.DecodeRecordPut(bytes.NewReader(body), limit, "b1")
		if err != nil {
			var e *erasure.Error
			if !errors.As(err, &e) || (e.Code != erasure.EINVALID && e.Code != erasure.ETOOLARGE) {
				t.Fatalf("error %v (%T) is not an EINVALID or ETOOLARGE *erasure.Error", err, err)
			}
			if e.Code == erasure.ETOOLARGE && len(body) <= limit {
				t.Fatalf("ETOOLARGE for %d bytes", len(body))
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("accepted %d bytes over the limit", len(body))
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("accepted an invalid write: %v", err)
		}
		if w.Actor != "" || w.ErasedAs != "" {
			t.Fatalf("a body set fields it must not: %+v", w)
		}
		if !w.Deleted {
			if !utf8.Valid(w.Payload) || !json.Valid(w.Payload) {
				t.Fatalf("accepted a payload that is not valid UTF-8 JSON: %q", w.Payload)
			}
			var v any
			if err := json.Unmarshal(w.Payload, &v); err != nil {
				t.Fatal(err)
			}
		}
		// Re-encoded, the write decodes to the same.
		m := map[string]any{"version": w.Version, "deleted": w.Deleted, "reason": w.Reason, "purge": w.Purge, "force": w.Force}
		if w.Payload != nil {
			m["payload"] = w.Payload
		}
		b, _ := json.Marshal(m)
		w2, err := api.DecodeRecordPut(bytes.NewReader(b), 1<<20, "b1")
		if err != nil {
			t.Fatalf("re-encoded write %s refused: %v", b, err)
		}
		if w2.Version != w.Version || w2.Deleted != w.Deleted || w2.Reason != w.Reason || w2.Purge != w.Purge || w2.Force != w.Force || !sameJSON(t, w.Payload, w2.Payload) {
			t.Fatalf("re-encoding changed the write: %+v vs %+v", w, w2)
		}
	})
}

// sameJSON reports whether a and b are the same JSON value (escapes and spacing aside).
func sameJSON(t *testing.T, a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	decode := func(x []byte) any {
		d := json.NewDecoder(bytes.NewReader(x))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%q: %v", x, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}
