package registry

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"erasure"
)

// entry is one dataset being loaded, with the nodes later checks need.
type entry struct {
	index int
	node  *yaml.Node
	ds    *erasure.Dataset
	after []*yaml.Node // the after: items naming known datasets, in order
	edges []int        // the entries those items name
}

// datasetYAML is the fixed part of a dataset; the connector block is handled apart.
type datasetYAML struct {
	Name        string        `yaml:"name"`
	Owner       string        `yaml:"owner"`
	Connector   string        `yaml:"connector"`
	Method      string        `yaml:"method"`
	After       []string      `yaml:"after"`
	Provides    []provideYAML `yaml:"provides"`
	MaxAttempts int           `yaml:"max_attempts"`
	Backoff     struct {
		Initial string `yaml:"initial"`
		Max     string `yaml:"max"`
	} `yaml:"backoff"`
	Timeout     string `yaml:"timeout"`
	AckTimeout  string `yaml:"ack_timeout"`
	Concurrency int    `yaml:"concurrency"`
	Sweep       struct {
		Every string `yaml:"every"`
		Mode  string `yaml:"mode"`
	} `yaml:"sweep"`
	Guard     guardYAML  `yaml:"guard"`
	Canary    canaryYAML `yaml:"canary"`
	Retention struct {
		OlderThan string `yaml:"older_than"`
		Column    string `yaml:"column"`
		Format    string `yaml:"format"`
		Every     string `yaml:"every"`
	} `yaml:"retention"`
	Replay struct {
		Escrow string `yaml:"escrow"`
	} `yaml:"replay"`
}

type provideYAML struct {
	Identifier string `yaml:"identifier"`
	Column     string `yaml:"column"`
	Field      string `yaml:"field"`
}

var datasetKeys = []string{"name", "owner", "connector", "method", "after", "provides",
	"max_attempts", "backoff", "timeout", "ack_timeout", "concurrency", "sweep", "guard", "canary", "retention", "replay"}

// connectorNames are the connector kinds of the project; a block named like one of them is a
// connector block even when its package is not linked into this binary.
var connectorNames = []string{"http", "sql", "redis", "nats", "files", "records"}

var datasetNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

func (l *loader) datasets(root, n *yaml.Node) {
	if n == nil {
		l.errorf(root, "datasets is missing: declare every place that may hold subject data under datasets:")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "datasets must be a list of datasets")
		return
	}
	for i, d := range n.Content {
		l.dataset(i, d)
	}
	l.order()
}

