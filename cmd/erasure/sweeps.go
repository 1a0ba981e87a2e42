package main

import "context"

// startSweeps runs the sweep scheduler of offline datasets.
func (a *app) startSweeps(ctx context.Context) {}
