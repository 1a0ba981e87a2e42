package registry

import (
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"erasure"
)

// Guard defaults.
const (
	DefaultMaxRemoved      = 10000
	DefaultMaxRemovedShare = 0.5
	DefaultShareMinRows    = 100
	DefaultCanaryEvery     = 24 * time.Hour
	// DefaultCanaryTimeout bounds a realtime dataset's canary; async and offline ones wait
	// DefaultSlowCanaryTimeout (an acknowledgement, a sweep).
	DefaultCanaryTimeout     = 5 * time.Minute
	DefaultSlowCanaryTimeout = time.Hour
)

// DefaultGuard is the guard of datasets when the defaults section sets none.
var DefaultGuard = erasure.Guard{MaxRemoved: DefaultMaxRemoved, MaxRemovedShare: DefaultMaxRemovedShare, ShareMinRows: DefaultShareMinRows}

type guardYAML struct {
	MaxRemoved      int64   `yaml:"max_removed"`
	MaxRemovedShare float64 `yaml:"max_removed_share"`
	ShareMinRows    int64   `yaml:"share_min_rows"`
}

type canaryYAML struct {
	Every   string            `yaml:"every"`
	Timeout string            `yaml:"timeout"`
	Subject map[string]string `yaml:"subject"`
	Plant   any               `yaml:"plant"` // the connector's (Build.DecodePlant)
}

// guard applies the keys of the guard: mapping under n to g.
func (l *loader) guard(n *yaml.Node, what string, g *erasure.Guard) {
	// Wrong types were reported by the strict decoding of the section; only ranges here.
	gn := get(n, "guard")
	if v := get(gn, "max_removed"); l.scalar(v) {
		if x, ok := intOf(v); ok && x < 0 {
			l.errorf(v, "%s: guard.max_removed must not be negative (0: no bound)", what)
		} else if ok {
			g.MaxRemoved = x
		}
	}
	if v := get(gn, "max_removed_share"); l.scalar(v) {
		if x, ok := floatOf(v); ok && !(x >= 0 && x <= 1) { // NaN too
			l.errorf(v, "%s: guard.max_removed_share must be between 0 and 1 (0 or 1: no bound)", what)
		} else if ok {
			g.MaxRemovedShare = x
		}
	}
	if v := get(gn, "share_min_rows"); l.scalar(v) {
		if x, ok := intOf(v); ok && x < 0 {
			l.errorf(v, "%s: guard.share_min_rows must not be negative", what)
		} else if ok {
			g.ShareMinRows = x
		}
	}
}

// canary reads the dataset's canary: block into ds.Canary and returns its plant node (nil when
// the block has none).
func (l *loader) canary(ds *erasure.Dataset, what string, n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil // a wrong type was reported by the strict decoding of the dataset
	}
	c := &erasure.Canary{Every: DefaultCanaryEvery, Timeout: DefaultCanaryTimeout}
	if ds.Method == erasure.MethodAsync || ds.Method == erasure.MethodOffline {
		c.Timeout = DefaultSlowCanaryTimeout
	}
	l.durationField(n, "every", what+": canary", &c.Every)
	l.durationField(n, "timeout", what+": canary", &c.Timeout)
	if sv := get(n, "subject"); sv != nil && sv.Kind == yaml.MappingNode {
		c.Subject = map[string]string{}
		for i := 0; i+1 < len(sv.Content); i += 2 {
			k, v := sv.Content[i], sv.Content[i+1]
			switch {
			case !contains(l.cfg.Identifiers, k.Value):
				l.errorf(k, "%s: canary.subject: %s is not a declared identifier type", what, truncate(k.Value, 64))
			case !l.scalar(v) || v.Value == "":
				l.errorf(v, "%s: canary.subject.%s must be a value template such as \"9{random}\"", what, k.Value)
			default:
				id := erasure.Identifier{Type: k.Value, Value: strings.ReplaceAll(v.Value, "{random}", "0")}
				if err := id.Validate(); err != nil {
					l.errorf(v, "%s: canary.subject.%s: %s", what, k.Value, erasure.ErrorMessage(err))
					continue
				}
				c.Subject[k.Value] = v.Value
			}
		}
	}
	ds.Canary = c
	plant := get(n, "plant")
	if plant != nil && ds.Method == erasure.MethodAsync {
		l.errorf(plant, "%s: canary.plant does not apply to async datasets: their canary is a command marked canary, which the owner's service handles like any other", what)
		return nil
	}
	return plant
}

// checkCanary checks, once the connector is built, that it can carry the dataset's canary: a
// Planter (or an async dataset), and subject templates only for the dataset's key types.
func (l *loader) checkCanary(e *entry, n *yaml.Node) {
	ds := e.ds
	if ds.Canary == nil || ds.Conn == nil {
		return
	}
	if _, ok := ds.Conn.(erasure.Planter); !ok && ds.Method != erasure.MethodAsync {
		l.errorf(n, "dataset %s: connector %s cannot plant a canary", ds.Name, ds.Connector)
	}
	var extra []string
	for typ := range ds.Canary.Subject {
		if !contains(ds.Keys, typ) {
			extra = append(extra, typ)
		}
	}
	sort.Strings(extra)
	for _, typ := range extra {
		l.errorf(get(n, "subject"), "dataset %s: canary.subject.%s: the dataset's keys are %s", ds.Name, typ, strings.Join(ds.Keys, ", "))
	}
}
