package main

import (
	"context"
	"errors"
	"io"

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
	sw := &pipeline.Sweeper{Store: a.store, Datasets: byName, Logger: a.log, Export: files.WriteExport, Progress: filesProgress}
	sw.Start(ctx)
	for pattern, h := range api.SweepRoutes(a.api, &sweepService{sw: sw, store: a.store, datasets: byName}) {
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

// filesProgress gives sweeps of files datasets a context that reports their progress.
func filesProgress(ctx context.Context, report func(any)) context.Context {
	return files.ContextWithProgress(ctx, func(p files.Progress) { report(p) })
}

// indexer is a connector keeping a skip index (files).
type indexer interface {
	BuildIndex(ctx context.Context, progress files.ProgressFunc) (files.IndexReport, error)
}

// sweepService is the API's SweepService over the Sweeper and the connectors.
type sweepService struct {
	sw       *pipeline.Sweeper
	store    pipeline.SweepStore
	datasets map[string]*erasure.Dataset
}

var _ api.SweepService = (*sweepService)(nil)

func (s *sweepService) offline(name string) (*erasure.Dataset, error) {
	d := s.datasets[name]
	if d == nil {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %s is not registered", name)
	}
	if d.Method != erasure.MethodOffline {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s is %s, not offline: it has no sweeps", name, d.Method)
	}
	return d, nil
}

func (s *sweepService) RunSweep(ctx context.Context, dataset, actor string) (*erasure.Sweep, error) {
	return s.sw.RunNow(ctx, dataset, actor)
}

func (s *sweepService) SweepStatus(ctx context.Context, dataset string, limit int) (*api.SweepStatus, error) {
	if _, err := s.offline(dataset); err != nil {
		return nil, err
	}
	list, err := s.store.Sweeps(ctx, dataset, limit)
	if err != nil {
		return nil, err
	}
	st := &api.SweepStatus{Dataset: dataset, Sweeps: list}
	if live, ok := s.sw.Running(dataset); ok {
		st.Running, st.Progress = &live.Sweep, live.Progress
	}
	return st, nil
}

func (s *sweepService) BuildIndex(ctx context.Context, dataset, actor string) (any, error) {
	d, err := s.offline(dataset)
	if err != nil {
		return nil, err
	}
	ix, ok := d.Conn.(indexer)
	if !ok {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s (connector %s) keeps no skip index", dataset, d.Connector)
	}
	if live, ok := s.sw.Running(dataset); ok {
		return nil, erasure.Errorf(erasure.ECONFLICT, "dataset %s is being swept (sweep %s); build the index after it", dataset, live.Sweep.ID)
	}
	rep, err := ix.BuildIndex(ctx, nil)
	if err != nil {
		return nil, connectorError(dataset, err)
	}
	return rep, nil
}

// connectorError gives a connector's failure a code the API shows with its message (which
// names files, never identifiers): EINVALID for a permanent failure (a corrupt partition),
// EUNAVAILABLE for a transient one (a sweep holding the snapshot's lock).
func connectorError(dataset string, err error) error {
	if erasure.ErrorCode(err) != erasure.EINTERNAL || errors.Is(err, context.Canceled) {
		return err
	}
	code := erasure.EUNAVAILABLE
	if erasure.IsPermanent(err) {
		code = erasure.EINVALID
	}
	return erasure.Errorf(code, "dataset %s: %v", dataset, err)
}

func (s *sweepService) StartExport(ctx context.Context, dataset, format, actor string) (*erasure.Sweep, func(io.Writer) (int, error), error) {
	if _, err := s.offline(dataset); err != nil {
		return nil, nil, err
	}
	return s.sw.StartExport(ctx, dataset, format, actor)
}

func (s *sweepService) AckSweep(ctx context.Context, dataset, id string, ack api.SweepAck, actor string) (*erasure.Sweep, error) {
	if _, err := s.offline(dataset); err != nil {
		return nil, err
	}
	return s.sw.Ack(ctx, dataset, id, ack.Status == "done", ack.Removed, ack.Error, actor)
}
