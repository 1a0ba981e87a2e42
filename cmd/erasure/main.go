// Command erasure deletes a data subject's data everywhere it lives, and keeps deleted records
// out of the way of the catalogues that must still answer for them.
//
// main only wires: the commands (cli.go) each live in a file of their own and register
// themselves with command(). `serve` runs a Main (serve.go) over the server package, `demo`
// runs package demo; `datasets validate` and `datasets check` read the configuration file (it
// holds the connection strings); the others talk to the API through package client, at
// ERASURE_URL with ERASURE_TOKEN.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext()
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
