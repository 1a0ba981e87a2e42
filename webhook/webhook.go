// Package webhook is the erasure.Subscriber of the registry's `notify:` entries: it turns the
// audit events an endpoint asked for into JSON messages of the outbox, and signs each delivery
// attempt with the endpoint's secret (see docs/webhooks.md).
//
// A message tells what happened to which request, task or sweep, by id, dataset and state:
// never a subject's identifier, never a free-text error (a connector's or an owner's message
// could quote anything); the receiver asks the API for the rest.
//
// # Signature
//
// Every POST carries
//
//	Erasure-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// where t is the attempt's time in Unix seconds and v1 the hex HMAC-SHA256, keyed with the
// endpoint's secret, of t, a full stop and the body exactly as sent ("1767225600.{...}"). A
// receiver recomputes it over the raw body (Verify does), compares in constant time, and
// refuses a t further than its replay window (DefaultTolerance, 5 minutes) from its own clock;
// it de-duplicates on the payload's id, since a message is delivered at least once. Each
// attempt is signed anew, so a retried message carries a fresh t.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// Headers of a delivery.
const (
	// HeaderSignature carries "t=UNIX,v1=HEX" (see the package documentation).
	HeaderSignature = "Erasure-Signature"
	// HeaderEvent names the notification (request.completed...).
	HeaderEvent = "Erasure-Event"
	// HeaderDelivery is the outbox message's id: the same for every attempt of one message.
	HeaderDelivery = "Erasure-Delivery"
)

// DefaultTolerance is the replay window receivers should allow between a signature's t and
// their clock.
const DefaultTolerance = 5 * time.Minute

// Endpoint is one `notify:` entry of the registry.
type Endpoint struct {
	// Name names the endpoint: its messages' subscriber is "webhook:" + Name.
	Name string
	// URL receives the POSTs.
	URL string
	// Events are the notifications sent (erasure.Notifications).
	Events []string
	// Secret keys the signatures.
	Secret string
	// MaxAttempts, Backoff and Timeout are the delivery policy (zero: the deliverer's).
	MaxAttempts int
	Backoff     erasure.Backoff
	Timeout     time.Duration
}

// Subscriber is an Endpoint as an erasure.Subscriber.
type Subscriber struct {
	ep Endpoint
	// deployment prefixes payload ids, so that a receiver of several deployments tells their
	// events apart.
	deployment string
}

var _ erasure.Subscriber = (*Subscriber)(nil)

// New returns the subscriber of ep. deployment (the store's deployment id, may be empty) scopes
// the payloads' ids.
func New(ep Endpoint, deployment string) *Subscriber {
	if len(deployment) > 12 {
		deployment = deployment[:12]
	}
	return &Subscriber{ep: ep, deployment: deployment}
}

// Name implements erasure.Subscriber: "webhook:" and the endpoint's name.
func (s *Subscriber) Name() string { return "webhook:" + s.ep.Name }

// Endpoint returns the endpoint s sends to.
func (s *Subscriber) Endpoint() Endpoint { return s.ep }

// Delivery returns the endpoint's delivery policy; zero values leave the deliverer's.
func (s *Subscriber) Delivery() (maxAttempts int, backoff erasure.Backoff, timeout time.Duration) {
	return s.ep.MaxAttempts, s.ep.Backoff, s.ep.Timeout
}

// Payload is the JSON body of a webhook POST (version 1). Request is set for request.* and
// task.failed, Task for task.failed, Sweep for sweep.failed.
type Payload struct {
	// ID identifies the event (the deployment and the audit event's sequence): the same on
	// every attempt and for every endpoint; receivers de-duplicate on it.
	ID string `json:"id"`
	// Type is the notification: request.completed, request.failed, request.overdue,
	// task.failed or sweep.failed.
	Type string `json:"type"`
	// Time is when it happened.
	Time    time.Time    `json:"time"`
	Request *RequestInfo `json:"request,omitempty"`
	Task    *TaskInfo    `json:"task,omitempty"`
	Sweep   *SweepInfo   `json:"sweep,omitempty"`
}

// RequestInfo is what a payload says of a request.
type RequestInfo struct {
	ID string `json:"id"`
	// Status is the request's status the event led to (completed, failed) or, for
	// request.overdue, the status it had.
	Status string `json:"status,omitempty"`
	// Deadline is the request's deadline (request.overdue).
	Deadline *time.Time `json:"deadline,omitempty"`
	// Tasks counts the request's tasks by status, Removed what they erased (request.completed
	// and request.failed).
	Tasks   map[string]int `json:"tasks,omitempty"`
	Removed *int64         `json:"removed,omitempty"`
}

