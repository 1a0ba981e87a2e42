package records

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// RawRecord is a record as a store holds it, times in unix milliseconds: what a scan yields,
// what a reindex streams and what a checksum covers. A store may reuse it (and its Payload)
// from one call of a scan's callback to the next.
type RawRecord struct {
	Source, ID string
	Version    int64
	// Deleted marks a tombstone; DeletedAt and Reason are then set.
	Deleted   bool
	DeletedAt int64
	Reason    string
	UpdatedAt int64
	// Payload is the record's JSON, nil once purged.
	Payload []byte
}

// AppendJSON appends the record's JSON (the same fields as Record's, without partition) to b.
func (r *RawRecord) AppendJSON(b []byte) []byte {
	b = append(b, `{"source":`...)
	b = appendString(b, r.Source)
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	if r.Payload != nil {
		b = append(b, `,"payload":`...)
		b = append(b, r.Payload...)
	}
	if r.Deleted {
		b = append(b, `,"deleted":true,"deleted_at":"`...)
		b = time.UnixMilli(r.DeletedAt).UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","reason":`...)
		b = appendString(b, r.Reason)
	}
	b = append(b, `,"updated_at":"`...)
	b = time.UnixMilli(r.UpdatedAt).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// Raw returns rec as a RawRecord (sharing its payload).
func Raw(rec *Record) RawRecord {
	raw := RawRecord{Source: rec.Source, ID: rec.ID, Version: rec.Version, UpdatedAt: rec.UpdatedAt.UnixMilli(), Payload: rec.Payload}
	if rec.DeletedAt != nil {
		raw.Deleted, raw.DeletedAt, raw.Reason = true, rec.DeletedAt.UnixMilli(), rec.Reason
	}
	return raw
}

// appendString appends s as a JSON string: a fast path for plain ASCII, encoding/json for
// the rest.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Segment is a range of one source's ids in a partition: From ≤ id < Before, where an empty
// From is the start and an empty Before the end.
type Segment struct {
	Source string `json:"source"`
	From   string `json:"from,omitempty"`
	Before string `json:"before,omitempty"`
	// Records is how many records the segment held when it was planned.
	Records int64 `json:"records"`
}

// Reader is where a reindex reads records: a record store (Service), or the API through
// client.RecordsReader.
type Reader interface {
	// Sources lists the sources that have records, in order.
	Sources(ctx context.Context) ([]string, error)
	// Segments splits a source's records in partition into at most n id ranges of about the
	// same size that cover every id exactly once, and returns their total. EINVALID for a bad
	// source or partition; a source without records is one empty segment.
	Segments(ctx context.Context, partition, source string, n int) ([]Segment, int64, error)
	// ScanLines calls fn with each record of seg whose id is above after (when set), in id
	// order, at most limit (0: all), as a JSON line (RawRecord.AppendJSON) without its
	// newline; the line is only valid during the call. An error of fn stops the scan and is
	// returned.
	ScanLines(ctx context.Context, partition string, seg Segment, after string, limit int64, fn func(id string, line []byte) error) error
	// Lookup returns one record's JSON line and partition; found is false for an unknown id.
	Lookup(ctx context.Context, source, id string) (line []byte, partition string, found bool, err error)
}

// Batch is what a Sink receives: Records JSON lines, each ended by a newline, in Body.
type Batch struct {
	Body    []byte
	Records int
	// Segment and LastID say where the batch ends, for logs.
	Segment int
	LastID  string
}

// Sink receives reindex batches. Send may be called from several goroutines at once; it
// must not keep b.Body after returning. An error stops the reindex (the checkpoint then
// resumes after the last batch that was sent).
type Sink interface {
	Send(ctx context.Context, b *Batch) error
	Close() error
}

// ReindexOptions drive a reindex.
type ReindexOptions struct {
	// Source limits the reindex to one source (default: every source).
	Source string
	// IDs selects specific records (specific mode); ids not live are warned about.
	IDs []string
	// Limit stops after this many records (partial mode).
	Limit int64
	// IncludeDeleted also streams the deleted partition, after live.
	IncludeDeleted bool
	// BatchRecords and BatchBytes bound each batch (defaults 1000 and 4 MiB); a record larger
	// than BatchBytes travels alone.
	BatchRecords int
	BatchBytes   int
	// Parallel is the number of segments read at once per source (default 4).
	Parallel int
	// Checkpoint is a file recording each segment's progress; when it exists and was made by
	// the same reindex, the reindex resumes from it. It is removed when the reindex ends.
	Checkpoint string
	// Progress is called about every ProgressEvery (default 1s) and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Warn is called for each specific id that cannot be streamed.
	Warn func(msg string)
}

// Progress is a reindex's progress.
type Progress struct {
	Records int64         `json:"records"`
	Bytes   int64         `json:"bytes"`
	Total   int64         `json:"total"`
	Elapsed time.Duration `json:"elapsed"`
	// Rate is records per second; ETA is the time left at that rate.
	Rate float64       `json:"rate"`
	ETA  time.Duration `json:"eta"`
	Done bool          `json:"done"`
}

// ReindexReport is what a reindex did.
type ReindexReport struct {
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	Batches  int64         `json:"batches"`
	Segments int           `json:"segments"`
	Missing  int           `json:"missing"`
	Resumed  bool          `json:"resumed"`
	Elapsed  time.Duration `json:"elapsed"`
}
