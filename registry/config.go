// Package registry reads erasure.yaml: the server's configuration and the registry of datasets.
// It expands ${VAR} from the environment, validates everything, and reports every problem with
// its file and line.
//
// # Identifier types
//
// identifiers lists the identifier types subjects may carry. Each entry is a name, or a mapping
// that also says how values of the type are compared and where `erasure scan` recognizes them:
//
//	identifiers:
//	  - user_id
//	  - { name: email, normalize: lower, trim: true,
//	      scan: { names: ["e?mail", "contact"], values: '^[^@\s]+@[^@\s]+\.[a-z]{2,}$' } }
//	  - { name: phone, normalize: digits, scan: { values: '^\+?[0-9 ().-]{7,20}$' } }
//
// normalize is none (the default), lower (Unicode lower case) or digits (only the digits and a
// leading +); trim (default false) strips white space around values first. See
// erasure.IdentifierType.Canonical. scan.names are regular expressions (RE2) matched without
// case anywhere in column, field and key names; scan.values is one regular expression for
// values. Left out, each takes the built-in patterns of the type's name (e-mail, phone and IP
// address types get name and value patterns, X_id types name patterns, any other type its own
// name: see erasure.DefaultIdentifierType); an empty list or string turns it off. Config keeps
// the names in Identifiers and the declarations in IdentifierTypes.
//
// # Guards and canaries
//
// Every dataset is guarded (see erasure.Guard): the defaults section sets the guard of every
// dataset, and a dataset's own guard: block overrides it key by key.
//
//	defaults:
//	  guard: { max_removed: 10000, max_removed_share: 0.5, share_min_rows: 100 }
//	datasets:
//	  - name: accounts.users
//	    guard: { max_removed: 50 }      # one person has at most a few rows here
//
// max_removed is the most rows, keys or documents erasing one subject may remove (0: no
// bound); max_removed_share the largest share of a partition's rows one sweep may remove (0 or
// 1: no bound), for partitions of at least share_min_rows rows.
//
// A canary plants a synthetic subject, erases it through the pipeline and checks it is gone
// (see erasure.Canary):
//
//	canary:
//	  every: 24h                     # default 24h
//	  timeout: 10m                   # default 5m (realtime), 1h (async, offline)
//	  subject: { user_id: "9{random}" }   # value templates; default erasure-canary-{random}
//	  plant: { ... }                 # the connector's own: see its package documentation
//
// The plant block is handed to the connector (Build.Plant), which must be an erasure.Planter;
// async datasets take no plant block (their canary is a command marked canary).
package registry

import (
	"time"

	"erasure"
)

// Config is a loaded erasure.yaml.
type Config struct {
	// File is the path the configuration was read from.
	File string

	Server  Server  `yaml:"server"`
	Store   Store   `yaml:"store"`
	Auth    Auth    `yaml:"auth"`
	Audit   Audit   `yaml:"audit"`
	NATS    NATS    `yaml:"nats"`
	Kafka   Kafka   `yaml:"kafka"`
	Records Records `yaml:"records"`
	// DRP is the Data Rights Protocol section; nil when the file has none.
	DRP *DRP `yaml:"-"`
	// Suppression is the `suppression` section: what completed requests leave on the
	// suppression list.
	Suppression Suppression `yaml:"suppression"`

	// Identifiers are the names of the identifier types subjects may carry, in file order.
	Identifiers []string `yaml:"identifiers"`
	// IdentifierTypes are the same types with how their values are compared (normalize,
	// trim) and recognized by `erasure scan` (scan patterns; built-in ones for what the file
	// leaves out, see erasure.DefaultIdentifierType), in the same order as Identifiers.
	IdentifierTypes []erasure.IdentifierType `yaml:"-"`
	// Defaults apply to every dataset that does not set its own.
	Defaults erasure.Policy `yaml:"-"`
	// MaxDeadline bounds how far ahead a submission's deadline may be (defaults.max_deadline,
	// default DefaultMaxDeadline).
	MaxDeadline time.Duration `yaml:"-"`
	// Datasets are the registered datasets, in file order, with their connectors built.
	Datasets []*erasure.Dataset `yaml:"-"`
	// Notify are the webhook endpoints of the `notify` section, in file order.
	Notify []Notify `yaml:"-"`
	// Resources are what the connectors asked the server for (a NATS connection, the record
	// store), for the server to provide once it has opened them.
	Resources *Resources `yaml:"-"`
}

// Server is the `server` section.
type Server struct {
	Addr    string `yaml:"addr"`     // default 127.0.0.1:8080
	DataDir string `yaml:"data_dir"` // default ./erasure-data
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Workers is the number of tasks executed at once (default 16).
	Workers int `yaml:"workers"`
	// Lease is how soon the work of a process that died is taken over by another (default 1
	// minute): a task's lease lasts its dataset's timeout plus Lease, and a sweep or a sweep
	// unit is held Lease between renewals.
	Lease time.Duration `yaml:"lease"`
}

// Store is the `store` section: driver sqlite (default, in the data dir) or postgres, which a
// dsn alone selects by its scheme (store: { dsn: "${ERASURE_STORE_DSN}" } with a postgres://
// URL).
type Store struct {
	Driver string `yaml:"driver"`
	DSN    string `yaml:"dsn"`
}

