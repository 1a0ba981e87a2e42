package registry

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"erasure"
)

// Driver builds the connectors of one kind (http, sql, redis, nats, files, records) from a
// dataset's connector block. Each connector package registers its Driver in an init function:
//
//	func init() { registry.Register("http", driver{}) }
type Driver interface {
	// Method is the method of datasets using this connector unless they set one.
	Method() erasure.Method
	// Build decodes and validates the connector block (b.Block, the value under the key named
	// like the connector, with ${VAR}s already expanded), sets b.Dataset.Keys to the identifier
	// types it needs, and returns the connector. It performs no I/O: connecting happens on
	// first use, so that `datasets validate` works offline; a resource the server shares (its
	// NATS connection, its record store) is asked for from b.Resources and arrives once the
	// server has opened it. It reports problems with b.Errorf (with the offending node, for
	// its line) and returns a nil connector when there were any.
	Build(b *Build) erasure.Connector
}

// Build is what a Driver gets to build one dataset's connector.
type Build struct {
	Dataset *erasure.Dataset
	// Block is the connector block; nil when the dataset has none.
	Block *yaml.Node
	// Plant is the plant block of the dataset's canary (Dataset.Canary is set when the dataset
	// has a canary), nil when it has none: a connector that can plant canaries decodes it
	// (with Decode) and returns an erasure.Planter.
	Plant *yaml.Node
	// Identifiers are the identifier types the registry declares.
	Identifiers []string
	// Config is the whole configuration being loaded (data dir, NATS settings...).
	Config *Config
	// Resources is where the connector asks for what the server shares (Resource.Use).
	Resources *Resources
	File      string
	errs      *[]error
	// plantReport reports the strict-decoding errors of the plant block, located within it.
	plantReport func(at *yaml.Node, msg string)
}

// DecodePlant decodes the canary's plant block strictly into v (as Decode does the connector
// block), reporting problems as "canary.plant..." at their lines; false when there were any.
// A dataset whose canary has no plant block leaves v as it is and succeeds.
func (b *Build) DecodePlant(v any) bool {
	if b.Plant == nil {
		return true
	}
	before := len(*b.errs)
	report := b.plantReport
	if report == nil {
		report = func(at *yaml.Node, msg string) { b.Errorf(at, "canary.plant: %s", msg) }
	}
	DecodeStrict(b.Plant, v, report)
	return len(*b.errs) == before
}

// Errorf records an error located at n (or at the dataset when n is nil).
func (b *Build) Errorf(n *yaml.Node, format string, args ...any) {
	line := b.Dataset.Line
	if n != nil {
		line = n.Line
	}
	*b.errs = append(*b.errs, &LineError{File: b.File, Line: line, Msg: fmt.Sprintf("dataset %s: ", b.Dataset.Name) + fmt.Sprintf(format, args...)})
}

// Declared reports whether typ is a declared identifier type.
func (b *Build) Declared(typ string) bool {
	for _, t := range b.Identifiers {
		if t == typ {
			return true
		}
	}
	return false
}

// AsyncFields checks the fields every async connector's block shares: ack_timeout (a
// duration of at least a second, optional) and identifiers (the declared types the owner
// needs, at least one, each once), reporting problems as "KIND.field: ..." at their lines.
// When they are valid it sets the dataset's ack timeout (if given) and keys, and returns true.
func (b *Build) AsyncFields(kind, ackTimeout string, identifiers []string) bool {
	ok := true
	var timeout time.Duration
	if ackTimeout != "" {
		d, err := ParseDuration(ackTimeout)
		switch {
		case err != nil:
			b.Errorf(Child(b.Block, "ack_timeout"), "%s.ack_timeout: %v", kind, err)
			ok = false
		case d < time.Second:
			b.Errorf(Child(b.Block, "ack_timeout"), "%s.ack_timeout %s is shorter than a second", kind, d)
			ok = false
		}
		timeout = d
	}
	if len(identifiers) == 0 {
		b.Errorf(b.Block, "%s.identifiers is required: list the identifier types the owner needs, such as [user_id]", kind)
		ok = false
	}
	seen := map[string]bool{}
	for i, typ := range identifiers {
		at := Item(Child(b.Block, "identifiers"), i)
		switch {
		case !b.Declared(typ):
			b.Errorf(at, "%s.identifiers: %q is not a declared identifier (declared: %v)", kind, typ, b.Identifiers)
			ok = false
		case seen[typ]:
			b.Errorf(at, "%s.identifiers: %q is listed twice", kind, typ)
			ok = false
		}
		seen[typ] = true
	}
	if !ok {
		return false
	}
	if timeout > 0 {
		b.Dataset.Policy.AckTimeout = timeout
	}
	b.Dataset.Keys = append([]string(nil), identifiers...)
	return true
}

// LineError is one registry or configuration error, located in its file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// Register makes a connector kind available under name. It panics if name is taken.
func Register(name string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("registry: connector registered twice: " + name)
	}
	drivers[name] = d
}

// Lookup returns the Driver registered under name.
func Lookup(name string) (Driver, bool) {
	driversMu.RLock()
	defer driversMu.RUnlock()
	d, ok := drivers[name]
	return d, ok
}

// Drivers returns the names of the registered connectors, sorted.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	var out []string
	for n := range drivers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
