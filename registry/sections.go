package registry

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"erasure"
)

// Defaults of the configuration (see the package documentation for the file format).
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultDataDir           = "./erasure-data"
	DefaultMaxBodyBytes      = 1 << 20
	DefaultWorkers           = 16
	DefaultLease             = time.Minute
	DefaultStoreDriver       = "sqlite"
	DefaultNATSPort          = 4233
	DefaultNATSStream        = "ERASURE"
	DefaultMaxArchiveShare   = 0.5
	DefaultMaxReconcileShare = 0.1
	DefaultSweepEvery        = 24 * time.Hour
	DefaultSweepMode         = erasure.SweepInternal
)

// DefaultPolicy is the policy of datasets when the file's defaults section says nothing.
var DefaultPolicy = erasure.Policy{
	Deadline:    720 * time.Hour,
	MaxAttempts: 12,
	Backoff:     erasure.Backoff{Initial: time.Second, Max: time.Hour},
	Timeout:     30 * time.Second,
	AckTimeout:  time.Hour,
	Guard:       DefaultGuard,
}

var topKeys = []string{"version", "server", "store", "auth", "audit", "nats", "kafka", "records", "identifiers", "defaults", "datasets", "drp", "suppression", "notify"}

func (l *loader) top(root *yaml.Node) {
	sec := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !contains(topKeys, k.Value) {
			l.errorf(k, "unknown key %q (known: %s)", k.Value, strings.Join(topKeys, ", "))
			continue
		}
		sec[k.Value] = v
	}
	l.version(root, sec["version"])
	l.server(sec["server"])
	l.store(sec["store"])
	l.audit(sec["audit"])
	l.nats(sec["nats"])
	l.kafka(sec["kafka"])
	l.records(sec["records"])
	l.identifiers(root, sec["identifiers"])
	l.defaults(sec["defaults"])
	l.datasets(root, sec["datasets"])
	l.suppression(sec["suppression"])
	l.auth(sec["auth"])
	l.drp(sec["drp"])
	l.notify(sec["notify"])
}

func (l *loader) version(root, n *yaml.Node) {
	if n == nil {
		l.errorf(root, "version is missing: add `version: 1` at the top")
		return
	}
	switch v, ok := intOf(n); {
	case n.Kind != yaml.ScalarNode:
		l.errorf(n, "version must be 1")
	case l.bad(n), ok && v == 1, n.Value == "1":
	default:
		l.errorf(n, "version %q is not supported: this erasure reads version 1", truncate(n.Value, 20))
	}
}

func (l *loader) server(n *yaml.Node) {
	s := &l.cfg.Server
	l.decode(n, "server", s)
	if v := get(n, "addr"); l.scalar(v) {
		if err := checkAddr(s.Addr); err != nil {
			l.errorf(v, "server.addr: %v", err)
		}
	} else if v == nil {
		s.Addr = DefaultAddr
	}
	if v := get(n, "data_dir"); l.scalar(v) && s.DataDir == "" {
		l.errorf(v, "server.data_dir is empty")
	} else if v == nil {
		s.DataDir = DefaultDataDir
	}
	if v := get(n, "max_body_bytes"); l.scalar(v) {
		if x, ok := intOf(v); ok && (x < 1 || x > 1<<30) {
			l.errorf(v, "server.max_body_bytes must be between 1 and %d (1 GiB)", 1<<30)
		}
	} else if v == nil {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if v := get(n, "workers"); l.scalar(v) {
		if x, ok := intOf(v); ok && (x < 1 || x > 4096) {
			l.errorf(v, "server.workers must be between 1 and 4096")
		}
	} else if v == nil {
		s.Workers = DefaultWorkers
	}
	s.Lease = DefaultLease
	l.durationField(n, "lease", "server", &s.Lease)
	if v := get(n, "lease"); l.scalar(v) && (s.Lease < time.Second || s.Lease > time.Hour) {
		l.errorf(v, "server.lease must be between 1s and 1h")
	}
}

// checkAddr accepts host:port with a numeric port (the host may be empty: all interfaces).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return nil
}

