package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"erasure"
	"erasure/audit"
)

func init() {
	command("certificate get", "fetch the signed erasure certificate of a completed request: certificate get ID [-o FILE]", runCertificateGet)
	command("certificate verify", "check a certificate offline: certificate verify FILE [--public-key K]; one changed byte fails it (exit 1)", runCertificateVerify)
	command("certificate key", "print the public key the server signs certificates with (for --public-key)", runCertificateKey)
}

func runCertificateGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out *string
	id, err := oneID("certificate get", args, stderr, func(fs *flag.FlagSet) {
		out = fs.String("o", "", "write the certificate to this file instead of standard output")
	})
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	doc, err := c.Certificate(ctx, id)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(doc)
		return err
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "certificate of %s written to %s (%d bytes)\n", id, *out, len(doc))
	return nil
}

func runCertificateKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("certificate key", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("certificate key takes no argument")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	k, err := c.CertificateKey(ctx)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(k)
	fmt.Fprintln(stdout, string(b))
	return nil
}

func runCertificateVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("certificate verify", stderr)
	keyArg := fs.String("public-key", "", "the deployment's public key: a file, or the key itself (base64, hex, PEM, or the JSON of GET /v1/certificates/key); without it the document is checked against the key it names, which proves it whole, not whose")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("usage: erasure certificate verify FILE [--public-key K] (FILE - reads standard input)")
	}
	var doc []byte
	if pos[0] == "-" {
		doc, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		doc, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return erasure.Errorf(erasure.ENOTFOUND, "%v", err)
	}
	var pub ed25519.PublicKey
	if *keyArg != "" {
		text := *keyArg
		if b, err := os.ReadFile(*keyArg); err == nil {
			text = string(b)
		}
		if pub, err = audit.ParsePublicKey(text); err != nil {
			return usageError("--public-key: " + err.Error())
		}
	}
	cert, key, err := audit.VerifyCertificate(doc, pub)
	if err != nil {
		if errors.Is(err, audit.ErrCertificate) {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		return err
	}
	datasets := 0
	for _, d := range cert.Datasets {
		if d.Kind == erasure.TaskErase {
			datasets++
		}
	}
	fmt.Fprintf(stdout, "request    %s (%s, reason %s)\n", cert.Request.ID, cert.Request.Status, cert.Request.Reason)
	fmt.Fprintf(stdout, "completed  %s, deadline %s%s\n", cert.Request.CompletedAt.Format(time.RFC3339), cert.Request.Deadline.Format(time.RFC3339), map[bool]string{true: " (LATE)", false: ""}[cert.Request.Late])
	fmt.Fprintf(stdout, "subject    %s\n", plural(len(cert.Subject), "keyed hash"))
	for _, d := range cert.Datasets {
		fmt.Fprintf(stdout, "  %-28s %-6s %-8s %-7s removed %d\n", d.Dataset, d.Kind, d.Method, d.Outcome, d.Removed)
	}
	fmt.Fprintf(stdout, "audit      %d events of the request, covered by head block %d (%s)\n", cert.Audit.Events, cert.Audit.Head.Block, cert.Audit.Head.Hash)
	if pub != nil {
		fmt.Fprintf(stderr, "verified: certificate of %s signed by the key given (%s); %s erased\n", cert.Request.ID, key.KeyID, plural(datasets, "dataset"))
	} else {
		fmt.Fprintf(stderr, "whole: certificate of %s signed by key %s, the key it names; pass --public-key (erasure certificate key) to check it is your deployment's\n", cert.Request.ID, key.KeyID)
	}
	return nil
}
