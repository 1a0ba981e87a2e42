package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"erasure"
	"erasure/records"
)

// The answers of GET /v1/records/{source}/{id}, the API's hottest route, are written by hand:
// the same bytes encoding/json writes for a records.Record (and for a tombstone's 410), without
// its reflection. recordjson_test.go holds them to encoding/json's output.

var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeRecord answers 200 with rec, as WriteJSON(w, 200, rec) would.
func writeRecord(w http.ResponseWriter, rec *records.Record) {
	bp := recordBufs.Get().(*[]byte)
	b, ok := appendRecord((*bp)[:0], rec)
	if !ok {
		WriteJSON(w, http.StatusOK, rec)
	} else {
		writeJSONBytes(w, http.StatusOK, append(b, '\n'))
	}
	*bp = b[:0]
	recordBufs.Put(bp)
}

// writeGone answers 410 for the tombstone rec, as the map of the record handler's get would.
func writeGone(w http.ResponseWriter, rec *records.Record) {
	bp := recordBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"deleted_at":`...)
	b = appendTime(b, rec.DeletedAt)
	b = append(b, `,"error":{"code":`...)
	b = appendString(b, erasure.EGONE)
	b = append(b, `,"message":"this record has been deleted"},"reason":`...)
	b = appendString(b, rec.Reason)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, rec.Version, 10)
	b = append(b, "}\n"...)
	writeJSONBytes(w, http.StatusGone, b)
	*bp = b[:0]
	recordBufs.Put(bp)
}

// appendRecord appends rec as encoding/json marshals it; false when its payload is not valid
// JSON (the caller then lets encoding/json report it).
func appendRecord(b []byte, rec *records.Record) ([]byte, bool) {
	b = append(b, `{"source":`...)
	b = appendString(b, rec.Source)
	b = append(b, `,"id":`...)
	b = appendString(b, rec.ID)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, rec.Version, 10)
	if len(rec.Payload) > 0 {
		b = append(b, `,"payload":`...)
		var buf bytes.Buffer
		if err := json.Compact(&buf, rec.Payload); err != nil {
			return b, false
		}
		var esc bytes.Buffer
		json.HTMLEscape(&esc, buf.Bytes())
		b = append(b, esc.Bytes()...)
	}
	if rec.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	if rec.DeletedAt != nil {
		b = append(b, `,"deleted_at":`...)
		b = appendTime(b, rec.DeletedAt)
	}
	if rec.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, rec.Reason)
	}
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, &rec.UpdatedAt)
	b = append(b, `,"partition":`...)
	b = appendString(b, rec.Partition)
	return append(b, '}'), true
}

// appendTime appends t as time.Time's MarshalJSON does; null for nil.
func appendTime(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does: HTML-safe, control
// characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
