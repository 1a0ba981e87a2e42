package wire_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"erasure"
	"erasure/connector/wire"
)

const dispatch = "00112233445566778899aabbccddeeff"

func TestDecodeAck_Strict(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"DuplicateStatus", `{"task_id":1,"dispatch":"` + dispatch + `","status":"failed","error":"x","status":"done"}`, "twice"},
		{"DuplicateTaskID", `{"task_id":1,"task_id":2,"dispatch":"` + dispatch + `","status":"done"}`, "twice"},
		{"DuplicateAfterUnescape", `{"task_id":1,"dispatch":"` + dispatch + `","status":"done","st\u0061tus":"failed","error":"x"}`, "twice"},
		{"FieldInOtherCase", `{"Task_ID":1,"dispatch":"` + dispatch + `","status":"done"}`, "case-sensitive"},
		{"StatusUpperCase", `{"task_id":1,"dispatch":"` + dispatch + `","STATUS":"done"}`, "case-sensitive"},
		{"InvalidUTF8Error", "{\"task_id\":1,\"dispatch\":\"" + dispatch + "\",\"status\":\"failed\",\"error\":\"disk \xff full\"}", "UTF-8"},
		{"LoneSurrogateError", `{"task_id":1,"dispatch":"` + dispatch + `","status":"failed","error":"\ud800"}`, "surrogate"},
		{"Trailing", `{"task_id":1,"dispatch":"` + dispatch + `","status":"done"}{}`, "after"},
		{"Unknown", `{"task_id":1,"dispatch":"` + dispatch + `","status":"done","extra":1}`, `unknown field "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := wire.DecodeAck([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted %+v", a)
			}
			if erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want EINVALID saying %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeAck checks that the acknowledgement decoder never panics, fails only with EINVALID
// or ETOOLARGE, never quotes its input in an error, and that what it accepts is a complete,
// valid acknowledgement that encodes and decodes back to itself. Run it with
//
//	go test -run XXX -fuzz FuzzDecodeAck -fuzztime 60s ./connector/wire
func FuzzDecodeAck(f *testing.F) {
	for _, s := range []string{
		`{"task_id":1,"dispatch":"` + dispatch + `","status":"done","removed":2}`,
		`{"task_id":3,"dispatch":"` + dispatch + `","status":"failed","error":"quota"}`,
		`{"task_id":1,"dispatch":"` + dispatch + `","status":"done","status":"failed"}`,
		`{"task_id":1,"dispatch":"` + dispatch + `","Status":"done"}`,
		`{"task_id":1,"dispatch":"` + dispatch + `","status":"failed","error":"\ud800"}`,
		`{"task_id":9223372036854775807,"dispatch":"` + dispatch + `","status":"done","removed":0}`,
		`null`, `[]`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := wire.DecodeAck(data)
		if err != nil {
			var e *erasure.Error
			if !errors.As(err, &e) || (e.Code != erasure.EINVALID && e.Code != erasure.ETOOLARGE) {
				t.Fatalf("error %v (%T) is not an EINVALID or ETOOLARGE *erasure.Error", err, err)
			}
			if e.Code == erasure.ETOOLARGE && len(data) <= wire.MaxAckBytes {
				t.Fatalf("ETOOLARGE for %d bytes", len(data))
			}
			if len(data) >= 8 && strings.Contains(e.Message, string(data)) {
				t.Fatalf("error quotes the input: %q", e.Message)
			}
			return
		}
		switch {
		case len(data) > wire.MaxAckBytes:
			t.Fatalf("accepted %d bytes", len(data))
		case a.TaskID <= 0, !erasure.ValidDispatchID(a.Dispatch), a.Removed < 0:
			t.Fatalf("accepted an incomplete acknowledgement %+v", a)
		case a.Status != erasure.AckDone && a.Status != erasure.AckFailed:
			t.Fatalf("accepted status %q", a.Status)
		case a.Status == erasure.AckFailed && a.Error == "":
			t.Fatalf("accepted a failure without an error")
		case !utf8.ValidString(a.Error) || strings.ContainsRune(a.Error, utf8.RuneError) && !strings.Contains(string(data), "\uFFFD") && !strings.Contains(strings.ToLower(string(data)), `\ufffd`):
			t.Fatalf("the error text holds a replacement character the input did not: %q", a.Error)
		}
		// What was accepted encodes back to an acknowledgement that decodes to the same.
		m := map[string]any{"task_id": a.TaskID, "dispatch": a.Dispatch, "status": a.Status, "removed": a.Removed}
		if a.Error != "" {
			m["error"] = a.Error
		}
		b, _ := json.Marshal(m)
		again, err := wire.DecodeAck(b)
		if err != nil || again != a {
			t.Fatalf("re-encoded %s decodes to %+v, %v; want %+v", b, again, err, a)
		}
	})
}
