package registry

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DRP is the `drp` section: this deployment speaks the Data Rights Protocol as the Privacy
// Infrastructure Provider of one covered business (package drp, docs/drp.md):
//
//	drp:
//	  business_id: ACME_CORP               # the business-id agents address (required)
//	  deadline: 45d                        # expected_by = received + deadline (default 45d)
//	  clock_skew: 1m                       # tolerance on issued-at / expires-at (default 1m)
//	  max_message_lifetime: 1h             # longest expires-at − issued-at accepted (default 1h)
//	  allow_http_callbacks: false          # status_callback must be https unless true
//	  agents:
//	    - id: CR_AGENT                     # the agent-id it signs with
//	      verify_key: "base64…"            # its Ed25519 public key (base64, or 64 hex digits)
//	      identifiers: { email: email, phone_number: phone }   # DRP claim → identifier type
//	      unverified: [email]              # claims used without their _verified flag
//
// A claim is used only when the message also says `<claim>_verified: true`, unless the claim
// is listed in unverified.
type DRP struct {
	BusinessID string
	Deadline   time.Duration
	ClockSkew  time.Duration
	// MaxMessageLifetime bounds expires-at − issued-at of signed messages: each is remembered
	// (to refuse it again) until it expires.
	MaxMessageLifetime time.Duration
	AllowHTTPCallbacks bool
	Agents             []DRPAgent
}

// DRPAgent is one trusted authorized agent.
type DRPAgent struct {
	ID        string
	VerifyKey ed25519.PublicKey
	// Identifiers maps DRP identity claims (schema.org Person: email, phone_number…) to
	// declared identifier types.
	Identifiers map[string]string
	// Unverified are claims used without their _verified flag.
	Unverified []string
	Line       int
}

// Defaults of the drp section.
const (
	DefaultDRPDeadline           = 45 * 24 * time.Hour
	DefaultDRPClockSkew          = time.Minute
	DefaultDRPMaxMessageLifetime = time.Hour
)

type drpYAML struct {
	BusinessID         string `yaml:"business_id"`
	Deadline           string `yaml:"deadline"`
	ClockSkew          string `yaml:"clock_skew"`
	MaxMessageLifetime string `yaml:"max_message_lifetime"`
	AllowHTTPCallbacks bool   `yaml:"allow_http_callbacks"`
	Agents             []struct {
		ID          string            `yaml:"id"`
		VerifyKey   string            `yaml:"verify_key"`
		Identifiers map[string]string `yaml:"identifiers"`
		Unverified  []string          `yaml:"unverified"`
	} `yaml:"agents"`
}

var (
	drpBusinessRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// DRPAgentIDRE is what an agent id may look like (the service directory's ids are
	// [A-Z_]+; test agents use lower case and dashes).
	DRPAgentIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	drpClaimRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	// Keys of the exercise message that are not identity claims.
	drpReservedClaims = []string{"exercise", "regime", "relationships", "status_callback", "reason", "request_id", "power_of_attorney"}
)

// maxDRPDeadline is the furthest deadline a submission may have (pipeline.DefaultMaxDeadline).
const maxDRPDeadline = 366 * 24 * time.Hour

