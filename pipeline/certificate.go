package pipeline

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"sort"
	"time"

	"erasure"
	"erasure/audit"
)

// Certifier issues erasure certificates (erasure.Certifier): it reads a completed request, its
// tasks, the audit events that tell what happened to them and the chain's head from the store,
// and signs the statement with the deployment's signing key (audit.LoadSigningKey).
type Certifier struct {
	Store erasure.Store
	Key   ed25519.PrivateKey
	Now   func() time.Time
}

var _ erasure.Certifier = (*Certifier)(nil)

// CertificateKey implements erasure.Certifier.
func (c *Certifier) CertificateKey() erasure.CertificateKey {
	return audit.PublicKeyOf(c.Key.Public().(ed25519.PublicKey))
}

// Certificate implements erasure.Certifier.
func (c *Certifier) Certificate(ctx context.Context, id string) (*erasure.SignedCertificate, error) {
	if !ValidRequestID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %q not found", truncateID(id))
	}
	r, err := c.Store.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Status != erasure.RequestCompleted || r.FinishedAt == nil {
		return nil, erasure.Errorf(erasure.ECONFLICT, "request %s is %s: a certificate is issued once it has completed", r.ID, r.Status)
	}
	deployment, err := c.Store.Deployment(ctx)
	if err != nil {
		return nil, err
	}
	var events []erasure.AuditEvent
	for after := int64(0); ; {
		page, err := c.Store.Audit(ctx, erasure.AuditFilter{RequestID: id, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		events = append(events, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	// The head is read after the events: the trail is append-only, so it follows them.
	head, err := c.Store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	cert := erasure.Certificate{
		Version: erasure.CertificateVersion, Kind: erasure.CertificateKind, Deployment: deployment,
		Request: erasure.CertifiedRequest{ID: r.ID, Status: r.Status, Reason: r.Reason, SubmittedBy: r.SubmittedBy, SubmittedAt: r.CreatedAt,
			Deadline: r.Deadline, CompletedAt: *r.FinishedAt, Late: r.FinishedAt.After(r.Deadline)},
		Subject:  append([]string{}, r.SubjectHashes...),
		Datasets: []erasure.CertifiedDataset{},
		Audit:    erasure.CertifiedAudit{Events: len(events), Head: head},
		IssuedAt: now().UTC().Truncate(time.Millisecond),
	}
	sort.Strings(cert.Subject)
	if n := len(events); n > 0 {
		cert.Audit.FirstEvent, cert.Audit.LastEvent, cert.Audit.LastBlock = events[0].Seq, events[n-1].Seq, events[n-1].Block
	}
	acks := certifiedAcks(events)
	sweeps, _ := c.Store.(erasure.SweepStore)
	for _, t := range r.Tasks {
		d := erasure.CertifiedDataset{Dataset: t.Dataset, Kind: t.Kind, Method: t.Method, Outcome: t.State, Removed: t.Removed, Attempts: t.Attempts,
			VerifiedAt: t.VerifiedAt, FinishedAt: t.FinishedAt, Note: t.Note, Ack: acks[t.ID]}
		if t.SweepID != "" {
			d.Sweep = &erasure.CertifiedSweep{ID: t.SweepID}
			if sweeps != nil {
				sw, err := sweeps.Sweep(ctx, t.SweepID)
				if err != nil && erasure.ErrorCode(err) != erasure.ENOTFOUND {
					return nil, err
				}
				if sw != nil {
					d.Sweep.Mode, d.Sweep.Finished = sw.Mode, sw.Finished
				}
			}
		}
		cert.Datasets = append(cert.Datasets, d)
	}
	sort.SliceStable(cert.Datasets, func(i, j int) bool {
		a, b := cert.Datasets[i], cert.Datasets[j]
		if a.Dataset != b.Dataset {
			return a.Dataset < b.Dataset
		}
		return a.Kind > b.Kind // lookup before erase
	})
	doc, err := audit.SignCertificate(c.Key, &cert)
	if err != nil {
		return nil, err
	}
	return &erasure.SignedCertificate{Certificate: cert, Document: doc}, nil
}

// certifiedAcks returns, by task, the last acknowledgement that completed it.
func certifiedAcks(events []erasure.AuditEvent) map[int64]*erasure.CertifiedAck {
	out := map[int64]*erasure.CertifiedAck{}
	for _, ev := range events {
		if ev.Type != erasure.EventTaskAcked {
			continue
		}
		var d struct {
			Status  erasure.AckStatus `json:"status"`
			Removed int64             `json:"removed"`
			Outcome erasure.TaskState `json:"outcome"`
			Attempt int               `json:"attempt"`
		}
		if json.Unmarshal(ev.Data, &d) != nil || d.Outcome != erasure.TaskDone {
			continue
		}
		out[ev.TaskID] = &erasure.CertifiedAck{At: ev.Time, By: ev.Actor, Status: d.Status, Removed: d.Removed, Attempt: d.Attempt, AuditEvent: ev.Seq}
	}
	return out
}