func (l *loader) dataset(i int, d *yaml.Node) {
	if d.Kind != yaml.MappingNode {
		l.errorf(d, "datasets: dataset #%d must be a mapping with name, owner, connector and its block", i+1)
		return
	}
	ds := &erasure.Dataset{File: l.file, Line: d.Line}
	e := &entry{index: len(l.entries), ds: ds, node: d}
	l.entries = append(l.entries, e)
	l.cfg.Datasets = append(l.cfg.Datasets, ds)

	// Split the fixed keys from the connector block and unknown keys.
	fixed := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: d.Line, Column: d.Column}
	var extra []*yaml.Node // key, value pairs
	for j := 0; j+1 < len(d.Content); j += 2 {
		k, v := d.Content[j], d.Content[j+1]
		if contains(datasetKeys, k.Value) {
			fixed.Content = append(fixed.Content, k, v)
		} else {
			extra = append(extra, k, v)
		}
	}

	// The name first: every later message names the dataset.
	nv := get(d, "name")
	switch {
	case nv == nil:
		ds.Name = "#" + strconv.Itoa(i+1)
		l.errorf(d, "dataset %s: name is missing", ds.Name)
	case nv.Kind != yaml.ScalarNode:
		ds.Name = "#" + strconv.Itoa(i+1) // DecodeStrict reports it
	case nv.Tag == "!!null" || nv.Value == "":
		ds.Name = "#" + strconv.Itoa(i+1)
		l.errorf(nv, "dataset %s: name is empty", ds.Name)
	case l.bad(nv):
		ds.Name = l.rawValue(nv)
	default:
		ds.Name = nv.Value
		if !datasetNameRE.MatchString(nv.Value) {
			ds.Name = strconv.Quote(truncate(nv.Value, 100))
			l.errorf(nv, "dataset %s: name must be 1 to 100 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ds.Name)
		} else if first := l.names[ds.Name]; first != nil {
			l.errorf(nv, "dataset %s: name is taken by the dataset at line %d", ds.Name, first.ds.Line)
		} else {
			l.names[ds.Name] = e
		}
	}
	what := "dataset " + ds.Name

	var y datasetYAML
	DecodeStrict(fixed, &y, l.reporter(what+": ", "", fixed))

	if ov := get(d, "owner"); ov == nil {
		l.errorf(d, "%s: owner is missing: name the team that answers for this dataset", what)
	} else if l.scalar(ov) && strings.TrimSpace(y.Owner) == "" {
		l.errorf(ov, "%s: owner is empty", what)
	} else {
		ds.Owner = y.Owner
	}

	var drv Driver
	cv := get(d, "connector")
	switch {
	case cv == nil:
		l.errorf(d, "%s: connector is missing (known: %s)", what, knownDrivers())
	case !l.scalar(cv):
	case y.Connector == "":
		l.errorf(cv, "%s: connector is empty (known: %s)", what, knownDrivers())
	default:
		ds.Connector = y.Connector
		var ok bool
		if drv, ok = Lookup(y.Connector); !ok {
			l.errorf(cv, "%s: unknown connector %q (known: %s)", what, truncate(y.Connector, 40), knownDrivers())
		}
	}

	if mv := get(d, "method"); mv != nil {
		if l.scalar(mv) {
			if m := erasure.Method(y.Method); m.Valid() {
				ds.Method = m
			} else {
				l.errorf(mv, "%s: method %q is not known: use realtime, async or offline", what, truncate(y.Method, 40))
			}
		}
	} else if drv != nil {
		ds.Method = drv.Method()
	}

	ds.Policy = l.cfg.Defaults
	ds.Policy.SweepEvery, ds.Policy.SweepMode, ds.Policy.Grace = 0, "", 0
	l.policy(d, what, &ds.Policy, false)
	if av := get(d, "ack_timeout"); av != nil && ds.Method != "" && ds.Method != erasure.MethodAsync {
		l.errorf(av, "%s: ack_timeout only applies to async datasets (this one is %s)", what, ds.Method)
	}
	sv := get(d, "sweep")
	if ds.Method == erasure.MethodOffline {
		ds.Policy.SweepEvery, ds.Policy.SweepMode = DefaultSweepEvery, DefaultSweepMode
		l.durationField(sv, "every", what+": sweep", &ds.Policy.SweepEvery)
		if mv := get(sv, "mode"); l.scalar(mv) {
			if mode := erasure.SweepMode(y.Sweep.Mode); !mode.Valid() {
				l.errorf(mv, "%s: sweep.mode %q is not known: use internal or external", what, truncate(y.Sweep.Mode, 40))
			} else {
				ds.Policy.SweepMode = mode
			}
		}
	} else if sv != nil && ds.Method != "" {
		l.errorf(sv, "%s: sweep only applies to offline datasets (this one is %s)", what, ds.Method)
	}

	l.provides(ds, what, get(d, "provides"))
	plant := l.canary(ds, what, get(d, "canary"))
	l.retention(ds, what, get(d, "retention"), &y)
	l.replay(ds, what, get(d, "replay"))

	if av := get(d, "after"); av != nil && av.Kind == yaml.SequenceNode {
		for _, a := range av.Content {
			if l.scalar(a) && a.Tag != "!!null" {
				e.after = append(e.after, a)
			}
		}
	}

	// The connector block, and keys that are neither fixed nor the block.
	var block *yaml.Node
	for j := 0; j+1 < len(extra); j += 2 {
		k, v := extra[j], extra[j+1]
		switch {
		case ds.Connector != "" && k.Value == ds.Connector:
			block = v
		case isConnectorName(k.Value):
			if ds.Connector != "" {
				l.errorf(k, "%s: block %s: does not match connector %s (a dataset has one block, named like its connector)", what, k.Value, ds.Connector)
			}
		default:
			l.errorf(k, "%s: unknown key %q (known: %s, and a block named like the connector)", what, truncate(k.Value, 40), strings.Join(datasetKeys, ", "))
		}
	}
	if drv == nil {
		return
	}
	if block == nil {
		l.errorf(cv, "%s: connector %s needs %s %s: block", what, ds.Connector, article(ds.Connector), ds.Connector)
		return
	}
	l.build(e, drv, block, plant)
	l.checkCanary(e, orNode(get(d, "canary"), d))
}

