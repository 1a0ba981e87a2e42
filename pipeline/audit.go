package pipeline

import (
	"context"

	"erasure"
	"erasure/audit"
)

var _ erasure.AuditService = (*Service)(nil)

// checkpoints returns the store's checkpoint store, or an error when it keeps none.
func (s *Service) checkpoints() (erasure.CheckpointStore, error) {
	cs, ok := s.Store.(erasure.CheckpointStore)
	if !ok || s.Signer == nil {
		return nil, erasure.Errorf(erasure.EINTERNAL, "this server keeps no audit checkpoints (no signing key or store for them)")
	}
	return cs, nil
}

// Checkpoint implements erasure.AuditService.
func (s *Service) Checkpoint(ctx context.Context) (*erasure.AuditCheckpoint, error) {
	cs, err := s.checkpoints()
	if err != nil {
		return nil, err
	}
	rep, err := s.VerifyAudit(ctx)
	if err != nil {
		return nil, err
	}
	if !rep.OK {
		return nil, erasure.Errorf(erasure.ECONFLICT, "the audit trail does not verify, so its head is not signed: %s", rep.Error)
	}
	cp := s.Signer.Checkpoint(rep.Head, s.now())
	if err := cs.SaveAuditCheckpoint(ctx, cp); err != nil {
		return nil, err
	}
	if s.Logger != nil {
		s.Logger.Info("audit checkpoint signed", "block", cp.Block, "events", cp.Events, "hash", cp.Hash)
	}
	return &cp, nil
}

// Checkpoints implements erasure.AuditService.
func (s *Service) Checkpoints(ctx context.Context, limit int) ([]erasure.AuditCheckpoint, error) {
	cs, err := s.checkpoints()
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	return cs.AuditCheckpoints(ctx, limit)
}

// VerifyAudit implements erasure.Service: the whole trail with the deployment's key, and
// through the head of every checkpoint the store keeps (so that a rewrite that left them is
// found without a checkpoint kept elsewhere).
func (s *Service) VerifyAudit(ctx context.Context) (*erasure.AuditReport, error) {
	return s.VerifyAuditFrom(ctx, nil, nil)
}

// VerifyAuditFrom implements erasure.AuditService. Checkpoints given and kept must be signed
// with this deployment's key (when the service has a Signer) and be of this deployment.
func (s *Service) VerifyAuditFrom(ctx context.Context, anchors []erasure.AuditAnchor, given []erasure.AuditCheckpoint) (*erasure.AuditReport, error) {
	if s.Chain == nil {
		return nil, erasure.Errorf(erasure.EINTERNAL, "no audit key to verify the trail with")
	}
	deployment, err := s.deployment(ctx)
	if err != nil {
		return nil, err
	}
	publicKey := ""
	if s.Signer != nil {
		publicKey = s.Signer.PublicKey()
	}
	for _, a := range anchors {
		if _, err := audit.ParseAnchor(audit.FormatAnchor(a)); err != nil {
			return nil, err
		}
	}
	broken := func(head erasure.AuditHead, msg string) *erasure.AuditReport {
		return &erasure.AuditReport{Head: head, Error: msg, PublicKey: publicKey, Anchors: len(anchors)}
	}
	for _, cp := range given {
		if err := audit.VerifyCheckpoint(cp, ""); err != nil {
			return nil, err
		}
		if err := audit.VerifyCheckpoint(cp, publicKey); err != nil {
			return broken(erasure.AuditHead{}, erasure.ErrorMessage(err)), nil
		}
		if cp.Deployment != deployment {
			return broken(erasure.AuditHead{}, "the checkpoint is of deployment "+cp.Deployment+", this server's is "+deployment), nil
		}
		anchors = append(anchors, erasure.AuditAnchor{Block: cp.Block, Hash: cp.Hash})
	}
	if cs, ok := s.Store.(erasure.CheckpointStore); ok {
		kept, err := cs.AuditCheckpoints(ctx, 0)
		if err != nil {
			return nil, err
		}
		for _, cp := range kept {
			if err := audit.VerifyCheckpoint(cp, publicKey); err != nil {
				return broken(erasure.AuditHead{}, "a checkpoint kept in the store is not valid: "+erasure.ErrorMessage(err)), nil
			}
			anchors = append(anchors, erasure.AuditAnchor{Block: cp.Block, Hash: cp.Hash})
		}
	}
	head, err := audit.VerifyTrailFrom(ctx, s.Store, s.Chain, anchors)
	if err != nil && ctx.Err() == nil && erasure.ErrorCode(err) != erasure.EUNAVAILABLE {
		return broken(head, err.Error()), nil
	} else if err != nil {
		return nil, err
	}
	return &erasure.AuditReport{OK: true, Head: head, PublicKey: publicKey, Anchors: len(anchors)}, nil
}