// Auth is the `auth` section.
type Auth struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one bearer token. Roles are submit, operate, read, write (record writes) and
// ack:DATASET (acknowledge tasks of one async dataset; ack:* for all).
type Token struct {
	Name   string   `yaml:"name"`
	Secret string   `yaml:"secret"`
	Roles  []string `yaml:"roles"`
}

// Audit is the `audit` section. Key is the HMAC key for identifier hashes and the chain in
// hex; when empty a key is generated once into the data dir. SigningKey is the Ed25519 key that
// signs erasure certificates and checkpoints of the chain (its 32-byte seed in hex or base64,
// see audit.LoadSigningKey); when empty one is generated once into the data dir (signing.key).
// Both are secrets: ${VAR} only.
type Audit struct {
	Key        string `yaml:"key"`
	SigningKey string `yaml:"signing_key"`
	// CheckpointEvery is how often the server signs a checkpoint of the chain's head (default
	// DefaultCheckpointEvery; "0s" never).
	CheckpointEvery string `yaml:"checkpoint_every"`
	// CheckpointDir, when set, is where each checkpoint is also written as a file
	// (checkpoint-BLOCK.json and latest.json): a directory away from the data dir, ideally on
	// other storage.
	CheckpointDir string `yaml:"checkpoint_dir"`
	// Every is CheckpointEvery parsed.
	Every time.Duration `yaml:"-"`
}

// DefaultCheckpointEvery is how often the server signs a checkpoint of its audit chain unless
// audit.checkpoint_every says otherwise.
const DefaultCheckpointEvery = time.Hour

// NATS is the `nats` section. With URL empty the server runs an embedded NATS with JetStream
// listening on 127.0.0.1:Port (default 4233), storing under the data dir.
type NATS struct {
	URL         string `yaml:"url"`
	Credentials string `yaml:"credentials"`
	TLS         struct {
		CA   string `yaml:"ca"`
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	Port int `yaml:"port"`
	// Stream is the JetStream stream for erasure commands (default ERASURE).
	Stream string `yaml:"stream"`
	// AckPrefix is the subject prefix of acknowledgements: a dataset's go to
	// AckPrefix.<dataset> (default erasure.ack).
	AckPrefix string `yaml:"ack_prefix"`
	// Consumer is the durable consumer reading acknowledgements (default erasure-acks-<the
	// first 12 digits of the deployment id>, so that deployments sharing a stream each read
	// every acknowledgement).
	Consumer string `yaml:"consumer"`
}

// Kafka is the `kafka` section: the cluster of the async datasets whose connector is kafka.
type Kafka struct {
	// Brokers are the seed brokers, host:port (required when a dataset uses kafka).
	Brokers []string `yaml:"brokers"`
	// AckTopic is the topic acknowledgements are produced to (default erasure.acks).
	AckTopic string `yaml:"ack_topic"`
	// Group is the consumer group reading acknowledgements (default erasure-acks-<the first
	// 12 digits of the deployment id>, so that deployments sharing the ack topic each read
	// every acknowledgement).
	Group string `yaml:"group"`
	// Partitions is how many partitions the topics erasure creates get (default 3); topics
	// that exist are left as they are.
	Partitions int `yaml:"partitions"`
	TLS        struct {
		CA   string `yaml:"ca"`
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	// SASL authenticates erasure to the cluster: mechanism plain, scram-sha-256 or
	// scram-sha-512.
	SASL struct {
		Mechanism string `yaml:"mechanism"`
		User      string `yaml:"user"`
		Password  string `yaml:"password"`
	} `yaml:"sasl"`
}

// DefaultKafkaAckTopic is the default `kafka.ack_topic`.
const DefaultKafkaAckTopic = "erasure.acks"

// DefaultKafkaPartitions is the default `kafka.partitions`.
const DefaultKafkaPartitions = 3

// DefaultNATSAckPrefix is the default `nats.ack_prefix`.
const DefaultNATSAckPrefix = "erasure.ack"

// Records is the `records` section: the tombstone store.
type Records struct {
	// MaxArchiveShare is the largest share of a source's records one archive may move without
	// --force (default 0.5).
	MaxArchiveShare float64 `yaml:"max_archive_share"`
	// MaxReconcileShare is the largest share of a source's live records one reconcile may
	// tombstone (default 0.1).
	MaxReconcileShare float64 `yaml:"max_reconcile_share"`
}

// Suppression is the `suppression` section. Enabled (default true) puts the identifiers of
// every completed request (unless its submitter opted out) on the suppression list, keyed
// with Key (hex, from the environment; default derived from the audit key, see
// audit.SuppressionKey); Types limits it to some identifier types (default all declared).
type Suppression struct {
	Enabled *bool    `yaml:"enabled"`
	Types   []string `yaml:"types"`
	Key     string   `yaml:"key"`
}

// On reports whether completed requests are suppressed.
func (s Suppression) On() bool { return s.Enabled == nil || *s.Enabled }

// Dataset returns the dataset called name, or nil.
func (c *Config) Dataset(name string) *erasure.Dataset {
	for _, d := range c.Datasets {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// IdentifierType returns the declared identifier type called name, and false when none is.
func (c *Config) IdentifierType(name string) (erasure.IdentifierType, bool) {
	for _, t := range c.IdentifierTypes {
		if t.Name == name {
			return t, true
		}
	}
	return erasure.IdentifierType{}, false
}
