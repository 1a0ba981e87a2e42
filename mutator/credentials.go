package mutator

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Credentials are a dataset's credentials on erasure's embedded NATS server, as written by
// `erasure nats credentials DATASET --out FILE`: the server's URL, the dataset's user and
// password, the inbox prefix its replies must come to (the server lets the user receive
// nothing else), and where the dataset's commands and acknowledgements go.
type Credentials struct {
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	InboxPrefix string `json:"inbox_prefix"`
	Dataset     string `json:"dataset"`
	Stream      string `json:"stream"`
	Subject     string `json:"subject"`
	AckSubject  string `json:"ack_subject"`
	Consumer    string `json:"consumer"`
}

// ReadCredentials reads a credentials file.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("mutator: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil || c.URL == "" || c.User == "" {
		return c, fmt.Errorf("mutator: %s is not an erasure credentials file (erasure nats credentials DATASET --out FILE)", path)
	}
	return c, nil
}

// Connect connects to c.URL as c's user, with c's inbox prefix, and opts.
func (c Credentials) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.UserInfo(c.User, c.Password), nats.MaxReconnects(-1)}
	if c.InboxPrefix != "" {
		all = append(all, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	nc, err := nats.Connect(c.URL, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("mutator: connecting to %s as %s: %w", c.URL, c.User, err)
	}
	return nc, nil
}

// Options returns the Run options that consume where c says: its subject, stream and consumer
// name (the only consumer the dataset's user may use).
func (c Credentials) Options() []Option {
	var o []Option
	if c.Subject != "" {
		o = append(o, Subject(c.Subject))
	}
	if c.Stream != "" {
		o = append(o, Stream(c.Stream))
	}
	if c.Consumer != "" {
		o = append(o, Durable(c.Consumer))
	}
	return o
}