func (l *loader) store(n *yaml.Node) {
	s := &l.cfg.Store
	l.decode(n, "store", s)
	v, dsn := get(n, "driver"), get(n, "dsn")
	switch {
	case v == nil && s.DSN != "":
		// A DSN alone names its driver by its scheme. The DSN itself may hold a password: it
		// is never quoted in a message.
		switch scheme := dsnScheme(s.DSN); scheme {
		case "postgres", "postgresql":
			s.Driver = "postgres"
		default:
			l.errorf(dsn, "store.dsn: its scheme %q names no store: use a postgres:// URL, or set store.driver", truncate(scheme, 20))
		}
	case v == nil:
		s.Driver = DefaultStoreDriver
	case !l.scalar(v):
	case s.Driver != "sqlite" && s.Driver != "postgres":
		l.errorf(v, "store.driver %q is not known: use sqlite or postgres", truncate(s.Driver, 40))
	}
	if s.Driver == "postgres" && s.DSN == "" && !l.bad(dsn) {
		l.errorf(orNode(dsn, v), "store.dsn is required with driver postgres (for example dsn: ${ERASURE_STORE_DSN})")
	}
	if s.Driver == "sqlite" && s.DSN != "" {
		l.errorf(dsn, "store.dsn is for a shared store (postgres): SQLite keeps its database in server.data_dir")
	}
}

// dsnScheme returns what comes before "://" in a DSN, lower-cased; "" when there is none.
func dsnScheme(dsn string) string {
	i := strings.Index(dsn, "://")
	if i <= 0 {
		return ""
	}
	return strings.ToLower(dsn[:i])
}

func (l *loader) suppression(n *yaml.Node) {
	s := &l.cfg.Suppression
	l.decode(n, "suppression", s)
	if v := get(n, "types"); v != nil && v.Kind == yaml.SequenceNode {
		for i, t := range s.Types {
			if !contains(l.cfg.Identifiers, t) {
				l.errorf(itemOf(v, i), "suppression.types: %q is not a declared identifier type", truncate(t, 64))
			}
		}
		if s.Types == nil {
			s.Types = []string{} // an empty list suppresses nothing
		}
	}
	v := get(n, "key")
	if !l.scalar(v) || s.Key == "" && v.Tag == "!!null" {
		return
	}
	if !envRefRE.MatchString(l.rawValue(v)) {
		l.errorf(v, "suppression.key: secrets come from the environment: write key: ${VAR}")
		return
	}
	if k, err := hex.DecodeString(strings.TrimSpace(s.Key)); err != nil || len(k) < 16 {
		l.errorf(v, "suppression.key must be at least 32 hex digits (16 bytes), for example from `openssl rand -hex 32`")
	}
}

func (l *loader) audit(n *yaml.Node) {
	l.decode(n, "audit", &l.cfg.Audit)
	l.signingKey(get(n, "signing_key"))
	a := &l.cfg.Audit
	a.Every = DefaultCheckpointEvery
	if v := get(n, "checkpoint_every"); l.scalar(v) {
		if v.Value == "0" || v.Value == "0s" {
			a.Every = 0
		} else {
			l.durationField(n, "checkpoint_every", "audit", &a.Every)
			if a.Every > 0 && a.Every < time.Minute {
				l.errorf(v, "audit.checkpoint_every %s is shorter than a minute", fmtDuration(a.Every))
			}
		}
	}
	if v := get(n, "checkpoint_dir"); l.scalar(v) && a.CheckpointDir == "" {
		l.errorf(v, "audit.checkpoint_dir is empty")
	}
	v := get(n, "key")
	if !l.scalar(v) || a.Key == "" && v.Tag == "!!null" {
		return
	}
	if !envRefRE.MatchString(l.rawValue(v)) {
		l.errorf(v, "audit.key: secrets come from the environment: write key: ${VAR}")
		return
	}
	if k, err := hex.DecodeString(strings.TrimSpace(a.Key)); err != nil || len(k) < 16 {
		l.errorf(v, "audit.key must be at least 32 hex digits (16 bytes), for example from `openssl rand -hex 32`")
	}
}

