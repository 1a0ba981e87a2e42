package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	natsconn "erasure/connector/nats"
	"erasure/server"
)

// commandOf returns the command the stream holds for task id on subject, or nil once there
// is none.
func commandOf(t *testing.T, s *server.Server, subject string, taskID int64) *jetstream.RawStreamMsg {
	t.Helper()
	stream, err := s.NATS.JetStream().Stream(t.Context(), s.NATS.Stream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := stream.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject && m.Header.Get(natsconn.TaskHeader) == strconv.FormatInt(taskID, 10) {
			return m
		}
	}
	return nil
}

func waitTask(t *testing.T, s *server.Server, r *erasure.Request, dataset string, want erasure.TaskState) *erasure.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Service.Request(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got.Tasks {
			if got.Tasks[i].Dataset == dataset && got.Tasks[i].State == want {
				return &got.Tasks[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task of %s never %s: %+v", dataset, want, got.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitGone(t *testing.T, s *server.Server, subject string, taskID int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for commandOf(t, s, subject, taskID) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the command of task %d is still in the stream", taskID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServer_CommandsDoNotOutliveTheirTask: an async command, which holds the subject's
// identifiers in clear, leaves the stream once its task is acknowledged or cancelled, and
// carries a TTL that ends it when its attempt gives up waiting anyway.
func TestServer_CommandsDoNotOutliveTheirTask(t *testing.T) {
	s := open(t, true)
	if err := s.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	const subject = "erasure.test.notifications"
	t.Run("AcknowledgedCommandIsRemoved", func(t *testing.T) {
		r := submit(t, s, "41")
		task := waitTask(t, s, r, "notifications", erasure.TaskDispatched)
		m := commandOf(t, s, subject, task.ID)
		if m == nil {
			t.Fatal("no command in the stream for a dispatched task")
		}
		ttl, err := time.ParseDuration(m.Header.Get(jetstream.MsgTTLHeader))
		if want := natsconn.CommandTTL(&s.Config.Dataset("notifications").Policy); err != nil || ttl != want || want <= 0 {
			t.Fatalf("command TTL %q (%v), want %s", m.Header.Get(jetstream.MsgTTLHeader), err, want)
		}
		var cmd struct {
			Dispatch string `json:"dispatch"`
		}
		if err := json.Unmarshal(m.Data, &cmd); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Service.Ack(t.Context(), "notifications", erasure.Ack{TaskID: task.ID, Dispatch: cmd.Dispatch, Status: erasure.AckDone, Removed: 1}, "test"); err != nil {
			t.Fatal(err)
		}
		waitGone(t, s, subject, task.ID)
		waitStatus(t, s, r.ID, erasure.RequestCompleted)
	})
	t.Run("CancelledCommandIsRemoved", func(t *testing.T) {
		r := submit(t, s, "42")
		task := waitTask(t, s, r, "notifications", erasure.TaskDispatched)
		if commandOf(t, s, subject, task.ID) == nil {
			t.Fatal("no command in the stream for a dispatched task")
		}
		if _, err := s.Service.Cancel(t.Context(), r.ID, "test"); err != nil {
			t.Fatal(err)
		}
		waitGone(t, s, subject, task.ID)
	})
	t.Run("AnotherDeploymentsCommandIsLeftAlone", func(t *testing.T) {
		// A command this deployment cannot place (another deployment's, on a shared stream).
		pending, err := s.Service.CommandPending(context.Background(), 999999, "00112233445566778899aabbccddeeff")
		if err != nil || !pending {
			t.Fatalf("CommandPending of an unknown task = %v, %v; want it left alone", pending, err)
		}
	})
}
