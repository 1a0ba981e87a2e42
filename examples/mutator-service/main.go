// Command mutator-service is a small notifications service that takes part in erasure as the
// owner of the async dataset "notifications": it keeps users' notifications in memory and
// erases a user's notifications when erasure's command arrives, through the mutator package.
//
//	erasure nats credentials notifications --config erasure.yaml --out notifications.json
//	go run ./examples/mutator-service -creds notifications.json
//
// with a registry declaring
//
//   - name: notifications
//     owner: messaging-team
//     connector: nats
//     nats: { subject: erasure.notifications, identifiers: [user_id] }
//
// It seeds a few users' notifications (-seed) so that an erasure has something to remove.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure/mutator"
)

// Notification is one message shown to a user.
type Notification struct {
	ID     int64
	UserID string
	Text   string
	At     time.Time
}

// Store holds notifications by user id. It is safe for concurrent use.
type Store struct {
	mu     sync.Mutex
	byUser map[string][]Notification
	nextID int64
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{byUser: map[string][]Notification{}} }

// Add stores a notification for user.
func (s *Store) Add(user, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.byUser[user] = append(s.byUser[user], Notification{ID: s.nextID, UserID: user, Text: text, At: time.Now()})
}

// DeleteUsers erases every notification of the given users and returns how many it removed.
// Erasing a user with nothing stored removes 0: it is idempotent, as erasure requires.
func (s *Store) DeleteUsers(users []string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, u := range users {
		n += int64(len(s.byUser[u]))
		delete(s.byUser, u)
	}
	return n
}

// Len returns the number of notifications stored.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.byUser {
		n += len(l)
	}
	return n
}

func main() {
	url := flag.String("nats", "nats://127.0.0.1:4233", "NATS server URL (erasure's embedded server by default)")
	creds := flag.String("creds", "", "credentials file: erasure's (erasure nats credentials DATASET --out FILE) or a NATS .creds file")
	dataset := flag.String("dataset", "notifications", "the dataset this service owns")
	subject := flag.String("subject", "", "the dataset's nats.subject (default erasure.<dataset>)")
	seed := flag.Int("seed", 100, "seed notifications for users 1..N")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *url, *creds, *dataset, *subject, *seed); err != nil {
		log.Error("mutator-service stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, url, creds, dataset, subject string, seed int) error {
	store := NewStore()
	for u := 1; u <= seed; u++ {
		for i := 0; i < 3; i++ {
			store.Add(fmt.Sprint(u), fmt.Sprintf("notification %d", i))
		}
	}
	var mopts []mutator.Option
	var nc *nats.Conn
	var err error
	if c, cerr := mutator.ReadCredentials(creds); creds != "" && cerr == nil {
		// erasure's embedded server: `erasure nats credentials DATASET --out FILE` wrote them.
		nc, err = c.Connect(nats.Name("mutator-service"))
		mopts = c.Options()
	} else {
		opts := []nats.Option{nats.Name("mutator-service"), nats.MaxReconnects(-1)}
		if creds != "" {
			opts = append(opts, nats.UserCredentials(creds)) // an external server's .creds file
		}
		nc, err = nats.Connect(url, opts...)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	handler := func(ctx context.Context, c mutator.Command) (int64, error) {
		users := c.Identifiers.Values("user_id")
		if len(users) == 0 {
			// The registry gives this dataset user_id; anything else is a misconfiguration.
			return 0, mutator.Permanent(errors.New("command has no user_id"))
		}
		removed := store.DeleteUsers(users)
		// Log the task, never the identifiers.
		log.Info("erased", "task_id", c.TaskID, "request_id", c.RequestID, "attempt", c.Attempt, "removed", removed, "left", store.Len())
		return removed, nil
	}
	mopts = append(mopts, mutator.Logger(log), mutator.MaxInFlight(8))
	if subject != "" {
		mopts = append(mopts, mutator.Subject(subject))
	}
	log.Info("serving erasure commands", "dataset", dataset, "notifications", store.Len())
	return mutator.Run(ctx, js, dataset, handler, mopts...)
}
