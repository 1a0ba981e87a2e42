package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"erasure"
	"erasure/audit"
)

func init() {
	command("audit verify", "have the server verify its audit trail: audit verify [--request ID] [--expect-head BLOCK:HASH]... [--checkpoint FILE]...", runAuditVerify)
	command("audit checkpoint", "have the server sign the head of its audit trail, to keep elsewhere: audit checkpoint [--out FILE]", runAuditCheckpoint)
}

// listFlag collects the values of a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("audit verify", stderr)
	request := fs.String("request", "", "also count the events of this request (the whole chain is verified: it is one chain)")
	var heads, files listFlag
	fs.Var(&heads, "expect-head", "`BLOCK:HASH` the chain must pass through (a head printed earlier); repeatable")
	fs.Var(&files, "checkpoint", "a checkpoint `file` (erasure audit checkpoint --out) the chain must pass through; repeatable")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("usage: erasure audit verify [--request ID] [--expect-head BLOCK:HASH]... [--checkpoint FILE]...")
	}
	for _, h := range heads {
		if _, err := audit.ParseAnchor(h); err != nil {
			return usageError("--expect-head " + erasure.ErrorMessage(err))
		}
	}
	var cps []erasure.AuditCheckpoint
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return erasure.Errorf(erasure.EINVALID, "checkpoint: %v", err)
		}
		// Checked here too: a checkpoint whose signature fails was altered after it was made.
		cp, err := audit.ParseCheckpoint(data)
		if err != nil {
			return erasure.Errorf(erasure.EINVALID, "checkpoint %s: %s", f, erasure.ErrorMessage(err))
		}
		cps = append(cps, cp)
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	// The server verifies: the chain is keyed with the deployment's audit key.
	var rep *erasure.AuditReport
	if len(heads) > 0 || len(cps) > 0 {
		rep, err = c.VerifyAuditFrom(ctx, heads, cps)
	} else {
		rep, err = c.VerifyAudit(ctx)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("audit trail BROKEN: %s (verified up to block %d, %d events, hash %s)", rep.Error, rep.Head.Block, rep.Head.Events, rep.Head.Hash)
	}
	for _, cp := range cps {
		if rep.PublicKey != "" && cp.PublicKey != rep.PublicKey {
			return fmt.Errorf("audit trail BROKEN: checkpoint of block %d is signed with key %s, the server signs with %s", cp.Block, cp.PublicKey, rep.PublicKey)
		}
	}
	if *request != "" {
		evs, err := c.Audit(ctx, erasure.AuditFilter{RequestID: *request})
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return erasure.Errorf(erasure.ENOTFOUND, "the audit trail (%d events, verified) has no event of request %s", rep.Head.Events, *request)
		}
		fmt.Fprintf(stdout, "request %s: %d events in the trail\n", *request, len(evs))
	}
	if n := len(heads) + len(cps); n > 0 {
		fmt.Fprintf(stdout, "the chain passes through %d expected heads and checkpoints given\n", n)
	}
	fmt.Fprintf(stdout, "audit trail ok: %d events in %d blocks, head %d:%s\n", rep.Head.Events, rep.Head.Block, rep.Head.Block, rep.Head.Hash)
	return nil
}

func runAuditCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("audit checkpoint", stderr)
	out := fs.String("out", "", "write the checkpoint to `file` (default: standard output)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("usage: erasure audit checkpoint [--out FILE]")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if err := audit.VerifyCheckpoint(*cp, ""); err != nil {
		return fmt.Errorf("the server's checkpoint does not verify: %s", erasure.ErrorMessage(err))
	}
	b, _ := json.MarshalIndent(cp, "", "  ")
	b = append(b, '\n')
	if *out == "" {
		_, err := stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checkpoint of block %d (%d events) written to %s; keep it away from the server, then: erasure audit verify --checkpoint %s\n", cp.Block, cp.Events, *out, *out)
	return nil
}
