package registry

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"erasure"
)

// Notify is one entry of the `notify` section: an endpoint that receives signed JSON POSTs of
// the notifications it lists (see package webhook and docs/webhooks.md).
//
//	notify:
//	  - name: ticketing                       # optional: the URL's host by default
//	    url: https://tickets.example.com/hooks/erasure
//	    events: [request.completed, request.failed, request.overdue, task.failed, sweep.failed]
//	    secret: "${TICKETS_WEBHOOK_SECRET}"   # keys the signatures; from the environment only
//	    max_attempts: 20                      # optional delivery policy
//	    backoff: { initial: 10s, max: 1h }
//	    timeout: 10s
type Notify struct {
	Name   string
	URL    string
	Events []string
	Secret string
	// MaxAttempts, Backoff and Timeout are zero when the entry leaves the deliverer's defaults.
	MaxAttempts int
	Backoff     erasure.Backoff
	Timeout     time.Duration
	// Line locates the entry, for messages.
	Line int
}

// notifyYAML is the shape of a notify entry.
type notifyYAML struct {
	Name        string   `yaml:"name"`
	URL         string   `yaml:"url"`
	Events      []string `yaml:"events"`
	Secret      string   `yaml:"secret"`
	MaxAttempts int      `yaml:"max_attempts"`
	Backoff     struct {
		Initial string `yaml:"initial"`
		Max     string `yaml:"max"`
	} `yaml:"backoff"`
	Timeout string `yaml:"timeout"`
}

var notifyNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// MinNotifySecret is the shortest webhook secret accepted, in bytes.
const MinNotifySecret = 16

func (l *loader) notify(n *yaml.Node) {
	if n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "notify must be a list of endpoints: - { url: ..., events: [...], secret: \"${VAR}\" }")
		return
	}
	names := map[string]int{}
	for i, e := range n.Content {
		what := "notify[" + strconv.Itoa(i) + "]"
		if e.Kind != yaml.MappingNode {
			l.errorf(e, "%s: expected a mapping with url, events and secret", what)
			continue
		}
		var y notifyYAML
		DecodeStrict(e, &y, l.reporter("", what, e))
		nt := Notify{Line: e.Line, Name: y.Name, URL: y.URL, Secret: y.Secret}
		ok := true

		uv := get(e, "url")
		switch {
		case uv == nil:
			l.errorf(e, "%s: url is missing: the endpoint that receives the POSTs", what)
			ok = false
		case !l.scalar(uv):
			ok = false
		default:
			u, err := url.Parse(y.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				l.errorf(uv, "%s: url %q is not an http or https URL", what, truncate(y.URL, 80))
				ok = false
			} else if nt.Name == "" {
				nt.Name = strings.ToLower(u.Hostname())
			}
		}
		if nv := get(e, "name"); nv != nil && l.scalar(nv) && !notifyNameRE.MatchString(y.Name) {
			l.errorf(nv, "%s: name %q must be 1 to 64 of a-z, 0-9, '.', '_' and '-'", what, truncate(y.Name, 40))
			ok = false
		}
		if nt.Name != "" {
			if first, dup := names[nt.Name]; dup {
				at := orNode(get(e, "name"), e)
				l.errorf(at, "%s: endpoint %s is declared twice (first at line %d); give each a name", what, nt.Name, first)
				ok = false
			} else {
				names[nt.Name] = e.Line
			}
		}
		label := what
		if nt.Name != "" {
			label = "notify " + nt.Name
		}

		ev := get(e, "events")
		switch {
		case ev == nil || ev.Kind == yaml.SequenceNode && len(ev.Content) == 0:
			l.errorf(orNode(ev, e), "%s: events must list what to send: %s", label, strings.Join(erasure.Notifications, ", "))
			ok = false
		case ev.Kind == yaml.SequenceNode:
			seen := map[string]bool{}
			for _, x := range ev.Content {
				if !l.scalar(x) {
					ok = false
					continue
				}
				switch {
				case !contains(erasure.Notifications, x.Value):
					l.errorf(x, "%s: event %q is not known (%s)", label, truncate(x.Value, 40), strings.Join(erasure.Notifications, ", "))
					ok = false
				case seen[x.Value]:
					l.errorf(x, "%s: event %s is listed twice", label, x.Value)
					ok = false
				}
				seen[x.Value] = true
				nt.Events = append(nt.Events, x.Value)
			}
		default:
			ok = false // DecodeStrict reported it
		}

		sv := get(e, "secret")
		switch {
		case sv == nil || sv.Kind == yaml.ScalarNode && sv.Tag == "!!null" && l.rawValue(sv) == "":
			l.errorf(orNode(sv, e), "%s needs a secret to sign with: write secret: \"${VAR}\"", label)
			ok = false
		case sv.Kind != yaml.ScalarNode:
			ok = false
		case !envRefRE.MatchString(l.rawValue(sv)):
			l.errorf(sv, "%s: secrets come from the environment: write secret: \"${VAR}\"", label)
			ok = false
		case l.bad(sv):
			ok = false
		case len(sv.Value) < MinNotifySecret:
			l.errorf(sv, "%s: the secret in %s is shorter than %d characters", label, l.rawValue(sv), MinNotifySecret)
			ok = false
		}

		if v := get(e, "max_attempts"); l.scalar(v) {
			if x, isInt := intOf(v); isInt && (x < 1 || x > 100) {
				l.errorf(v, "%s: max_attempts must be between 1 and 100", label)
				ok = false
			} else if isInt {
				nt.MaxAttempts = int(x)
			}
		}
		b := get(e, "backoff")
		l.durationField(b, "initial", label+": backoff", &nt.Backoff.Initial)
		l.durationField(b, "max", label+": backoff", &nt.Backoff.Max)
		if b != nil && (nt.Backoff.Initial == 0) != (nt.Backoff.Max == 0) {
			l.errorf(b, "%s: backoff needs both initial and max", label)
			ok = false
		} else if nt.Backoff.Initial > nt.Backoff.Max {
			l.errorf(b, "%s: backoff.initial (%s) is longer than backoff.max (%s)", label, fmtDuration(nt.Backoff.Initial), fmtDuration(nt.Backoff.Max))
			ok = false
		}
		l.durationField(e, "timeout", label, &nt.Timeout)
		if v := get(e, "timeout"); nt.Timeout > 5*time.Minute {
			l.errorf(v, "%s: timeout must be at most 5m", label)
			ok = false
		}
		if ok {
			l.cfg.Notify = append(l.cfg.Notify, nt)
		}
	}
}

// String names the endpoint for messages: its name and host, never its path or query (which
// may hold a token).
func (n Notify) String() string {
	host := ""
	if u, err := url.Parse(n.URL); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("%s (%s)", n.Name, host)
}