func (l *loader) drp(n *yaml.Node) {
	if n == nil {
		return
	}
	var y drpYAML
	l.decode(n, "drp", &y)
	if n.Kind != yaml.MappingNode {
		return // decode reported it
	}
	d := &DRP{BusinessID: y.BusinessID, Deadline: DefaultDRPDeadline, ClockSkew: DefaultDRPClockSkew,
		MaxMessageLifetime: DefaultDRPMaxMessageLifetime, AllowHTTPCallbacks: y.AllowHTTPCallbacks}
	l.cfg.DRP = d
	switch v := get(n, "business_id"); {
	case v == nil:
		l.errorf(n, "drp.business_id is required: the business-id agents send their requests to")
	case !l.scalar(v):
	case !drpBusinessRE.MatchString(d.BusinessID):
		l.errorf(v, "drp.business_id %q is not valid: 1 to 128 letters, digits, '.', '_', ':' and '-'", truncate(d.BusinessID, 40))
	}
	for _, f := range []struct {
		key string
		v   *time.Duration
		max time.Duration
	}{
		{"deadline", &d.Deadline, maxDRPDeadline},
		{"clock_skew", &d.ClockSkew, time.Hour},
		{"max_message_lifetime", &d.MaxMessageLifetime, 24 * time.Hour},
	} {
		l.durationField(n, f.key, "drp", f.v)
		if *f.v > f.max {
			l.errorf(get(n, f.key), "drp.%s must be at most %s", f.key, fmtDays(f.max))
		}
	}
	agents := get(n, "agents")
	if agents == nil || agents.Kind == yaml.SequenceNode && len(agents.Content) == 0 {
		l.errorf(orNode(agents, n), "drp.agents must list at least one authorized agent: { id, verify_key, identifiers }")
		return
	}
	if agents.Kind != yaml.SequenceNode {
		return // decode reported it
	}
	ids, keys := map[string]int{}, map[string]string{}
	for i, a := range agents.Content {
		if a.Kind != yaml.MappingNode || i >= len(y.Agents) {
			continue // decode reported it
		}
		ya := y.Agents[i]
		agent := DRPAgent{ID: ya.ID, Identifiers: map[string]string{}, Line: a.Line}
		label := ya.ID
		switch v := get(a, "id"); {
		case v == nil || l.scalar(v) && ya.ID == "":
			label = "at line " + strconv.Itoa(a.Line)
			l.errorf(orNode(v, a), "drp.agents: agent needs an id (its agent-id)")
		case !l.scalar(v):
			label = "at line " + strconv.Itoa(a.Line)
		case !DRPAgentIDRE.MatchString(ya.ID):
			l.errorf(v, "drp.agents: agent id %q is not valid: 1 to 64 letters, digits, '.', '_' and '-'", truncate(ya.ID, 40))
		case ids[ya.ID] != 0:
			l.errorf(v, "drp.agents: agent %s is declared twice (first at line %d)", ya.ID, ids[ya.ID])
		default:
			ids[ya.ID] = a.Line
		}
		switch v := get(a, "verify_key"); {
		case v == nil:
			l.errorf(a, "drp.agents: agent %s needs a verify_key: its Ed25519 public key in base64", label)
		case !l.scalar(v):
		default:
			key, ok := parseVerifyKey(ya.VerifyKey)
			switch {
			case !ok:
				l.errorf(v, "drp.agents: agent %s: verify_key is not an Ed25519 public key: 32 bytes in base64 (or 64 hex digits)", label)
			case keys[string(key)] != "":
				l.errorf(v, "drp.agents: agent %s has the same verify_key as agent %s", label, keys[string(key)])
			default:
				keys[string(key)] = label
				agent.VerifyKey = key
			}
		}
		l.drpIdentifiers(a, label, ya.Identifiers, &agent)
		if v := get(a, "unverified"); v != nil && v.Kind == yaml.SequenceNode {
			for j, c := range ya.Unverified {
				if _, ok := agent.Identifiers[c]; !ok && l.scalar(itemOf(v, j)) {
					l.errorf(itemOf(v, j), "drp.agents: agent %s: unverified claim %q is not one of its identifiers", label, truncate(c, 40))
					continue
				}
				agent.Unverified = append(agent.Unverified, c)
			}
		}
		d.Agents = append(d.Agents, agent)
	}
}

// drpIdentifiers checks an agent's claim → identifier type mapping into agent.Identifiers.
func (l *loader) drpIdentifiers(a *yaml.Node, label string, m map[string]string, agent *DRPAgent) {
	v := get(a, "identifiers")
	if v == nil || v.Kind == yaml.MappingNode && len(v.Content) == 0 {
		l.errorf(orNode(v, a), "drp.agents: agent %s needs identifiers: which claims name a subject, for example { email: email }", label)
		return
	}
	if v.Kind != yaml.MappingNode {
		return // decode reported it
	}
	claims := make([]string, 0, len(m))
	for c := range m {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, tv := v.Content[i], v.Content[i+1]
		claim, typ := k.Value, m[k.Value]
		switch {
		case !drpClaimRE.MatchString(claim) || strings.HasSuffix(claim, "_verified") || contains(drpReservedClaims, claim):
			l.errorf(k, "drp.agents: agent %s: %q is not an identity claim (such as email, phone_number, name)", label, truncate(claim, 40))
		case !l.scalar(tv):
		case !contains(l.cfg.Identifiers, typ):
			l.errorf(tv, "drp.agents: agent %s: claim %s maps to %q, which is not a declared identifier type (declared: %s)", label, claim, truncate(typ, 40), strings.Join(l.cfg.Identifiers, ", "))
		default:
			agent.Identifiers[claim] = typ
		}
	}
}

// parseVerifyKey reads an Ed25519 public key in base64 (DRP 0.9.1 and later) or hex (before).
func parseVerifyKey(s string) (ed25519.PublicKey, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 2*ed25519.PublicKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return b, true
		}
	}
	return nil, false
}

// fmtDays prints d in days when it is a whole number of them.
func fmtDays(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return fmtDuration(d)
}