// build runs the driver and checks the keys it declares.
func (l *loader) build(e *entry, drv Driver, block, plant *yaml.Node) {
	ds := e.ds
	b := &Build{Dataset: ds, Block: block, Plant: plant, Identifiers: l.cfg.Identifiers, Config: l.cfg, Resources: l.cfg.Resources, File: l.file, errs: &l.errs}
	if plant != nil {
		b.plantReport = l.reporter("dataset "+ds.Name+": ", "canary.plant", plant)
	}
	before := len(l.errs)
	conn := l.runDriver(drv, b)
	l.relocate(before, ds, block)
	if len(l.errs) > before {
		if conn != nil {
			conn.Close()
		}
		return
	}
	if conn == nil {
		l.errorf(block, "dataset %s: connector %s built nothing and reported no error (a bug in the connector)", ds.Name, ds.Connector)
		return
	}
	ds.Conn = conn
	if ds.Retention != nil {
		if _, ok := conn.(erasure.Retainer); !ok {
			l.errorf(get(e.node, "retention"), "dataset %s: connector %s cannot apply a retention policy (sql, files and records can)", ds.Name, ds.Connector)
		}
	}
	for _, k := range ds.Keys {
		if !b.Declared(k) {
			l.errorf(block, "dataset %s: the %s block uses identifier %s, which identifiers does not declare", ds.Name, ds.Connector, k)
		}
	}
}

// runDriver calls drv.Build, turning a panic into an error so that one broken connector
// cannot take the loader down.
func (l *loader) runDriver(drv Driver, b *Build) (conn erasure.Connector) {
	defer func() {
		if r := recover(); r != nil {
			b.Errorf(b.Block, "connector %s failed on this block: %v (a bug in the connector)", b.Dataset.Connector, r)
			conn = nil
		}
	}()
	return drv.Build(b)
}

// relocate rewrites the strict-decoding errors a driver recorded since before (through
// Build.Decode) as explain does: at the line the YAML decoder names, with the key path inside
// the block.
func (l *loader) relocate(before int, ds *erasure.Dataset, block *yaml.Node) {
	prefix := "dataset " + ds.Name + ": "
	var ix *nodeIndex
	kept := l.errs[:before]
	for _, err := range l.errs[before:] {
		if le, ok := err.(*LineError); ok && strings.HasPrefix(le.Msg, prefix) {
			msg := le.Msg[len(prefix):]
			if typeErrRE.MatchString(msg) || yamlLineRE.MatchString(msg) || unknownKeyRE.MatchString(msg) {
				if ix == nil {
					ix = indexTree(block)
				}
				line, text, keep := l.explain(ix, prefix, ds.Connector, nil, le.Line, msg)
				if !keep {
					continue
				}
				err = &LineError{File: le.File, Line: line, Msg: text}
			}
		}
		kept = append(kept, err)
	}
	l.errs = kept
}

