package pipeline

import (
	"context"

	"erasure"
)

// CommandPending reports whether the command dispatch of task taskID still waits for its
// acknowledgement: the task is this deployment's, dispatch names its current attempt, and
// the task is dispatched (or running that attempt, being published). A command acknowledged,
// cancelled, of an ended task or of an earlier attempt is not pending: transports remove it
// (natsconn.Conn.PruneCommands). A dispatch that names no command of this deployment (another
// deployment's, on a shared stream) is reported pending, so that it is left alone.
func (s *Service) CommandPending(ctx context.Context, taskID int64, dispatch string) (bool, error) {
	t, err := s.Store.Task(ctx, taskID)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return true, nil // not this deployment's task
	} else if err != nil {
		return false, err
	}
	deployment, err := s.deployment(ctx)
	if err != nil {
		return false, err
	}
	attempt, ok := erasure.DispatchAttempt(s.Hasher, deployment, t, dispatch)
	if !ok {
		return true, nil
	}
	return attempt == t.Attempts && (t.State == erasure.TaskDispatched || t.State == erasure.TaskRunning), nil
}
