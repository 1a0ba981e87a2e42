package records_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/records"
)

// TestRecordChecksum_IsStable pins per-record checksums computed before the record store was
// split into packages: ledgers written by earlier builds hold sums of these, and verify
// compares against them.
func TestRecordChecksum_IsStable(t *testing.T) {
	at := time.Date(2016, 5, 1, 12, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		got  records.Checksum
		want string
	}{
		{"Live", records.RecordChecksum("sierra", "b0001", 3, []byte(`{"title":"Émile","n":[1,2]}`), nil, ""), "dd4938fdc7099249"},
		{"Tombstone", records.RecordChecksum("sierra", "b0002", 7, []byte(`{"title":"kept"}`), &at, "withdrawn"), "64bac030401d32de"},
		{"Purged", records.RecordChecksum("catalogue.x", "id with spaces ✓", 12, nil, &at, "erasure request"), "e730916463968245"},
	} {
		if tc.got.String() != tc.want {
			t.Errorf("%s: checksum %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}

func TestChecksum_DependsOnEveryField(t *testing.T) {
	at := time.Date(2016, 5, 1, 0, 0, 0, 0, time.UTC)
	later := at.Add(time.Millisecond)
	base := records.RecordChecksum("s", "a", 1, []byte(`{}`), &at, "r")
	for name, c := range map[string]records.Checksum{
		"Source":    records.RecordChecksum("t", "a", 1, []byte(`{}`), &at, "r"),
		"ID":        records.RecordChecksum("s", "b", 1, []byte(`{}`), &at, "r"),
		"Version":   records.RecordChecksum("s", "a", 2, []byte(`{}`), &at, "r"),
		"Payload":   records.RecordChecksum("s", "a", 1, []byte(`{"x":1}`), &at, "r"),
		"Purged":    records.RecordChecksum("s", "a", 1, nil, &at, "r"),
		"DeletedAt": records.RecordChecksum("s", "a", 1, []byte(`{}`), &later, "r"),
		"Reason":    records.RecordChecksum("s", "a", 1, []byte(`{}`), &at, "q"),
		"Live":      records.RecordChecksum("s", "a", 1, []byte(`{}`), nil, ""),
		// Length prefixes: moving a byte from one field to the next changes the sum.
		"Boundary": records.RecordChecksum("sa", "", 1, []byte(`{}`), &at, "r"),
	} {
		if c == base {
			t.Errorf("changing %s leaves the checksum at %s", name, c)
		}
	}
	var c records.Checksum
	if err := json.Unmarshal([]byte(`"`+base.String()+`"`), &c); err != nil || c != base {
		t.Fatalf("JSON round trip: %s, %v; want %s", c, err, base)
	}
}

func TestRawRecord_AppendJSONDecodesAsTheRecord(t *testing.T) {
	at := time.Date(2016, 5, 1, 12, 30, 0, 123e6, time.UTC)
	updated := at.Add(time.Hour)
	for name, rec := range map[string]records.Record{
		"Live":      {Source: "sierra", ID: "b1", Version: 2, Payload: json.RawMessage(`{"title":"<Émile & \"co\">"}`), UpdatedAt: updated},
		"Tombstone": {Source: "sierra", ID: "b\t2", Version: 3, Payload: json.RawMessage(`[1,2]`), Deleted: true, DeletedAt: &at, Reason: "with\ndrawn", UpdatedAt: updated},
		"Purged":    {Source: "sierra", ID: "ß", Version: 4, Deleted: true, DeletedAt: &at, Reason: "erasure request", UpdatedAt: updated},
	} {
		t.Run(name, func(t *testing.T) {
			raw := records.Raw(&rec)
			line := raw.AppendJSON([]byte("prefix"))
			if !strings.HasPrefix(string(line), "prefix") {
				t.Fatalf("AppendJSON dropped what was there: %s", line)
			}
			var got records.Record
			if err := json.Unmarshal(line[len("prefix"):], &got); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			got.Partition = rec.Partition
			want, _ := json.Marshal(rec)
			have, _ := json.Marshal(got)
			if string(want) != string(have) {
				t.Fatalf("decoded %s\nwant    %s", have, want)
			}
			if raw.Checksum() != records.RecordChecksum(rec.Source, rec.ID, rec.Version, rec.Payload, rec.DeletedAt, rec.Reason) {
				t.Fatal("Raw(rec).Checksum differs from RecordChecksum")
			}
		})
	}
}

func TestWrite_Validate(t *testing.T) {
	long := strings.Repeat("r", records.MaxReasonBytes+1)
	for _, tc := range []struct {
		name string
		w    records.Write
		want string // "" valid, else part of the message
	}{
		{"Put", records.Write{ID: "b1", Payload: json.RawMessage(`{"a":1}`)}, ""},
		{"PutWithVersion", records.Write{ID: "b1", Version: 4, Payload: json.RawMessage(`[]`)}, ""},
		{"Delete", records.Write{ID: "b1", Deleted: true, Reason: "withdrawn", Purge: true}, ""},
		{"EmptyID", records.Write{Payload: json.RawMessage(`{}`)}, "empty"},
		{"NonPrintableID", records.Write{ID: "a\x01b", Payload: json.RawMessage(`{}`)}, "non-printable"},
		{"LongID", records.Write{ID: strings.Repeat("i", records.MaxIDBytes+1), Payload: json.RawMessage(`{}`)}, "longer than"},
		{"NegativeVersion", records.Write{ID: "b1", Version: -1, Payload: json.RawMessage(`{}`)}, "version"},
		{"DeleteWithPayload", records.Write{ID: "b1", Deleted: true, Payload: json.RawMessage(`{}`)}, "no payload"},
		{"LongReason", records.Write{ID: "b1", Deleted: true, Reason: long}, "reason"},
		{"NoPayload", records.Write{ID: "b1"}, "payload is required"},
		{"NullPayload", records.Write{ID: "b1", Payload: json.RawMessage(`null`)}, "payload is required"},
		{"BadJSON", records.Write{ID: "b1", Payload: json.RawMessage(`{"a":`)}, "not valid JSON"},
		{"PurgeWithoutDelete", records.Write{ID: "b1", Purge: true, Payload: json.RawMessage(`{}`)}, "go with deleted"},
		{"ReasonWithoutDelete", records.Write{ID: "b1", Reason: "x", Payload: json.RawMessage(`{}`)}, "go with deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.w.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want EINVALID with %q", err, tc.want)
			}
		})
	}
}

func TestValidSourceAndPartition(t *testing.T) {
	for _, s := range []string{"sierra", "a", "catalogue.x_1-2", strings.Repeat("a", 64)} {
		if err := records.ValidSource(s); err != nil {
			t.Errorf("ValidSource(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "Sierra", "-a", "a/b", "x' OR 1=1--", strings.Repeat("a", 65)} {
		if err := records.ValidSource(s); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("ValidSource(%q) = %v, want EINVALID", s, err)
		}
	}
	for _, p := range []string{records.Live, records.Deleted} {
		if err := records.ValidPartition(p); err != nil {
			t.Errorf("ValidPartition(%q) = %v", p, err)
		}
	}
	if err := records.ValidPartition("records_live; DROP TABLE x"); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Errorf("ValidPartition accepted a table name: %v", err)
	}
}