// TaskInfo is what a payload says of a task (task.failed).
type TaskInfo struct {
	ID      int64  `json:"id"`
	Dataset string `json:"dataset"`
	Attempt int    `json:"attempt,omitempty"`
	// Via is how the failure came: "attempt" (the executor's call) or "ack" (the async
	// dataset's owner reported it).
	Via string `json:"via"`
}

// SweepInfo is what a payload says of a sweep (sweep.failed).
type SweepInfo struct {
	ID      string `json:"id"`
	Dataset string `json:"dataset"`
	// Requeued counts the tasks that wait for the next sweep.
	Requeued int `json:"requeued"`
}

// Messages implements erasure.Subscriber: one message when ev is a notification the endpoint
// asked for, none otherwise. Messages of a request are keyed by its id, those of a sweep by
// "sweep:" and its dataset. It reads nothing and never fails but on a malformed event.
func (s *Subscriber) Messages(ctx context.Context, ev erasure.AuditEvent) ([]erasure.OutboxMessage, error) {
	name, ok := erasure.NotificationOf(ev)
	if !ok || !slices.Contains(s.ep.Events, name) {
		return nil, nil
	}
	p, key, err := s.payload(name, ev)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: audit event %d: %w", s.ep.Name, ev.Seq, err)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return []erasure.OutboxMessage{{Subscriber: s.Name(), Key: key, Event: name, URL: s.ep.URL, Body: body, AuditSeq: ev.Seq}}, nil
}

func (s *Subscriber) payload(name string, ev erasure.AuditEvent) (Payload, string, error) {
	id := strconv.FormatInt(ev.Seq, 10)
	if s.deployment != "" {
		id = s.deployment + "-" + id
	}
	p := Payload{ID: id, Type: name, Time: ev.Time.UTC()}
	key := ev.RequestID
	switch name {
	case erasure.NotifyRequestCompleted, erasure.NotifyRequestFailed:
		var d struct {
			Tasks   map[string]int `json:"tasks"`
			Removed int64          `json:"removed"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return p, "", err
		}
		p.Request = &RequestInfo{ID: ev.RequestID, Status: strings.TrimPrefix(name, "request."), Tasks: d.Tasks, Removed: &d.Removed}
	case erasure.NotifyRequestOverdue:
		var d struct {
			Status   string    `json:"status"`
			Deadline time.Time `json:"deadline"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return p, "", err
		}
		p.Request = &RequestInfo{ID: ev.RequestID, Status: d.Status, Deadline: &d.Deadline}
	case erasure.NotifyTaskFailed:
		var d struct {
			Attempt int `json:"attempt"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return p, "", err
		}
		via := "attempt"
		if ev.Type == erasure.EventTaskAcked {
			via = "ack"
		}
		p.Request = &RequestInfo{ID: ev.RequestID}
		p.Task = &TaskInfo{ID: ev.TaskID, Dataset: ev.Dataset, Attempt: d.Attempt, Via: via}
	case erasure.NotifySweepFailed:
		var d struct {
			Sweep    string  `json:"sweep"`
			Requeued []int64 `json:"requeued"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return p, "", err
		}
		p.Sweep = &SweepInfo{ID: d.Sweep, Dataset: ev.Dataset, Requeued: len(d.Requeued)}
		key = "sweep:" + ev.Dataset
	}
	if key == "" {
		return p, "", fmt.Errorf("a %s event without a request", name)
	}
	return p, key, nil
}

// Headers implements erasure.Subscriber: the content type, the notification, the delivery id
// and the signature of m's body at now.
func (s *Subscriber) Headers(m erasure.OutboxMessage, now time.Time) (map[string]string, error) {
	return map[string]string{
		"Content-Type":  "application/json",
		HeaderEvent:     m.Event,
		HeaderDelivery:  strconv.FormatInt(m.ID, 10),
		HeaderSignature: Sign(s.ep.Secret, m.Body, now),
	}, nil
}

// Sign returns the Erasure-Signature value of body sent at now, keyed with secret.
func Sign(secret string, body []byte, now time.Time) string {
	t := now.Unix()
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(mac(secret, t, body))
}

func mac(secret string, t int64, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strconv.FormatInt(t, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks an Erasure-Signature header value against the raw body a receiver got at now:
// one of its v1 signatures must be body's under secret, and its t within tolerance of now
// (DefaultTolerance when zero). It returns an error saying what is wrong.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var t int64 = -1
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("signature: t is not a number")
			}
			t = n
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if t < 0 || len(sigs) == 0 {
		return fmt.Errorf("signature: expected t=UNIX,v1=HEX")
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature: t is %s away from now, outside the replay window of %s", d.Round(time.Second).Abs(), tolerance)
	}
	want := mac(secret, t, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return fmt.Errorf("signature: no v1 matches the body")
}
