package main

import (
	"context"
	"io"
	"log/slog"

	"erasure/internal/demo"
)

func init() {
	command("demo", "build a small estate on loopback and watch erasures go through it", runDemo)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("demo", stderr)
	users := fs.Int("users", 1000, "`number` of users in the estate")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	verbose := fs.Bool("v", false, "show the server's logs")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *users < 10 {
		return usageError("--users must be at least 10")
	}
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	slog.SetDefault(log) // connectors that log through the default logger follow -v too
	return demo.Run(ctx, demo.Options{Users: *users, Keep: *keep, Logger: log}, stdout)
}
