package natsconn

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"erasure"
	"erasure/registry"
)

// The embedded server admits only known users: erasure itself (AdminUser) and one user per
// async dataset, named after the dataset. Their passwords are derived from one random key
// generated into the data dir (KeyFile, mode 0600) the first time the server starts, so that
// `erasure nats credentials DATASET` can hand a dataset's credentials to its owners at any time
// without the server running, and a dataset added later needs no new secret.
//
// A dataset's user may consume its own commands through a durable consumer of its own (named
// DatasetConsumer) filtered on its own command subject, and publish acknowledgements on its own
// ack subject; nothing else. Replies come to an inbox prefix of its own (InboxPrefix), so that
// it cannot read the replies, and thus the commands, delivered to other datasets' services.

// KeyFile is the file, in the data dir, holding the key the embedded server's passwords derive
// from.
const KeyFile = "nats.key"

// AdminUser is erasure's own user on the embedded server. It is not a valid dataset name.
const AdminUser = "_erasure"

// Credentials are what a program needs to reach a NATS server as one user, as written by
// `erasure nats credentials DATASET` (JSON, mode 0600). Dataset, Stream, Subject, AckSubject
// and Consumer say where that dataset's commands and acknowledgements go.
type Credentials struct {
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	InboxPrefix string `json:"inbox_prefix"`
	Dataset     string `json:"dataset,omitempty"`
	Stream      string `json:"stream,omitempty"`
	Subject     string `json:"subject,omitempty"`
	AckSubject  string `json:"ack_subject,omitempty"`
	Consumer    string `json:"consumer,omitempty"`
}

// Options returns the nats.go options that connect with c: user, password, inbox prefix.
func (c Credentials) Options() []nats.Option {
	opts := []nats.Option{nats.UserInfo(c.User, c.Password)}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	return opts
}

// ReadCredentials reads a credentials file written by `erasure nats credentials`. Errors:
// EINVALID when it cannot be read or is not such a file.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	data, err := os.ReadFile(path)
	if err != nil {
		return c, erasure.Errorf(erasure.EINVALID, "nats credentials: %v", err)
	}
	if err := json.Unmarshal(data, &c); err != nil || c.User == "" || c.Password == "" {
		return c, erasure.Errorf(erasure.EINVALID, "nats credentials %s: not an erasure credentials file (user and password)", path)
	}
	return c, nil
}

// isCredentialsJSON reports whether the file at path is an erasure credentials file rather
// than a NATS .creds file (JWT and NKey seed).
func isCredentialsJSON(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
}

// LoadKey returns the key of the embedded server's passwords, in dataDir/KeyFile, generating
// it (32 random bytes, mode 0600) the first time. Errors: EINVALID for a damaged key file,
// EUNAVAILABLE when it cannot be written.
func LoadKey(dataDir string) ([]byte, error) {
	if dataDir == "" {
		return nil, erasure.Errorf(erasure.EINVALID, "the embedded NATS server needs a data dir")
	}
	path := filepath.Join(dataDir, KeyFile)
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) < 16 {
			return nil, erasure.Errorf(erasure.EINVALID, "%s is not a valid NATS key (remove it to generate another, then hand new credentials to every dataset's owner)", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "nats key: %v", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "nats key: %v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadKey(dataDir) // another process wrote it first
	} else if err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "nats key: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "nats key: %v", err)
	}
	if err := f.Sync(); err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "nats key: %v", err)
	}
	return k, nil
}

// password derives user's password from key.
func password(key []byte, user string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("nats-user/1\x00" + user))
	return hex.EncodeToString(m.Sum(nil))
}

// InboxPrefix is the inbox prefix of dataset's user: replies to it (JetStream API answers,
// the commands its consumer pulls) come under InboxPrefix(dataset)+".". Dots of the dataset
// name become "~", so that no dataset's inbox lies under another's.
func InboxPrefix(dataset string) string { return "_INBOX_" + strings.ReplaceAll(dataset, ".", "~") }

// DatasetConsumer is the durable consumer name a dataset's user may consume through: the
// mutator package's default, "erasure-<dataset>" with dots as "_".
func DatasetConsumer(dataset string) string {
	return "erasure-" + strings.ReplaceAll(dataset, ".", "_")
}

// DatasetPermissions are the permissions of a dataset's user (on the embedded server, or to
// copy into an external server's configuration; docs/async.md): consume the dataset's command
// subject through its own durable consumer, publish on its ack subject, receive replies on its
// inbox prefix. It cannot create a consumer on another subject, read a stream's messages
// directly, or publish anywhere else.
func DatasetPermissions(stream, consumer, subject, ackSubject, inbox string) *server.Permissions {
	api := "$JS.API."
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			ackSubject,
			api + "INFO",
			api + "STREAM.NAMES",
			api + "STREAM.INFO." + stream,
			api + "CONSUMER.CREATE." + stream + "." + consumer + "." + subject,
			api + "CONSUMER.INFO." + stream + "." + consumer,
			api + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
			"$JS.ACK." + stream + "." + consumer + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{inbox + ".>", subject}},
	}
}

// DatasetCredentials returns the credentials of dataset's user on the embedded server of
// cfg, whose key is in dataDir (generated if missing), with subject its command subject. url
// is where the services reach the server. Errors: EINVALID when cfg names an external server
// (its credentials are the operator's) or for a bad dataset name; LoadKey's.
func DatasetCredentials(cfg registry.NATS, dataDir, url, dataset, subject string) (Credentials, error) {
	if cfg.URL != "" {
		return Credentials{}, erasure.Errorf(erasure.EINVALID, "nats.url is set: an external NATS server's users and permissions are configured there (docs/async.md shows how)")
	}
	if !datasetRE.MatchString(dataset) {
		return Credentials{}, erasure.Errorf(erasure.EINVALID, "%q is not a dataset name", dataset)
	}
	key, err := LoadKey(dataDir)
	if err != nil {
		return Credentials{}, err
	}
	if url == "" {
		port := cfg.Port
		if port <= 0 {
			port = DefaultPort
		}
		url = fmt.Sprintf("nats://127.0.0.1:%d", port)
	}
	return Credentials{
		URL: url, User: dataset, Password: password(key, dataset), InboxPrefix: InboxPrefix(dataset),
		Dataset: dataset, Stream: orDefault(cfg.Stream, DefaultStream), Subject: subject,
		AckSubject: orDefault(cfg.AckPrefix, DefaultAckPrefix) + "." + dataset, Consumer: DatasetConsumer(dataset),
	}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
