package pipeline

import (
	"context"
	"errors"
	"io"

	"erasure"
)

// SweepService is the erasure.SweepService of a Sweeper: what the API's sweep routes act on.
// It adds to the Sweeper the checks that a dataset is registered and offline, the sweep
// history of the store, and skip index builds of connectors that are erasure.Indexers.
type SweepService struct {
	Sweeper *Sweeper
}

var _ erasure.SweepService = (*SweepService)(nil)

// offline returns the registered offline dataset called name; ENOTFOUND, EINVALID.
func (s *SweepService) offline(name string) (*erasure.Dataset, error) {
	d := s.Sweeper.Datasets[name]
	if d == nil {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %s is not registered", name)
	}
	if d.Method != erasure.MethodOffline {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s is %s, not offline: it has no sweeps", name, d.Method)
	}
	return d, nil
}

// RunSweep starts a sweep now (Sweeper.RunNow).
func (s *SweepService) RunSweep(ctx context.Context, dataset, actor string) (*erasure.Sweep, error) {
	return s.Sweeper.RunNow(ctx, dataset, actor)
}

// SweepStatus returns the dataset's last limit sweeps from the store and the one running now
// with its progress: as this process sees it when it runs the sweep, else as the store does
// (a sweep run by another process, its progress summed from its units when it has some).
func (s *SweepService) SweepStatus(ctx context.Context, dataset string, limit int) (*erasure.SweepStatus, error) {
	if _, err := s.offline(dataset); err != nil {
		return nil, err
	}
	list, err := s.Sweeper.Store.Sweeps(ctx, dataset, limit)
	if err != nil {
		return nil, err
	}
	st := &erasure.SweepStatus{Dataset: dataset, Sweeps: list}
	if live, ok := s.Sweeper.Running(dataset); ok {
		st.Running, st.Progress = &live.Sweep, live.Progress
		return st, nil
	}
	open, err := s.Sweeper.Store.OpenSweeps(ctx)
	if err != nil {
		return nil, err
	}
	for i := range open {
		if sw := open[i]; sw.Dataset == dataset && sw.State == erasure.SweepRunning {
			st.Running = &sw
			if units, err := s.Sweeper.Store.SweepUnits(ctx, sw.ID); err == nil && len(units) > 0 {
				p := unitProgress(units, sw.Started, s.Sweeper.now())
				st.Progress = &p
			}
		}
	}
	return st, nil
}

// BuildIndex builds the skip index of a dataset whose connector is an erasure.Indexer, when no
// sweep of it runs in this process.
func (s *SweepService) BuildIndex(ctx context.Context, dataset, actor string) (*erasure.IndexReport, error) {
	d, err := s.offline(dataset)
	if err != nil {
		return nil, err
	}
	ix, ok := d.Conn.(erasure.Indexer)
	if !ok {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s (connector %s) keeps no skip index", dataset, d.Connector)
	}
	if live, ok := s.Sweeper.Running(dataset); ok {
		return nil, erasure.Errorf(erasure.ECONFLICT, "dataset %s is being swept (sweep %s); build the index after it", dataset, live.Sweep.ID)
	}
	rep, err := ix.BuildIndex(ctx, nil)
	if err != nil {
		return nil, connectorError(dataset, err)
	}
	return &rep, nil
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

// StartExport starts an external sweep (Sweeper.StartExport) of an offline dataset.
func (s *SweepService) StartExport(ctx context.Context, dataset, format, actor string) (*erasure.Sweep, func(io.Writer) (int, error), error) {
	if _, err := s.offline(dataset); err != nil {
		return nil, nil, err
	}
	return s.Sweeper.StartExport(ctx, dataset, format, actor)
}

// AckSweep validates ack and ends the exported sweep id with it (Sweeper.Ack).
func (s *SweepService) AckSweep(ctx context.Context, dataset, id string, ack erasure.SweepAck, actor string) (*erasure.Sweep, error) {
	if _, err := s.offline(dataset); err != nil {
		return nil, err
	}
	if err := ack.Validate(); err != nil {
		return nil, err
	}
	return s.Sweeper.Ack(ctx, dataset, id, ack.Status == erasure.AckDone, ack.Removed, ack.Error, actor)
}
