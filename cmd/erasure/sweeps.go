package main

import (
	"context"

	"erasure"
	"erasure/api"
	"erasure/connector/files"
	"erasure/pipeline"
)

// startSweeps runs the sweeps of offline datasets: it resumes the sweeps a previous run left
// running, starts the schedule, and mounts the sweep routes of the API. Background sweeps stop
// with ctx and are resumed at the next start.
func (a *app) startSweeps(ctx context.Context) {
	byName := map[string]*erasure.Dataset{}
	offline := 0
	for _, d := range a.cfg.Datasets {
		byName[d.Name] = d
		if d.Method == erasure.MethodOffline {
			offline++
		}
	}
	sw := &pipeline.Sweeper{Store: a.store, Datasets: byName, Logger: a.log, Export: files.WriteExport}
	sw.Start(ctx)
	for pattern, h := range api.SweepRoutes(a.api, &pipeline.SweepService{Sweeper: sw}) {
		a.api.Mount(pattern, h)
	}
	if offline == 0 {
		return
	}
	if n, err := sw.Resume(ctx); err != nil {
		a.log.Error("sweeps of the previous run not resumed; they are retried at the next start", "err", err)
	} else if n > 0 {
		a.log.Info("resumed sweeps of the previous run", "sweeps", n)
	}
	a.wg.Add(2)
	go func() { defer a.wg.Done(); sw.Schedule(ctx) }()
	go func() { defer a.wg.Done(); <-ctx.Done(); sw.Wait() }()
}