// signingKey checks audit.signing_key: a secret from the environment, the 32-byte seed of an
// Ed25519 key in hex or base64.
func (l *loader) signingKey(v *yaml.Node) {
	if !l.scalar(v) || l.cfg.Audit.SigningKey == "" && v.Tag == "!!null" {
		return
	}
	if !envRefRE.MatchString(l.rawValue(v)) {
		l.errorf(v, "audit.signing_key: secrets come from the environment: write signing_key: ${VAR}")
		return
	}
	k := strings.TrimSpace(l.cfg.Audit.SigningKey)
	b, err := hex.DecodeString(k)
	if err != nil {
		b, err = base64.StdEncoding.DecodeString(k)
	}
	if err != nil || (len(b) != 32 && len(b) != 64) {
		l.errorf(v, "audit.signing_key must be the 32-byte seed of an Ed25519 key in hex or base64, for example from `openssl rand -hex 32`")
	}
}

var (
	streamNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	ackPrefixRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func (l *loader) nats(n *yaml.Node) {
	s := &l.cfg.NATS
	l.decode(n, "nats", s)
	if v := get(n, "url"); l.scalar(v) && s.URL != "" {
		for _, one := range strings.Split(s.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(one))
			if err != nil || u.Host == "" || !contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
				l.errorf(v, "nats.url: %q is not a NATS URL (nats://host:port, tls://, ws://, wss://; several separated by commas)", truncate(one, 80))
			}
		}
	}
	if v := get(n, "port"); l.scalar(v) {
		if x, ok := intOf(v); ok && (x < 1 || x > 65535) {
			l.errorf(v, "nats.port must be between 1 and 65535")
		}
	} else if v == nil {
		s.Port = DefaultNATSPort
	}
	if v := get(n, "stream"); l.scalar(v) {
		if !streamNameRE.MatchString(s.Stream) {
			l.errorf(v, "nats.stream %q is not a stream name: use letters, digits, - and _", truncate(s.Stream, 40))
		}
	} else if v == nil {
		s.Stream = DefaultNATSStream
	}
	if v := get(n, "ack_prefix"); l.scalar(v) {
		if !ackPrefixRE.MatchString(s.AckPrefix) {
			l.errorf(v, "nats.ack_prefix %q is not a subject prefix: dot-separated tokens of letters, digits, - and _, not starting with $", truncate(s.AckPrefix, 60))
		}
	} else if v == nil {
		s.AckPrefix = DefaultNATSAckPrefix
	}
	if v := get(n, "consumer"); l.scalar(v) && !streamNameRE.MatchString(s.Consumer) {
		l.errorf(v, "nats.consumer %q is not a consumer name: use letters, digits, - and _", truncate(s.Consumer, 40))
	}
	if t := get(n, "tls"); t != nil && (s.TLS.Cert == "") != (s.TLS.Key == "") {
		l.errorf(t, "nats.tls: cert and key go together")
	}
}

// TopicRE matches a Kafka topic name.
var TopicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func (l *loader) kafka(n *yaml.Node) {
	s := &l.cfg.Kafka
	l.decode(n, "kafka", s)
	if v := get(n, "brokers"); v != nil {
		for i, b := range s.Brokers {
			if host, port, ok := strings.Cut(b, ":"); !ok || host == "" || port == "" || strings.ContainsAny(b, "/ ") {
				l.errorf(itemOf(v, i), "kafka.brokers: %q is not host:port", truncate(b, 80))
			}
		}
	}
	if v := get(n, "ack_topic"); l.scalar(v) {
		if !TopicRE.MatchString(s.AckTopic) {
			l.errorf(v, "kafka.ack_topic %q is not a topic name: letters, digits, '.', '_' and '-'", truncate(s.AckTopic, 60))
		}
	} else if v == nil {
		s.AckTopic = DefaultKafkaAckTopic
	}
	if v := get(n, "group"); l.scalar(v) && s.Group == "" {
		l.errorf(v, "kafka.group must not be empty")
	}
	if v := get(n, "partitions"); l.scalar(v) {
		if x, ok := intOf(v); ok && (x < 1 || x > 10000) {
			l.errorf(v, "kafka.partitions must be between 1 and 10000")
		}
	} else if v == nil {
		s.Partitions = DefaultKafkaPartitions
	}
	if t := get(n, "tls"); t != nil && (s.TLS.Cert == "") != (s.TLS.Key == "") {
		l.errorf(t, "kafka.tls: cert and key go together")
	}
	if v := get(n, "sasl"); v != nil {
		switch s.SASL.Mechanism {
		case "plain", "scram-sha-256", "scram-sha-512":
			if s.SASL.User == "" || s.SASL.Password == "" {
				l.errorf(v, "kafka.sasl: user and password are required")
			}
		default:
			l.errorf(v, "kafka.sasl.mechanism must be plain, scram-sha-256 or scram-sha-512")
		}
	}
}

