package scan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/registry"
)

// Defaults of Options.
const (
	DefaultSample   = 1000
	DefaultBudget   = 30 * time.Second
	DefaultParallel = 4
	// MaxSample bounds Options.Sample.
	MaxSample = 1_000_000
)

// ErasedStore gives the keyed hashes ("type:hex", audit.Hasher.Identifier) of the identifiers
// of every completed request. store/sqlite.DB implements it.
type ErasedStore interface {
	ErasedHashes(ctx context.Context) ([]string, error)
}

// Options configure Run.
type Options struct {
	// Dataset, when set, limits the scan to the sources of that dataset (its database, its
	// Redis database, its directory). Coverage is still judged against every dataset.
	Dataset string
	// Sample is the number of rows read per table, keys per Redis database and rows per
	// snapshot directory (default DefaultSample).
	Sample int
	// Budget is the time each source has (default DefaultBudget).
	Budget time.Duration
	// RedisMatch is the SCAN MATCH pattern of Redis sources (default "*").
	RedisMatch string
	// Parallel is how many sources are scanned at once (default DefaultParallel).
	Parallel int
	// Erased and Hasher enable the residue check; both or neither.
	Erased ErasedStore
	Hasher *audit.Hasher
	// Progress, when set, receives a line for people as each source and table advances.
	Progress func(line string)
}

// Kind is the kind of a finding.
type Kind string

const (
	// Unregistered is personal data in a place no dataset covers.
	Unregistered Kind = "unregistered"
	// Residue is a value of an erased subject (of a completed request) that is still there.
	Residue Kind = "residue"
)

// Finding is one place that needs an operator.
type Finding struct {
	Kind Kind `json:"kind"`
	// Source names the database, Redis database or directory, without secrets.
	Source string `json:"source"`
	// Location is the place in it: schema.table.column, a field path, a key family.
	Location string `json:"location"`
	// Identifier is the identifier type recognized (unregistered) or matched (residue).
	Identifier string `json:"identifier"`
	// NameMatch, Matched and Sampled are the evidence: whether the place's name matched the
	// type's name patterns, and how many of its sampled values matched its value pattern.
	NameMatch bool `json:"name_match,omitempty"`
	Matched   int  `json:"values_matched"`
	Sampled   int  `json:"values_sampled"`
	// Hash is the keyed hash of the erased identifier found (residue), and Values how many
	// sampled values carried it.
	Hash   string `json:"hash,omitempty"`
	Values int    `json:"values,omitempty"`
	// Dataset is, for residue, the registered dataset covering the place (none: the place is
	// not registered); for an unregistered place, the dataset of its table, directory or key
	// family when it has one.
	Dataset string `json:"dataset,omitempty"`
	// Suggestion is a registry entry (YAML, with comments) to start from.
	Suggestion string `json:"suggestion,omitempty"`
}

// Evidence says in a few words why the finding was made.
func (f Finding) Evidence() string {
	if f.Kind == Residue {
		s := fmt.Sprintf("erased %s in %s", f.Hash, plural(f.Values, "sampled value"))
		if f.Dataset != "" {
			s += "; dataset " + f.Dataset + " covers it"
		}
		return s
	}
	var s string
	switch {
	case f.Sampled == 0:
		s = "no values sampled"
	case f.Matched == 0:
		// Recognized by name: the type has no value pattern (ids look like any number).
		s = plural(f.Sampled, "value") + " sampled"
	default:
		s = fmt.Sprintf("%d/%d values match", f.Matched, f.Sampled)
	}
	if f.NameMatch {
		s = "name; " + s
	}
	return s
}

// SourceKind is the kind of a source.
type SourceKind string

const (
	SourceSQL   SourceKind = "sql"
	SourceRedis SourceKind = "redis"
	SourceFiles SourceKind = "files"
)

// Source is one database, Redis database or snapshot directory scanned.
type Source struct {
	Kind SourceKind `json:"kind"`
	// Name says where it is, without secrets.
	Name string `json:"name"`
	// Datasets are the registered datasets it holds.
	Datasets []string `json:"datasets"`
	// Units counts the tables, key families or partitions read; Rows the rows or keys
	// sampled; Values the values looked at.
	Units  int   `json:"units"`
	Rows   int64 `json:"rows"`
	Values int64 `json:"values"`
	// Partial is set when the budget ran out before everything was read.
	Partial bool `json:"partial,omitempty"`
	// Error says why the source could not be read (whole or in part).
	Error     string `json:"error,omitempty"`
	ElapsedMS int64  `json:"elapsed_ms"`
}

// Report is the outcome of a scan.
type Report struct {
	Sources  []Source  `json:"sources"`
	Findings []Finding `json:"findings"`
	// ResidueChecked says whether values were compared with erased identifiers, and Erased
	// with how many.
	ResidueChecked bool `json:"residue_checked"`
	Erased         int  `json:"erased_identifiers"`
}

