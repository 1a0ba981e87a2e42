package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

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
