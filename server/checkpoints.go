package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"erasure"
	"erasure/pipeline"
)

// Checkpointer signs a checkpoint of the audit chain's head every interval (when the chain
// has grown since the last one), keeps it in the store and, with a directory, writes it there
// too: checkpoint-BLOCK.json and latest.json, to be shipped away from the server (docs/audit.md).
type Checkpointer struct {
	Service *pipeline.Service
	Every   time.Duration
	Dir     string
	Logger  *slog.Logger
	group
}

// Checkpointer returns the checkpointer of s, by the configuration's audit section.
func (s *Server) Checkpointer() *Checkpointer {
	return &Checkpointer{Service: s.Service, Every: s.Config.Audit.Every, Dir: s.Config.Audit.CheckpointDir, Logger: s.Logger.WithGroup("audit")}
}

// Start signs a checkpoint now and every interval until ctx is cancelled. Failures are logged
// (a trail that does not verify is an error in the log every interval), never fatal.
func (c *Checkpointer) Start(ctx context.Context) error {
	if c.Every <= 0 {
		return nil
	}
	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return erasure.Errorf(erasure.EINVALID, "audit.checkpoint_dir: %v", err)
		}
	}
	c.goRun(func() {
		t := time.NewTicker(c.Every)
		defer t.Stop()
		for {
			if _, err := c.Once(ctx); err != nil && ctx.Err() == nil {
				c.Logger.Error("audit checkpoint not signed", "err", erasure.ErrorMessage(err))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// Once signs a checkpoint unless the last one kept already names the chain's head, and writes
// it to the directory. It returns the checkpoint signed, nil when none was needed.
func (c *Checkpointer) Once(ctx context.Context) (*erasure.AuditCheckpoint, error) {
	last, err := c.Service.Checkpoints(ctx, 1)
	if err != nil {
		return nil, err
	}
	head, err := c.Service.Store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if len(last) > 0 && last[0].Block == head.Block && last[0].Hash == head.Hash {
		return nil, nil
	}
	cp, err := c.Service.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if c.Dir != "" {
		if err := WriteCheckpoint(c.Dir, cp); err != nil {
			return cp, err
		}
	}
	return cp, nil
}

// WriteCheckpoint writes cp into dir as checkpoint-BLOCK.json and latest.json, each through a
// temporary file renamed into place.
func WriteCheckpoint(dir string, cp *erasure.AuditCheckpoint) error {
	b, _ := json.MarshalIndent(cp, "", "  ")
	b = append(b, '\n')
	for _, name := range []string{fmt.Sprintf("checkpoint-%d.json", cp.Block), "latest.json"} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