func (l *loader) provides(ds *erasure.Dataset, what string, n *yaml.Node) {
	if n == nil || n.Kind != yaml.SequenceNode {
		return
	}
	seen := map[string]int{}
	for _, p := range n.Content {
		if p.Kind != yaml.MappingNode {
			continue // DecodeStrict reported it
		}
		iv, cv, fv := get(p, "identifier"), get(p, "column"), get(p, "field")
		if iv == nil {
			l.errorf(p, "%s: provides: identifier is missing", what)
			continue
		}
		if !l.scalar(iv) {
			continue
		}
		id := iv.Value
		switch {
		case !contains(l.cfg.Identifiers, id):
			l.errorf(iv, "%s: provides: identifier %s is not declared in identifiers", what, truncate(id, 64))
			continue
		case seen[id] != 0:
			l.errorf(iv, "%s: provides: identifier %s is provided twice (first at line %d)", what, id, seen[id])
			continue
		}
		seen[id] = iv.Line
		var field *yaml.Node
		switch {
		case cv != nil && fv != nil:
			l.errorf(fv, "%s: provides: %s: give column or field, not both", what, id)
			continue
		case cv != nil:
			field = cv
		case fv != nil:
			field = fv
		default:
			l.errorf(p, "%s: provides: %s: say where it is read from: column: NAME (sql) or field: NAME", what, id)
			continue
		}
		if !l.scalar(field) {
			continue
		}
		if field.Tag == "!!null" || field.Value == "" {
			l.errorf(field, "%s: provides: %s: the column or field name is empty", what, id)
			continue
		}
		ds.Provides = append(ds.Provides, erasure.Provide{Identifier: id, Field: field.Value})
	}
}

// order resolves after: references and refuses unknown targets, self references and cycles.
func (l *loader) order() {
	for _, e := range l.entries {
		seen := map[string]bool{}
		items := e.after
		e.after = nil
		for _, a := range items {
			name := a.Value
			target := l.names[name]
			switch {
			case name == e.ds.Name:
				l.errorf(a, "dataset %s: after: a dataset cannot come after itself", e.ds.Name)
			case target == nil:
				l.errorf(a, "dataset %s: after: no dataset is named %q", e.ds.Name, truncate(name, 100))
			case seen[name]:
				l.errorf(a, "dataset %s: after: %s is listed twice", e.ds.Name, name)
			default:
				seen[name] = true
				e.ds.After = append(e.ds.After, name)
				e.after = append(e.after, a)
				e.edges = append(e.edges, target.index)
			}
		}
	}
	for _, scc := range l.components() {
		if len(scc) < 2 {
			continue
		}
		l.reportCycle(scc)
	}
}

// components returns the strongly connected components of the after: graph (Tarjan's
// algorithm, iterative so that a long chain cannot exhaust the stack).
func (l *loader) components() [][]int {
	n := len(l.entries)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var out [][]int
	var sccStack []int
	next := 0
	type frame struct{ v, edge int }
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		calls := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		sccStack = append(sccStack, root)
		onStack[root] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			edges := l.entries[f.v].edges
			if f.edge < len(edges) {
				w := edges[f.edge]
				f.edge++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					sccStack = append(sccStack, w)
					onStack[w] = true
					calls = append(calls, frame{w, 0})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var scc []int
				for {
					w := sccStack[len(sccStack)-1]
					sccStack = sccStack[:len(sccStack)-1]
					onStack[w] = false
					scc = append(scc, w)
					if w == v {
						break
					}
				}
				out = append(out, scc)
			}
		}
	}
	return out
}