// Count returns the number of findings of kind k.
func (r *Report) Count(k Kind) int {
	n := 0
	for _, f := range r.Findings {
		if f.Kind == k {
			n++
		}
	}
	return n
}

// Failed returns the number of sources that could not be read.
func (r *Report) Failed() int {
	n := 0
	for _, s := range r.Sources {
		if s.Error != "" {
			n++
		}
	}
	return n
}

// source is one place to read, built from the registry.
type source interface {
	// describe returns the source's kind, name and datasets.
	describe() Source
	// scan samples the source into c, within ctx (which carries the budget). It returns an
	// error when the source could not be read; what was sampled before still counts.
	scan(ctx context.Context, c *collector, s *Source) error
	// suggest returns a registry entry for an unregistered place of identifier type t.
	suggest(p *place, t erasure.IdentifierType) string
}

// Run scans the sources of cfg and returns what it found. Sources that cannot be read are
// reported in Report.Sources, not as an error. It returns an EINVALID error for bad options
// (an unknown dataset, a dataset whose connector cannot be scanned, Erased without Hasher),
// and the store's error when the erased identifiers cannot be read.
func Run(ctx context.Context, cfg *registry.Config, opts Options) (*Report, error) {
	if opts.Sample == 0 {
		opts.Sample = DefaultSample
	}
	if opts.Sample < 1 || opts.Sample > MaxSample {
		return nil, erasure.Errorf(erasure.EINVALID, "sample must be between 1 and %d", MaxSample)
	}
	if opts.Budget == 0 {
		opts.Budget = DefaultBudget
	}
	if opts.Budget < 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "budget must be positive")
	}
	if opts.RedisMatch == "" {
		opts.RedisMatch = "*"
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Progress == nil {
		opts.Progress = func(string) {}
	}
	if (opts.Erased == nil) != (opts.Hasher == nil) {
		return nil, erasure.Errorf(erasure.EINVALID, "scan: the residue check needs both the store and the audit key")
	}
	types := cfg.IdentifierTypes
	if len(types) == 0 {
		for _, name := range cfg.Identifiers {
			types = append(types, erasure.DefaultIdentifierType(name))
		}
	}
	m, err := compileTypes(types)
	if err != nil {
		return nil, err
	}
	srcs, err := sources(cfg, opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Sources: make([]Source, len(srcs))}
	var erased *erasedSet
	if opts.Erased != nil {
		hashes, err := opts.Erased.ErasedHashes(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the erased identifiers from the store: %w", err)
		}
		erased = newErasedSet(opts.Hasher, hashes, m)
		rep.ResidueChecked = true
		rep.Erased = len(hashes)
	}

	findings := make([][]Finding, len(srcs))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rep.Sources[i], findings[i] = runSource(ctx, src, m, erased, opts)
		}()
	}
	wg.Wait()
	for _, f := range findings {
		rep.Findings = append(rep.Findings, f...)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.Kind != b.Kind {
			return a.Kind == Unregistered
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Location != b.Location {
			return a.Location < b.Location
		}
		return a.Hash < b.Hash
	})
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	return rep, ctx.Err()
}

// runSource scans one source within its budget and judges what it sampled.
func runSource(ctx context.Context, src source, m matchers, erased *erasedSet, opts Options) (Source, []Finding) {
	s := src.describe()
	start := time.Now()
	opts.Progress(fmt.Sprintf("%s %s: scanning (budget %s)", s.Kind, s.Name, opts.Budget))
	bctx, cancel := context.WithTimeout(ctx, opts.Budget)
	defer cancel()
	c := newCollector(m, erased, opts)
	err := src.scan(bctx, c, &s)
	switch {
	case ctx.Err() != nil:
		s.Partial = true
		s.Error = "interrupted"
	case errors.Is(bctx.Err(), context.DeadlineExceeded):
		s.Partial = true // what failed then failed for want of time
	case err != nil:
		s.Error = err.Error()
	}
	s.Values = c.values
	s.ElapsedMS = time.Since(start).Milliseconds()
	fs := c.findings(s.Name, src)
	line := fmt.Sprintf("%s %s: %d units, %d rows, %d values in %s", s.Kind, s.Name, s.Units, s.Rows, s.Values, time.Since(start).Round(time.Millisecond))
	if s.Partial {
		line += " (budget used up: partial)"
	}
	if s.Error != "" {
		line += ": " + s.Error
	}
	opts.Progress(line)
	return s, fs
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") && !strings.HasSuffix(word, "ey") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(word, "y")) // families
	}
	return fmt.Sprintf("%d %ss", n, word)
}