// itemOf returns the i-th item of sequence n, or n.
func itemOf(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

func (l *loader) records(n *yaml.Node) {
	s := &l.cfg.Records
	l.decode(n, "records", s)
	for _, f := range []struct {
		key string
		v   *float64
		def float64
	}{
		{"max_archive_share", &s.MaxArchiveShare, DefaultMaxArchiveShare},
		{"max_reconcile_share", &s.MaxReconcileShare, DefaultMaxReconcileShare},
	} {
		v := get(n, f.key)
		if v == nil {
			*f.v = f.def
		} else if x, ok := floatOf(v); ok && l.scalar(v) && !(x > 0 && x <= 1) {
			l.errorf(v, "records.%s must be more than 0 and at most 1", f.key)
		}
	}
}

func (l *loader) identifiers(root, n *yaml.Node) {
	if n == nil {
		l.errorf(root, "identifiers is missing: list the identifier types subjects carry, for example identifiers: [user_id, email]")
		return
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errorf(n, "identifiers must be a non-empty list of identifier types, for example [user_id, email]")
		return
	}
	seen := map[string]int{}
	for i, c := range n.Content {
		var typ erasure.IdentifierType
		var nameNode *yaml.Node
		switch {
		case c.Kind == yaml.MappingNode:
			var ok bool
			if typ, nameNode, ok = l.identifierType(i, c); !ok {
				continue
			}
		case c.Kind != yaml.ScalarNode || c.Tag == "!!null":
			l.errorf(c, "identifiers: expected an identifier type (a name, or a mapping with name, normalize, trim, scan)")
			continue
		case l.bad(c):
			continue
		default:
			nameNode = c
			typ = erasure.DefaultIdentifierType(c.Value)
		}
		if !erasure.ValidIdentifierType(typ.Name) {
			l.errorf(nameNode, "identifiers: %q is not a valid identifier type: use lower case letters, digits and _, starting with a letter", truncate(typ.Name, 64))
			continue
		}
		if line, dup := seen[typ.Name]; dup {
			l.errorf(nameNode, "identifiers: %s is listed twice (first at line %d)", typ.Name, line)
			continue
		}
		seen[typ.Name] = nameNode.Line
		l.cfg.Identifiers = append(l.cfg.Identifiers, typ.Name)
		l.cfg.IdentifierTypes = append(l.cfg.IdentifierTypes, typ)
	}
}

// identifierYAML is an identifier type declared as a mapping.
type identifierYAML struct {
	Name      string `yaml:"name"`
	Normalize string `yaml:"normalize"`
	Trim      bool   `yaml:"trim"`
	Scan      struct {
		Names  []string `yaml:"names"`
		Values string   `yaml:"values"`
	} `yaml:"scan"`
}

// identifierType reads the i-th entry of identifiers, a mapping. It returns the type with the
// built-in scan patterns for what its scan block leaves out, and the node of its name; false
// when the entry has no usable name. Problems of normalize and scan are recorded, and the
// name is still returned, so that the datasets using the type are checked too.
func (l *loader) identifierType(i int, c *yaml.Node) (erasure.IdentifierType, *yaml.Node, bool) {
	var y identifierYAML
	DecodeStrict(c, &y, l.reporter("", "identifiers["+strconv.Itoa(i)+"]", c))
	nv := get(c, "name")
	switch {
	case nv == nil:
		l.errorf(c, "identifiers: a type given as a mapping needs a name: { name: email, normalize: lower }")
		return erasure.IdentifierType{}, nil, false
	case !l.scalar(nv) || nv.Tag == "!!null":
		if nv.Kind == yaml.ScalarNode && !l.bad(nv) {
			l.errorf(nv, "identifiers: the name of an identifier type is empty")
		}
		return erasure.IdentifierType{}, nil, false
	}
	typ := erasure.IdentifierType{Name: nv.Value, Normalize: erasure.NormalizeNone, Trim: y.Trim}
	label := truncate(typ.Name, 64)
	if v := get(c, "normalize"); l.scalar(v) && v.Tag != "!!null" {
		typ.Normalize = erasure.Normalize(v.Value)
		if typ.Normalize == "" {
			typ.Normalize = erasure.NormalizeNone
		} else if !typ.Normalize.Valid() {
			l.errorf(v, "identifiers: %s: normalize %q is not known (none, lower, digits)", label, truncate(v.Value, 40))
		}
	}
	typ.ScanNames, typ.ScanValues = erasure.DefaultScan(typ.Name)
	scan := get(c, "scan")
	if names := get(scan, "names"); names != nil && names.Kind == yaml.SequenceNode {
		typ.ScanNames = nil
		for _, p := range names.Content {
			if !l.scalar(p) {
				continue // DecodeStrict reported it
			}
			if p.Value == "" {
				l.errorf(p, "identifiers: %s: scan.names: an empty pattern matches every name (leave the list empty to match none)", label)
				continue
			}
			if msg := regexProblem("(?i)" + p.Value); msg != "" {
				l.errorf(p, "identifiers: %s: scan.names: %q is not a valid regular expression: %s", label, truncate(p.Value, 64), msg)
				continue
			}
			typ.ScanNames = append(typ.ScanNames, p.Value)
		}
	}
	if v := get(scan, "values"); l.scalar(v) {
		typ.ScanValues = ""
		if v.Tag != "!!null" && v.Value != "" {
			if msg := regexProblem(v.Value); msg != "" {
				l.errorf(v, "identifiers: %s: scan.values: %q is not a valid regular expression: %s", label, truncate(v.Value, 64), msg)
			} else {
				typ.ScanValues = v.Value
			}
		}
	}
	return typ, nv, true
}

// regexProblem returns why pattern is not a valid RE2 regular expression, or "".
func regexProblem(pattern string) string {
	_, err := regexp.Compile(pattern)
	if err == nil {
		return ""
	}
	var se *syntax.Error
	if errors.As(err, &se) {
		if se.Expr != "" && se.Expr != pattern && se.Expr != "(?i)"+pattern {
			return se.Code.String() + ": " + truncate(se.Expr, 40)
		}
		return se.Code.String()
	}
	return err.Error()
}

// policyYAML is the shape of the defaults section and of a dataset's policy overrides.
type policyYAML struct {
	Deadline    string `yaml:"deadline"`
	MaxAttempts int    `yaml:"max_attempts"`
	Backoff     struct {
		Initial string `yaml:"initial"`
		Max     string `yaml:"max"`
	} `yaml:"backoff"`
	Timeout     string    `yaml:"timeout"`
	AckTimeout  string    `yaml:"ack_timeout"`
	Concurrency int       `yaml:"concurrency"`
	Guard       guardYAML `yaml:"guard"`
	Grace       string    `yaml:"grace"`
	// MaxDeadline is read in the defaults section only.
	MaxDeadline string `yaml:"max_deadline"`
}

// DefaultMaxDeadline bounds how far ahead a submission's deadline may be when the defaults
// section sets no max_deadline: a year (a leap year's worth).
const DefaultMaxDeadline = 366 * 24 * time.Hour

func (l *loader) defaults(n *yaml.Node) {
	l.decode(n, "defaults", &policyYAML{})
	p := DefaultPolicy
	l.policy(n, "defaults", &p, true)
	if v := get(n, "grace"); l.scalar(v) && v.Tag != "!!null" && (v.Value == "0" || v.Value == "0s") {
		p.Grace = 0 // no grace window, said explicitly
	} else {
		l.durationField(n, "grace", "defaults", &p.Grace)
		if p.Grace > erasure.MaxGrace {
			l.errorf(v, "defaults: grace must be at most %s", fmtDuration(erasure.MaxGrace))
		} else if p.Grace > 0 && p.Grace >= p.Deadline {
			l.errorf(v, "defaults: grace (%s) must be shorter than the deadline (%s): the erasure runs after the window", fmtDuration(p.Grace), fmtDuration(p.Deadline))
		}
	}
	l.cfg.Defaults = p
	l.cfg.MaxDeadline = DefaultMaxDeadline
	l.durationField(n, "max_deadline", "defaults", &l.cfg.MaxDeadline)
	switch v := get(n, "max_deadline"); {
	case l.cfg.MaxDeadline > 10*366*24*time.Hour:
		l.errorf(v, "defaults: max_deadline %s is more than ten years", fmtDuration(l.cfg.MaxDeadline))
	case p.Deadline > l.cfg.MaxDeadline:
		l.errorf(orNode(v, orNode(get(n, "deadline"), n)), "defaults: deadline %s is beyond max_deadline %s", fmtDuration(p.Deadline), fmtDuration(l.cfg.MaxDeadline))
	}
}

// policy applies the policy keys present in mapping n to p and validates the result. what
// prefixes messages. deadline is only read when withDeadline.
func (l *loader) policy(n *yaml.Node, what string, p *erasure.Policy, withDeadline bool) {
	if withDeadline {
		l.durationField(n, "deadline", what, &p.Deadline)
	}
	if v := get(n, "max_attempts"); l.scalar(v) {
		if x, ok := intOf(v); ok && (x < 1 || x > 10000) {
			l.errorf(v, "%s: max_attempts must be between 1 and 10000", what)
		} else if ok {
			p.MaxAttempts = int(x)
		}
	}
	b := get(n, "backoff")
	l.durationField(b, "initial", what+": backoff", &p.Backoff.Initial)
	l.durationField(b, "max", what+": backoff", &p.Backoff.Max)
	l.durationField(n, "timeout", what, &p.Timeout)
	l.durationField(n, "ack_timeout", what, &p.AckTimeout)
	if v := get(n, "concurrency"); l.scalar(v) {
		if x, ok := intOf(v); ok && (x < 1 || x > 1000) {
			l.errorf(v, "%s: concurrency must be between 1 and 1000", what)
		} else if ok {
			p.Concurrency = int(x)
		}
	}
	l.guard(n, what, &p.Guard)
	if p.Backoff.Initial > p.Backoff.Max {
		l.errorf(orNode(b, n), "%s: backoff.initial (%s) is longer than backoff.max (%s)", what, fmtDuration(p.Backoff.Initial), fmtDuration(p.Backoff.Max))
	}
}

// durationField parses the positive duration under key in mapping n into d, if present.
func (l *loader) durationField(n *yaml.Node, key, what string, d *time.Duration) {
	v := get(n, key)
	if !l.scalar(v) || v.Tag == "!!null" {
		return
	}
	x, err := ParseDuration(v.Value)
	if err != nil {
		l.errorf(v, "%s: %s: %v", what, key, err)
		return
	}
	*d = x
}

var daysRE = regexp.MustCompile(`^([0-9]+)d(.*)$`)

// ParseDuration parses a positive duration as time.ParseDuration does, also accepting a
// leading number of days ("30d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration: write for example 30s, 90m, 720h or 30d", truncate(s, 40))
	var d time.Duration
	rest := s
	if m := daysRE.FindStringSubmatch(s); m != nil {
		days, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || days > 100000 {
			return 0, bad
		}
		d = time.Duration(days) * 24 * time.Hour
		rest = m[2]
	}
	if rest != "" {
		x, err := time.ParseDuration(rest)
		if err != nil || x < 0 || rest[0] == '+' || rest[0] == '-' {
			return 0, bad
		}
		d += x
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be more than zero", truncate(s, 40))
	}
	return d, nil
}

