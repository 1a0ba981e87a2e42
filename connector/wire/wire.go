// Package wire is the wire contract of async datasets, version 2 (docs/async.md,
// docs/schemas): the JSON of a command as erasure sends it, and the strict decoding of an
// acknowledgement, the same on every transport (NATS, Kafka, the HTTP API's body aside).
package wire

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"erasure"
	"erasure/internal/strictjson"
)

// MaxAckBytes is the largest acknowledgement accepted, in bytes.
const MaxAckBytes = 64 << 10

// MaxAckError is the longest "error" text an acknowledgement may carry, in bytes.
const MaxAckError = 1024

// wireCommand is the JSON form of a command (docs/async.md, docs/schemas/command.schema.json).
type wireCommand struct {
	TaskID      int64          `json:"task_id"`
	RequestID   string         `json:"request_id"`
	Dataset     string         `json:"dataset"`
	Attempt     int            `json:"attempt"`
	Dispatch    string         `json:"dispatch"`
	Identifiers map[string]any `json:"identifiers"`
	Deadline    string         `json:"deadline"`
	AckSubject  string         `json:"ack_subject,omitempty"`
	AckTopic    string         `json:"ack_topic,omitempty"`
	Canary      bool           `json:"canary,omitempty"`
}

// AckTo says where a command's acknowledgement goes: a NATS subject or a Kafka topic.
type AckTo struct {
	Subject string
	Topic   string
}

// EncodeCommand returns the JSON form of c as documented in docs/async.md, with ack_subject or
// ack_topic from ack, and "canary": true for a canary's command (absent otherwise). Only identifiers whose type is in keys are included; a type with one
// value maps to a string, a type with several values to an array of strings. It returns a
// *erasure.PermanentError when the command is incomplete or carries no identifier of keys:
// sending it again would not help.
func EncodeCommand(c erasure.Command, keys []string, ack AckTo) ([]byte, error) {
	switch {
	case c.TaskID <= 0:
		return nil, erasure.Permanentf("command without a task id")
	case c.Attempt <= 0:
		return nil, erasure.Permanentf("command for task %d without an attempt number", c.TaskID)
	case !erasure.ValidDispatchID(c.Dispatch):
		return nil, erasure.Permanentf("command for task %d without a dispatch id", c.TaskID)
	case c.Dataset == "" || c.RequestID == "":
		return nil, erasure.Permanentf("command for task %d without a dataset or request id", c.TaskID)
	case (ack.Subject == "") == (ack.Topic == ""):
		return nil, erasure.Permanentf("command for task %d needs one place for its acknowledgement (a subject or a topic)", c.TaskID)
	case c.Deadline.IsZero():
		return nil, erasure.Permanentf("command for task %d without a deadline", c.TaskID)
	}
	ids := map[string]any{}
	for _, typ := range keys {
		vals := c.Identifiers.Values(typ)
		switch len(vals) {
		case 0:
		case 1:
			ids[typ] = vals[0]
		default:
			ids[typ] = vals
		}
	}
	if len(ids) == 0 {
		return nil, erasure.Permanentf("command for task %d has no identifier of the types the dataset needs", c.TaskID)
	}
	return json.Marshal(wireCommand{
		TaskID:      c.TaskID,
		RequestID:   c.RequestID,
		Dataset:     c.Dataset,
		Attempt:     c.Attempt,
		Dispatch:    c.Dispatch,
		Identifiers: ids,
		Deadline:    c.Deadline.UTC().Format(time.RFC3339),
		AckSubject:  ack.Subject,
		AckTopic:    ack.Topic,
		Canary:      c.Canary,
	})
}

// wireAck is the JSON form of an acknowledgement; pointers tell a missing field from a zero.
type wireAck struct {
	TaskID   *int64  `json:"task_id"`
	Dispatch *string `json:"dispatch"`
	Status   *string `json:"status"`
	Removed  *int64  `json:"removed"`
	Error    *string `json:"error"`
}

// DecodeAck decodes an acknowledgement strictly (docs/schemas/ack.schema.json), with the strict
// decoder every JSON input of erasure goes through (internal/strictjson): one JSON object, valid
// UTF-8 without lone surrogates, no key twice, no unknown field nor field spelt in another
// case, a positive task_id, the command's dispatch id, status "done" or "failed", removed not
// negative, and an error text (at most MaxAckError bytes of UTF-8) required with
// "failed". It returns an EINVALID *erasure.Error saying what is wrong; the message never
// quotes the input. Whether the dispatch id names a dispatch of the task is for the pipeline
// to check (erasure.DispatchAttempt).
func DecodeAck(data []byte) (erasure.Ack, error) {
	if len(data) > MaxAckBytes {
		return erasure.Ack{}, erasure.Errorf(erasure.ETOOLARGE, "acknowledgement larger than %d bytes", MaxAckBytes)
	}
	var w wireAck
	if err := strictjson.Unmarshal(data, &w); err != nil {
		return erasure.Ack{}, erasure.Errorf(erasure.EINVALID, "acknowledgement is not valid: %s", erasure.ErrorMessage(err))
	}
	var a erasure.Ack
	switch {
	case w.TaskID == nil:
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement without task_id")
	case *w.TaskID <= 0:
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement task_id must be a positive integer")
	case w.Dispatch == nil:
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement without dispatch (the command's dispatch id)")
	case !erasure.ValidDispatchID(*w.Dispatch):
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement dispatch must be the command's dispatch id (%d hex digits)", erasure.DispatchIDLen)
	case w.Status == nil:
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement without status")
	case *w.Status != "done" && *w.Status != "failed":
		return a, erasure.Errorf(erasure.EINVALID, `acknowledgement status must be "done" or "failed"`)
	case w.Removed != nil && *w.Removed < 0:
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement removed must not be negative")
	case w.Error != nil && (len(*w.Error) > MaxAckError || !utf8.ValidString(*w.Error)):
		return a, erasure.Errorf(erasure.EINVALID, "acknowledgement error must be UTF-8 text of at most %d bytes", MaxAckError)
	case *w.Status == "failed" && (w.Error == nil || *w.Error == ""):
		return a, erasure.Errorf(erasure.EINVALID, `acknowledgement with status "failed" needs an error saying why`)
	}
	a.TaskID, a.Dispatch, a.Status = *w.TaskID, *w.Dispatch, erasure.AckStatus(*w.Status)
	if w.Removed != nil {
		a.Removed = *w.Removed
	}
	if w.Error != nil {
		a.Error = *w.Error
	}
	return a, nil
}
