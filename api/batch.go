package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"erasure"
)

// MaxBatchBody bounds the body of POST /v1/requests:batch: erasure.MaxBatchSubmissions
// submissions of a few identifiers each fit with room to spare.
const MaxBatchBody = 16 << 20

// POST /v1/requests:batch (role submit) takes up to erasure.MaxBatchSubmissions submissions,
// each with its own idempotency key, and stores them in one transaction:
//
//	{"requests":[{"subject":{"user_id":"42"},"reason":"retention","idempotency_key":"u42"}, …]}
//
// (each with the deadline, grace and suppress POST /v1/requests takes)
//
// and answers 200 with a result per submission, in order, each with the status POST
// /v1/requests would have answered it (201 created, 200 the request its idempotency key names,
// 400 a bad submission, 409 a key used for other content), and counts:
//
//	{"results":[{"index":0,"status":201,"id":"r_…"},{"index":1,"status":400,"error":{…}}],
//	 "created":1,"existing":0,"failed":1}
//
// Each submission is checked as strictly as a single one (unknown fields, a type given twice,
// a bad deadline or key are its own 400 and store nothing of it); the batch itself is refused
// whole (and nothing stored) when its body is not such an object, is larger than
// MaxBatchBody, or holds no submission or more than erasure.MaxBatchSubmissions.

// batchWire is the body of POST /v1/requests:batch.
type batchWire struct {
	Requests []json.RawMessage `json:"requests"`
}

// batchItemWire is one submission of a batch.
type batchItemWire struct {
	Subject        *subjectWire `json:"subject"`
	Reason         string       `json:"reason"`
	Deadline       string       `json:"deadline"`
	IdempotencyKey string       `json:"idempotency_key"`
	Grace          *string      `json:"grace"`
	Suppress       *bool        `json:"suppress"`
}

// BatchResponse is the answer to POST /v1/requests:batch.
type BatchResponse struct {
	Results  []BatchItem `json:"results"`
	Created  int         `json:"created"`
	Existing int         `json:"existing"`
	Failed   int         `json:"failed"`
}

// BatchItem is the result of one submission of a batch.
type BatchItem struct {
	Index  int          `json:"index"`
	Status int          `json:"status"`
	ID     string       `json:"id,omitempty"`
	Error  *ErrorDetail `json:"error,omitempty"`
}

func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request) {
	actor, err := s.Authorize(r, RoleSubmit)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	var b batchWire
	if err := DecodeJSON(r, MaxBatchBody, &b); err != nil {
		WriteError(w, r, err)
		return
	}
	switch {
	case len(b.Requests) == 0:
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, `the batch is empty: send {"requests":[…]} with at least one submission`))
		return
	case len(b.Requests) > erasure.MaxBatchSubmissions:
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "the batch has %d submissions: at most %d", len(b.Requests), erasure.MaxBatchSubmissions))
		return
	}
	out := BatchResponse{Results: make([]BatchItem, len(b.Requests))}
	subs := make([]erasure.Submission, 0, len(b.Requests))
	at := make([]int, 0, len(b.Requests))
	now := s.now()
	for i, raw := range b.Requests {
		out.Results[i].Index = i
		sub, err := decodeBatchItem(raw, now)
		if err != nil {
			out.Results[i].fail(err)
			continue
		}
		sub.Actor = actor
		subs = append(subs, sub)
		at = append(at, i)
	}
	if len(subs) > 0 {
		res, err := s.svc.SubmitBatch(r.Context(), subs)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		for j, x := range res {
			item := &out.Results[at[j]]
			switch {
			case x.Err != nil:
				item.fail(x.Err)
			case x.Created:
				item.Status, item.ID = http.StatusCreated, x.Request.ID
			default:
				item.Status, item.ID = http.StatusOK, x.Request.ID
			}
		}
	}
	for _, it := range out.Results {
		switch it.Status {
		case http.StatusCreated:
			out.Created++
		case http.StatusOK:
			out.Existing++
		default:
			out.Failed++
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

// fail records err as the item's result.
func (it *BatchItem) fail(err error) {
	code := erasure.ErrorCode(err)
	msg := erasure.ErrorMessage(err)
	if code == erasure.EINTERNAL {
		msg = "internal error"
	}
	it.Status, it.Error = StatusOf(code), &ErrorDetail{Code: code, Message: msg}
}

// decodeBatchItem decodes one submission of a batch as strictly as DecodeSubmission decodes a
// single one, with its idempotency key checked as the header's would be.
func decodeBatchItem(raw json.RawMessage, now time.Time) (erasure.Submission, error) {
	var w batchItemWire
	if err := decodeJSON(bytes.NewReader(raw), int64(len(raw)), &w); err != nil {
		return erasure.Submission{}, err
	}
	if len(w.IdempotencyKey) > erasure.MaxIdempotencyKey {
		return erasure.Submission{}, erasure.Errorf(erasure.EINVALID, "idempotency_key is longer than %d bytes", erasure.MaxIdempotencyKey)
	}
	for i := 0; i < len(w.IdempotencyKey); i++ {
		if c := w.IdempotencyKey[i]; c < 0x20 || c > 0x7e {
			return erasure.Submission{}, erasure.Errorf(erasure.EINVALID, "idempotency_key must be printable ASCII")
		}
	}
	sw := submissionWire{Subject: w.Subject, Reason: w.Reason, Deadline: w.Deadline, Grace: w.Grace, Suppress: w.Suppress}
	return sw.submission(now, w.IdempotencyKey)
}