// fmtDuration prints d without the trailing zero units time.Duration.String adds.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

var envRefRE = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

var roleRE = regexp.MustCompile(`^(submit|operate|read|write|check|ack:.+)$`)

func (l *loader) auth(n *yaml.Node) {
	l.decode(n, "auth", &Auth{})
	tokens := get(n, "tokens")
	if tokens == nil || tokens.Kind != yaml.SequenceNode {
		return
	}
	names := map[string]int{}
	secrets := map[string]string{}
	for _, t := range tokens.Content {
		if t.Kind != yaml.MappingNode {
			continue // DecodeStrict reported it
		}
		var tok Token
		nv := get(t, "name")
		if l.scalar(nv) {
			tok.Name = nv.Value
		}
		label := tok.Name
		switch {
		case nv == nil || nv.Kind == yaml.ScalarNode && !l.bad(nv) && tok.Name == "":
			label = fmt.Sprintf("at line %d", t.Line)
			l.errorf(orNode(nv, t), "auth.tokens: token needs a name")
		case !l.scalar(nv):
			label = fmt.Sprintf("at line %d", t.Line)
		case names[tok.Name] != 0:
			l.errorf(nv, "auth.tokens: token %s is declared twice (first at line %d)", tok.Name, names[tok.Name])
		default:
			names[tok.Name] = t.Line
		}
		sv := get(t, "secret")
		switch {
		case sv == nil || sv.Kind == yaml.ScalarNode && sv.Tag == "!!null" && l.rawValue(sv) == "":
			l.errorf(orNode(sv, t), "auth.tokens: token %s needs a secret: write secret: ${VAR}", label)
		case sv.Kind != yaml.ScalarNode:
		case !envRefRE.MatchString(l.rawValue(sv)):
			l.errorf(sv, "auth.tokens: token %s: secrets come from the environment: write secret: ${VAR}", label)
		case l.bad(sv):
		case len(sv.Value) < 16:
			l.errorf(sv, "auth.tokens: token %s: the secret in %s is shorter than 16 characters", label, l.rawValue(sv))
		case secrets[sv.Value] != "":
			l.errorf(sv, "auth.tokens: token %s has the same secret as token %s", label, secrets[sv.Value])
		default:
			secrets[sv.Value] = label
		}
		if sv != nil && sv.Kind == yaml.ScalarNode {
			tok.Secret = sv.Value
		}
		rv := get(t, "roles")
		if rv == nil || rv.Kind == yaml.SequenceNode && len(rv.Content) == 0 {
			l.errorf(orNode(rv, t), "auth.tokens: token %s has no roles (submit, operate, read, write, check, ack:DATASET, ack:*)", label)
		} else if rv.Kind == yaml.SequenceNode {
			seen := map[string]bool{}
			for _, r := range rv.Content {
				if r.Kind != yaml.ScalarNode || l.bad(r) {
					continue
				}
				role := r.Value
				tok.Roles = append(tok.Roles, role)
				switch {
				case !roleRE.MatchString(role):
					l.errorf(r, "auth.tokens: token %s: role %q is not known (submit, operate, read, write, check, ack:DATASET, ack:*)", label, truncate(role, 40))
				case seen[role]:
					l.errorf(r, "auth.tokens: token %s: role %s is listed twice", label, role)
				case strings.HasPrefix(role, "ack:") && role != "ack:*" && l.names[role[4:]] == nil:
					l.errorf(r, "auth.tokens: token %s: role %s names no dataset", label, truncate(role, 40))
				}
				seen[role] = true
			}
		}
		l.cfg.Auth.Tokens = append(l.cfg.Auth.Tokens, tok)
	}
}