// reportCycle reports one cycle through the component scc, starting at its first dataset in
// file order and following the shortest way back to it.
func (l *loader) reportCycle(scc []int) {
	sort.Ints(scc)
	in := map[int]bool{}
	for _, v := range scc {
		in[v] = true
	}
	start := scc[0]
	// Breadth-first from start, within the component, until an edge leads back to start.
	prev := map[int]int{start: -1}
	queue := []int{start}
	last := -1
	for len(queue) > 0 && last < 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range l.entries[v].edges {
			if w == start {
				last = v
				break
			}
			if _, ok := prev[w]; !ok && in[w] {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	var path []int
	for v := last; v >= 0; v = prev[v] {
		path = append(path, v)
	}
	// path is last … start; reverse it and close the loop.
	names := make([]string, 0, len(path)+1)
	for i := len(path) - 1; i >= 0; i-- {
		names = append(names, l.entries[path[i]].ds.Name)
	}
	names = append(names, l.entries[start].ds.Name)
	// The error sits on start's after: item naming the next dataset of the cycle.
	first := l.entries[start]
	at := first.after[0]
	for i, w := range first.edges {
		if len(path) > 1 && w == path[len(path)-2] {
			at = first.after[i]
			break
		}
	}
	l.errorf(at, "dataset %s: after: cycle %s", first.ds.Name, strings.Join(names, " → "))
}

func knownDrivers() string {
	d := Drivers()
	if len(d) == 0 {
		return "none are linked into this binary"
	}
	return strings.Join(d, ", ")
}

func isConnectorName(s string) bool {
	if contains(connectorNames, s) {
		return true
	}
	_, ok := Lookup(s)
	return ok
}

// article is the indefinite article English puts before a connector's name.
func article(name string) string {
	if name == "http" || name == "sql" || name != "" && strings.ContainsRune("aeiou", rune(name[0])) {
		return "an"
	}
	return "a"
}

// DefaultRetentionEvery is how often a dataset's retention runs when its block says nothing.
const DefaultRetentionEvery = 24 * time.Hour

// MaxEscrow bounds a dataset's replay escrow period.
const MaxEscrow = 10 * 366 * 24 * time.Hour

// retention reads a dataset's retention block: older_than (required), column (checked by the
// connector, which knows what a column is for it), format, every.
func (l *loader) retention(ds *erasure.Dataset, what string, n *yaml.Node, y *datasetYAML) {
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return
	}
	if n.Kind != yaml.MappingNode {
		return // DecodeStrict reported it
	}
	r := &erasure.Retention{Column: y.Retention.Column, Format: y.Retention.Format, Every: DefaultRetentionEvery}
	if get(n, "older_than") == nil {
		l.errorf(n, "%s: retention.older_than is required, such as older_than: 400d", what)
	}
	l.durationField(n, "older_than", what+": retention", &r.OlderThan)
	l.durationField(n, "every", what+": retention", &r.Every)
	if r.OlderThan > 0 && r.OlderThan < time.Hour {
		l.errorf(get(n, "older_than"), "%s: retention.older_than must be at least 1h", what)
	}
	if r.Every > 0 && r.Every < time.Minute {
		l.errorf(get(n, "every"), "%s: retention.every must be at least 1m", what)
	}
	if r.Format == "" {
		r.Format = "auto"
	} else if !contains(erasure.RetentionFormats, r.Format) {
		l.errorf(get(n, "format"), "%s: retention.format %q is not known (%s)", what, truncate(r.Format, 40), strings.Join(erasure.RetentionFormats, ", "))
	}
	if r.OlderThan > 0 {
		ds.Retention = r
	}
}

// replay reads a dataset's replay block: escrow, the period the identifiers of its erasures
// stay in the replay escrow.
func (l *loader) replay(ds *erasure.Dataset, what string, n *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	var d time.Duration
	l.durationField(n, "escrow", what+": replay", &d)
	switch {
	case d == 0:
	case d < 24*time.Hour:
		l.errorf(get(n, "escrow"), "%s: replay.escrow must be at least 1d (keys are destroyed a month at a time)", what)
	case d > MaxEscrow:
		l.errorf(get(n, "escrow"), "%s: replay.escrow must be at most %s", what, fmtDuration(MaxEscrow))
	default:
		ds.Escrow = d
	}
}