// decode decodes section n strictly into v, recording unknown keys and wrong types.
func (l *loader) decode(n *yaml.Node, section string, v any) {
	if n == nil {
		return
	}
	DecodeStrict(n, v, l.reporter("", section, n))
}

// reporter returns a DecodeStrict report function for the tree at root: each error is recorded
// at its line with the path of the offending key ("server.workers: expected an integer...").
// The path is base, then the keys below root; prefix comes before it.
func (l *loader) reporter(prefix, base string, root *yaml.Node) func(at *yaml.Node, msg string) {
	var ix *nodeIndex
	return func(at *yaml.Node, msg string) {
		if ix == nil {
			ix = indexTree(root)
		}
		if line, text, ok := l.explain(ix, prefix, base, at, lineOf(at), msg); ok {
			l.errorAt(line, "%s", text)
		}
	}
}

var (
	typeErrRE    = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	unknownKeyRE = regexp.MustCompile(`^unknown key "(.*?)" \(known`)
)

// explain turns a strict-decoding message about the tree indexed by ix into a located message
// for people: at the line the YAML decoder names, with the path of the key at fault, types in
// words. It returns false for type errors at lines where ${VAR} expansion already failed: they
// only repeat that error. at is the key node for unknown keys, else the tree's root.
func (l *loader) explain(ix *nodeIndex, prefix, base string, at *yaml.Node, line int, msg string) (int, string, bool) {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	path, found := "", false
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		if l.badLines[line] {
			return 0, "", false
		}
		want, value := m[1], strings.TrimSuffix(m[2], "...")
		for _, n := range ix.byLine[line] {
			if n.ShortTag() == want && strings.HasPrefix(n.Value, value) {
				path, found = ix.path[n], true
				break
			}
		}
		got := strconv.Quote(m[2])
		if m[2] == "" {
			got = tagWords[m[1]]
		}
		wantType, ok := typeWords[m[3]]
		switch {
		case ok:
		case strings.HasPrefix(m[3], "[]"):
			wantType = "a list"
		default:
			wantType = "a mapping"
		}
		msg = "expected " + wantType + ", got " + got
	} else if m := unknownKeyRE.FindStringSubmatch(msg); m != nil {
		if p, ok := ix.path[at]; ok && at != ix.root {
			path, found = p, true
		} else {
			for _, k := range ix.keysByLine[line] {
				if k.Value == m[1] {
					path, found = ix.path[k], true
					break
				}
			}
		}
	}
	if found || base != "" {
		if full := joinPath(base, path); full != "" {
			msg = full + ": " + msg
		}
	}
	return line, prefix + msg, true
}

// nodeIndex locates the nodes of one tree, with their paths from its root ("tokens[0].name");
// a key's path is that of its mapping.
type nodeIndex struct {
	root       *yaml.Node
	path       map[*yaml.Node]string
	byLine     map[int][]*yaml.Node // values
	keysByLine map[int][]*yaml.Node
}

func indexTree(root *yaml.Node) *nodeIndex {
	ix := &nodeIndex{root: root, path: map[*yaml.Node]string{}, byLine: map[int][]*yaml.Node{}, keysByLine: map[int][]*yaml.Node{}}
	var walk func(n *yaml.Node, p string)
	walk = func(n *yaml.Node, p string) {
		ix.path[n] = p
		ix.byLine[n.Line] = append(ix.byLine[n.Line], n)
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				ix.path[k] = p
				ix.keysByLine[k.Line] = append(ix.keysByLine[k.Line], k)
				walk(n.Content[i+1], joinPath(p, k.Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, p+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	if root != nil {
		walk(root, "")
	}
	return ix
}

func joinPath(base, p string) string {
	switch {
	case base == "":
		return p
	case p == "" || p[0] == '[':
		return base + p
	}
	return base + "." + p
}

var typeWords = map[string]string{
	"int": "an integer", "int64": "an integer", "float64": "a number", "string": "a string",
	"bool": "true or false", "[]string": "a list of strings", "time.Duration": "a duration",
	"[]yaml.Node": "a list", "yaml.Node": "a value",
}

var tagWords = map[string]string{
	"!!map": "a mapping", "!!seq": "a list", "!!str": "a string", "!!int": "an integer",
	"!!float": "a number", "!!bool": "a boolean", "!!null": "nothing", "!!binary": "binary data",
	"!!timestamp": "a timestamp",
}

// get returns the value under key in mapping n, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// scalar reports whether n is a scalar whose ${VAR}s expanded.
func (l *loader) scalar(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && !l.bad(n)
}

// bad reports whether ${VAR} expansion failed in n.
func (l *loader) bad(n *yaml.Node) bool { return n != nil && l.badNodes[n] }

func intOf(n *yaml.Node) (int64, bool) {
	var x int64
	if n == nil || n.Kind != yaml.ScalarNode || n.Decode(&x) != nil {
		return 0, false
	}
	return x, true
}

func floatOf(n *yaml.Node) (float64, bool) {
	var x float64
	if n == nil || n.Kind != yaml.ScalarNode || n.Decode(&x) != nil {
		return 0, false
	}
	return x, true
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
