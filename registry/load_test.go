package registry_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/registry"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/invalid")

func parseFile(t *testing.T, path string) (*registry.Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return registry.Parse(path, data, lookupTestEnv)
}

func mustParse(t *testing.T, name, src string) *registry.Config {
	t.Helper()
	cfg, err := registry.Parse(name, []byte(src), lookupTestEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// parseErrors parses src and returns its error lines; it fails the test if src is accepted or
// the error is not an Errors value.
func parseErrors(t *testing.T, name, src string) []string {
	t.Helper()
	cfg, err := registry.Parse(name, []byte(src), lookupTestEnv)
	if err == nil {
		t.Fatalf("Parse accepted %s", name)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config with an error")
	}
	var errs registry.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error is a %T, not registry.Errors: %v", err, err)
	}
	return errs.Lines()
}

const minimal = `version: 1
identifiers: [user_id]
datasets:
  - name: a
    owner: team
    connector: fake
    fake: { keys: ["{user_id}"] }
`

func TestParse_Valid(t *testing.T) {
	cfg, err := parseFile(t, "testdata/valid.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	t.Run("Sections", func(t *testing.T) {
		if got, want := cfg.Server, (registry.Server{Addr: "0.0.0.0:9090", DataDir: "/var/lib/erasure", MaxBodyBytes: 65536, Workers: 4, Lease: 30 * time.Second}); got != want {
			t.Errorf("server = %+v, want %+v", got, want)
		}
		if got, want := cfg.Store, (registry.Store{Driver: "postgres", DSN: testEnv["ERASURE_POSTGRES_DSN"]}); got != want {
			t.Errorf("store = %+v, want %+v", got, want)
		}
		if cfg.Audit.Key != testEnv["ERASURE_AUDIT_KEY"] {
			t.Errorf("audit.key = %q", cfg.Audit.Key)
		}
		if cfg.NATS.URL != "nats://127.0.0.1:4222" || cfg.NATS.Port != 4333 || cfg.NATS.Stream != "ERASURE_TEST" || cfg.NATS.TLS.CA != "/etc/erasure/nats-ca.pem" {
			t.Errorf("nats = %+v", cfg.NATS)
		}
		if got, want := cfg.Records, (registry.Records{MaxArchiveShare: 0.25, MaxReconcileShare: 0.05}); got != want {
			t.Errorf("records = %+v, want %+v", got, want)
		}
		if got, want := cfg.Identifiers, []string{"user_id", "email", "account_id"}; !reflect.DeepEqual(got, want) {
			t.Errorf("identifiers = %v, want %v", got, want)
		}
		if cfg.File != "testdata/valid.yaml" {
			t.Errorf("file = %q", cfg.File)
		}
	})
	t.Run("Tokens", func(t *testing.T) {
		want := []registry.Token{
			{Name: "intake", Secret: testEnv["INTAKE_TOKEN"], Roles: []string{"submit", "read"}},
			{Name: "operator", Secret: testEnv["OPERATOR_TOKEN"], Roles: []string{"operate", "read", "write"}},
			{Name: "notifications-team", Secret: testEnv["NOTIFICATIONS_TOKEN"], Roles: []string{"ack:notifications"}},
		}
		if !reflect.DeepEqual(cfg.Auth.Tokens, want) {
			t.Errorf("tokens = %+v\nwant %+v", cfg.Auth.Tokens, want)
		}
	})
	defaults := erasure.Policy{
		Deadline:    30 * 24 * time.Hour,
		MaxAttempts: 8,
		Backoff:     erasure.Backoff{Initial: 2 * time.Second, Max: 30 * time.Minute},
		Timeout:     10 * time.Second,
		AckTimeout:  2 * time.Hour,
		// Keys left out keep the built-in guard.
		Guard: erasure.Guard{MaxRemoved: 500, MaxRemovedShare: registry.DefaultMaxRemovedShare, ShareMinRows: registry.DefaultShareMinRows},
	}
	t.Run("Defaults", func(t *testing.T) {
		if cfg.MaxDeadline != 365*24*time.Hour {
			t.Errorf("max deadline = %s, want 365d", cfg.MaxDeadline)
		}
		if cfg.Defaults != defaults {
			t.Errorf("defaults = %+v, want %+v", cfg.Defaults, defaults)
		}
	})
	t.Run("Datasets", func(t *testing.T) {
		with := func(f func(p *erasure.Policy)) erasure.Policy {
			p := defaults
			f(&p)
			return p
		}
		want := []erasure.Dataset{
			{Name: "accounts.users", Owner: "accounts-team", Connector: "fake", Method: erasure.MethodRealtime,
				Keys: []string{"user_id"}, Line: 52, Policy: defaults,
				Provides: []erasure.Provide{{Identifier: "email", Field: "email"}, {Identifier: "account_id", Field: "account.id"}},
				Canary:   &erasure.Canary{Every: 12 * time.Hour, Timeout: registry.DefaultCanaryTimeout, Subject: map[string]string{"user_id": "9{random}"}}},
			{Name: "profile-service", Owner: "profile-team", Connector: "fake", Method: erasure.MethodRealtime,
				Keys: []string{"user_id", "email"}, After: []string{"accounts.users"}, Line: 67,
				Policy: with(func(p *erasure.Policy) {
					p.MaxAttempts, p.Backoff.Max, p.Timeout = 3, 10*time.Minute, 5*time.Second
					p.Guard.MaxRemoved, p.Guard.MaxRemovedShare = 20, 0.25
				})},
			{Name: "notifications", Owner: "messaging-team", Connector: "fakeasync", Method: erasure.MethodAsync,
				Keys: []string{"user_id"}, Line: 80, Policy: with(func(p *erasure.Policy) { p.AckTimeout = 4 * time.Hour }),
				Canary: &erasure.Canary{Every: registry.DefaultCanaryEvery, Timeout: 30 * time.Minute}},
			{Name: "warehouse.events", Owner: "data-team", Connector: "fakeoffline", Method: erasure.MethodOffline,
				Keys: []string{"account_id"}, Line: 89,
				Policy: with(func(p *erasure.Policy) { p.SweepEvery, p.SweepMode = 24*time.Hour, "internal" })},
			{Name: "warehouse.clicks", Owner: "data-team", Connector: "fakeoffline", Method: erasure.MethodOffline,
				Keys: []string{"user_id"}, After: []string{"warehouse.events", "profile-service"}, Line: 95,
				Policy: with(func(p *erasure.Policy) { p.SweepEvery, p.SweepMode = 7*24*time.Hour, "external" })},
		}
		if len(cfg.Datasets) != len(want) {
			t.Fatalf("%d datasets, want %d", len(cfg.Datasets), len(want))
		}
		for i, ds := range cfg.Datasets {
			if ds.Conn == nil {
				t.Errorf("dataset %s has no connector", ds.Name)
			}
			got := *ds
			got.Conn = nil
			w := want[i]
			w.File = "testdata/valid.yaml"
			if !reflect.DeepEqual(got, w) {
				t.Errorf("dataset %d =\n %+v\nwant\n %+v", i, got, w)
			}
			if cfg.Dataset(ds.Name) != ds {
				t.Errorf("Dataset(%q) does not find it", ds.Name)
			}
		}
	})
	t.Run("CanaryPlantGoesToTheConnector", func(t *testing.T) {
		c, ok := cfg.Dataset("accounts.users").Conn.(*plantingConn)
		if !ok || len(c.Planted.Keys) != 1 || c.Planted.Keys[0] != "{user_id}" {
			t.Fatalf("connector %T %+v: want the plant block decoded by the connector", cfg.Dataset("accounts.users").Conn, c)
		}
	})
	t.Run("BlockExpandedWithLiteralDollar", func(t *testing.T) {
		c := cfg.Dataset("accounts.users").Conn.(*plantingConn).fakeConn
		if want := "owned by intake, literal ${not_a_var}"; c.Block.Note != want {
			t.Errorf("note = %q, want %q", c.Block.Note, want)
		}
	})
}

func TestParse_Defaults(t *testing.T) {
	cfg := mustParse(t, "minimal.yaml", minimal)
	if got, want := cfg.Server, (registry.Server{Addr: "127.0.0.1:8080", DataDir: "./erasure-data", MaxBodyBytes: 1 << 20, Workers: 16, Lease: time.Minute}); got != want {
		t.Errorf("server = %+v, want %+v", got, want)
	}
	if cfg.Store.Driver != "sqlite" || cfg.Store.DSN != "" {
		t.Errorf("store = %+v", cfg.Store)
	}
	if cfg.NATS.Port != 4233 || cfg.NATS.Stream != "ERASURE" || cfg.NATS.URL != "" {
		t.Errorf("nats = %+v", cfg.NATS)
	}
	if got, want := cfg.Records, (registry.Records{MaxArchiveShare: 0.5, MaxReconcileShare: 0.1}); got != want {
		t.Errorf("records = %+v, want %+v", got, want)
	}
	want := erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 12, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Hour},
		Timeout: 30 * time.Second, AckTimeout: time.Hour, Guard: erasure.Guard{MaxRemoved: 10000, MaxRemovedShare: 0.5, ShareMinRows: 100}}
	if cfg.Defaults != want {
		t.Errorf("defaults = %+v, want %+v", cfg.Defaults, want)
	}
	if cfg.MaxDeadline != registry.DefaultMaxDeadline {
		t.Errorf("max deadline = %s, want %s", cfg.MaxDeadline, registry.DefaultMaxDeadline)
	}
	if cfg.Defaults != registry.DefaultPolicy {
		t.Errorf("DefaultPolicy = %+v, defaults = %+v", registry.DefaultPolicy, cfg.Defaults)
	}
	if len(cfg.Datasets) != 1 || cfg.Datasets[0].Policy != want || cfg.Datasets[0].Method != erasure.MethodRealtime {
		t.Errorf("dataset = %+v", cfg.Datasets[0])
	}
	if len(cfg.Auth.Tokens) != 0 {
		t.Errorf("tokens = %+v", cfg.Auth.Tokens)
	}
}

// TestParse_Invalid checks every file of testdata/invalid against its .golden list of errors
// (refresh with go test ./registry -run TestParse_Invalid -update, then read the diff).
func TestParse_Invalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, err := parseFile(t, file)
			if err == nil {
				t.Fatalf("accepted")
			}
			if cfg != nil {
				t.Errorf("returned a config with an error")
			}
			var errs registry.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is a %T, not registry.Errors: %v", err, err)
			}
			got := strings.Join(errs.Lines(), "\n") + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestParse_ReportsEveryError(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nidentifiers: [user_id]\ndatasets:\n")
	const n = 50
	for i := 0; i < n; i++ {
		// Each dataset has three faults: an unknown key, a missing owner, an unknown identifier.
		b.WriteString("  - name: d" + strings.Repeat("x", i) + "\n    connector: fake\n    colour: blue\n    fake: { keys: [\"{phone}\"] }\n")
	}
	lines := parseErrors(t, "many.yaml", b.String())
	if len(lines) != 3*n {
		t.Fatalf("%d errors, want %d:\n%s", len(lines), 3*n, strings.Join(lines, "\n"))
	}
	for i, l := range lines[:3] {
		want := []string{
			"many.yaml:4: dataset d: owner is missing: name the team that answers for this dataset",
			`many.yaml:6: dataset d: unknown key "colour" (known: name, owner, connector, method, after, provides, max_attempts, backoff, timeout, ack_timeout, concurrency, sweep, guard, canary, retention, replay, and a block named like the connector)`,
			"many.yaml:7: dataset d: the fake block uses identifier phone, which identifiers does not declare",
		}[i]
		if l != want {
			t.Errorf("error %d = %q, want %q", i, l, want)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "many.yaml:203: ") {
		t.Errorf("last error = %q, want it at line 203", last)
	}
}

func TestParse_Env(t *testing.T) {
	tests := []struct {
		name  string
		value string // the note of the fake block
		want  string
		err   string
	}{
		{"Expands", `"http://x/${USER_ID}/y"`, "http://x/user_id/y", ""},
		{"ExpandsTwice", `"${USER_ID}${USER_ID}"`, "user_iduser_id", ""},
		{"EmptyIsAValue", `"a${EMPTY}b"`, "ab", ""},
		{"DoubleDollarIsLiteral", `"$${USER_ID}"`, "${USER_ID}", ""},
		{"LoneDollarsStay", `"$ $$ $a $}"`, "$ $$ $a $}", ""},
		{"Missing", `"${NOPE}"`, "", "x.yaml:7: environment variable NOPE is not set"},
		{"Unclosed", `"${USER_ID"`, "", "x.yaml:7: unclosed ${ (write $${ for a literal ${)"},
		{"BadName", `"${A-B}"`, "", "x.yaml:7: ${A-B} is not a variable reference: names are letters, digits and _ (write $${ for a literal ${)"},
		{"NoExpansionOfValues", `"${NESTED}"`, "${USER_ID}", ""},
	}
	testEnv["NESTED"] = "${USER_ID}"
	t.Cleanup(func() { delete(testEnv, "NESTED") })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "version: 1\nidentifiers: [user_id]\ndatasets:\n  - name: a\n    owner: o\n    connector: fake\n    fake: { keys: [\"{user_id}\"], note: " + tt.value + " }\n"
			if tt.err != "" {
				if got := parseErrors(t, "x.yaml", src); !reflect.DeepEqual(got, []string{tt.err}) {
					t.Errorf("errors = %q, want %q", got, tt.err)
				}
				return
			}
			cfg := mustParse(t, "x.yaml", src)
			if got := cfg.Datasets[0].Conn.(*fakeConn).Block.Note; got != tt.want {
				t.Errorf("note = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("PlainScalarTakesItsType", func(t *testing.T) {
		cfg := mustParse(t, "x.yaml", "nats:\n  port: ${NATS_PORT}\n"+minimal)
		if cfg.NATS.Port != 4333 {
			t.Errorf("port = %d", cfg.NATS.Port)
		}
	})
	t.Run("KeysAreNotExpanded", func(t *testing.T) {
		got := parseErrors(t, "x.yaml", "${USER_ID}: 1\n"+minimal)
		want := []string{`x.yaml:1: unknown key "${USER_ID}" (known: version, server, store, auth, audit, nats, kafka, records, identifiers, defaults, datasets, drp, suppression, notify)`}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	t.Run("MissingVariableIsReportedOnce", func(t *testing.T) {
		got := parseErrors(t, "x.yaml", "server:\n  workers: ${NOPE}\n"+minimal)
		want := []string{"x.yaml:2: environment variable NOPE is not set"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
}

func TestParse_Hostile(t *testing.T) {
	t.Run("AliasBomb", func(t *testing.T) {
		src := "version: 1\n" + `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`
		lines := parseErrors(t, "bomb.yaml", src)
		// 8 lines of aliases, reported once per line, besides the unknown keys a..i and the
		// missing sections.
		aliases := 0
		for _, l := range lines {
			if strings.Contains(l, "aliases (*") {
				aliases++
			}
		}
		if aliases != 8 {
			t.Errorf("%d alias errors, want 8:\n%s", aliases, strings.Join(lines, "\n"))
		}
	})
	t.Run("AliasInDataset", func(t *testing.T) {
		src := "version: 1\nidentifiers: [user_id]\ndatasets:\n  - name: a\n    owner: &o team\n    connector: fake\n    fake: { keys: [\"{user_id}\"] }\n  - name: b\n    owner: *o\n    connector: fake\n    fake: { keys: [\"{user_id}\"] }\n"
		got := parseErrors(t, "x.yaml", src)
		want := []string{"x.yaml:9: aliases (*o) are not supported: write the value out", "x.yaml:9: dataset b: owner is empty"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	t.Run("MergeKey", func(t *testing.T) {
		src := "version: 1\nidentifiers: [user_id]\nserver:\n  <<: { workers: 3 }\n" + strings.TrimPrefix(minimal, "version: 1\nidentifiers: [user_id]\n")
		got := parseErrors(t, "x.yaml", src)
		want := []string{"x.yaml:4: merge keys (<<) are not supported: write the keys out"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	t.Run("DeepNesting", func(t *testing.T) {
		src := "version: 1\nidentifiers: [user_id]\nserver: { workers: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + " }\n"
		got := parseErrors(t, "x.yaml", src)
		if !contains(got, "x.yaml:3: nesting is deeper than 64 levels") {
			t.Errorf("errors = %q", got)
		}
	})
	t.Run("VeryDeepNesting", func(t *testing.T) {
		src := "a: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
		got := parseErrors(t, "x.yaml", src)
		if want := []string{"x.yaml:1: invalid YAML: exceeded max depth of 10000"}; !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		src := minimal + "# " + strings.Repeat("x", registry.MaxFileBytes) + "\n"
		got := parseErrors(t, "x.yaml", src)
		if want := []string{"x.yaml:1: file is larger than 4 MiB"}; !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	t.Run("SyntaxError", func(t *testing.T) {
		got := parseErrors(t, "x.yaml", "version: 1\nidentifiers: [user_id\ndatasets: []\n")
		if len(got) != 1 || got[0] != "x.yaml:2: invalid YAML: did not find expected ',' or ']'" {
			t.Errorf("errors = %q", got)
		}
	})
	t.Run("TwoDocuments", func(t *testing.T) {
		got := parseErrors(t, "x.yaml", minimal+"---\nversion: 2\n")
		want := []string{"x.yaml:8: a second YAML document starts here: a configuration is one document"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	for name, src := range map[string]string{"Empty": "", "OnlyComments": "# nothing\n", "Scalar": "hello\n", "List": "- a\n"} {
		t.Run(name, func(t *testing.T) {
			got := parseErrors(t, "x.yaml", src)
			if len(got) != 1 || !strings.HasPrefix(got[0], "x.yaml:1: ") {
				t.Errorf("errors = %q", got)
			}
		})
	}
	t.Run("PanickingConnector", func(t *testing.T) {
		src := strings.Replace(minimal, "fake", "fakepanic", 2)
		got := parseErrors(t, "x.yaml", src)
		want := []string{"x.yaml:7: dataset a: connector fakepanic failed on this block: boom (a bug in the connector)"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
}

func TestParse_Version(t *testing.T) {
	body := strings.TrimPrefix(minimal, "version: 1\n")
	for _, v := range []string{"1", `"1"`, "'1'", "0x1"} {
		mustParse(t, "x.yaml", "version: "+v+"\n"+body)
	}
	for v, want := range map[string]string{
		"2":   `x.yaml:1: version "2" is not supported: this erasure reads version 1`,
		"v1":  `x.yaml:1: version "v1" is not supported: this erasure reads version 1`,
		"":    `x.yaml:1: version "" is not supported: this erasure reads version 1`,
		"[1]": `x.yaml:1: version must be 1`,
	} {
		got := parseErrors(t, "x.yaml", "version: "+v+"\n"+body)
		if !reflect.DeepEqual(got, []string{want}) {
			t.Errorf("version: %s: errors = %q, want %q", v, got, want)
		}
	}
}

func TestParse_After(t *testing.T) {
	ds := func(name, after string) string {
		return "  - name: " + name + "\n    owner: o\n    connector: fake\n    fake: { keys: [\"{user_id}\"] }\n    after: " + after + "\n"
	}
	head := "version: 1\nidentifiers: [user_id]\ndatasets:\n"
	t.Run("Order", func(t *testing.T) {
		cfg := mustParse(t, "x.yaml", head+ds("c", "[b, a]")+ds("b", "[a]")+ds("a", "[]"))
		if got := cfg.Dataset("c").After; !reflect.DeepEqual(got, []string{"b", "a"}) {
			t.Errorf("after = %v", got)
		}
	})
	t.Run("TwoCycles", func(t *testing.T) {
		got := parseErrors(t, "x.yaml", head+ds("a", "[b]")+ds("b", "[a]")+ds("c", "[e]")+ds("d", "[c]")+ds("e", "[d, a]"))
		want := []string{
			"x.yaml:8: dataset a: after: cycle a → b → a",
			"x.yaml:18: dataset c: after: cycle c → e → d → c",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("errors = %q, want %q", got, want)
		}
	})
	t.Run("LongChainCycle", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(head)
		const n = 5000
		for i := 0; i < n; i++ {
			b.WriteString("  - { name: d" + strconv.Itoa(i) + ", owner: o, connector: fake, fake: { keys: [\"{user_id}\"] }, after: [d" + strconv.Itoa((i+1)%n) + "] }\n")
		}
		got := parseErrors(t, "x.yaml", b.String())
		if len(got) != 1 || !strings.HasPrefix(got[0], "x.yaml:4: dataset d0: after: cycle d0 → d1 → d2 → ") || !strings.HasSuffix(got[0], " → d4999 → d0") {
			t.Errorf("errors = %.200q", got)
		}
	})
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"720h", 720 * time.Hour, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1.5h", 90 * time.Minute, true},
		{"90s", 90 * time.Second, true},
		{"0s", 0, false},
		{"0d", 0, false},
		{"-1h", 0, false},
		{"1d-1h", 0, false},
		{"1d+1h", 0, false},
		{"30", 0, false},
		{"d", 0, false},
		{"", 0, false},
		{"99999999999d", 0, false},
		{"1w", 0, false},
	}
	for _, tt := range tests {
		got, err := registry.ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Run("ReadsFileAndEnvironment", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "erasure.yaml")
		if err := os.WriteFile(path, []byte("store: { driver: postgres, dsn: \"${TEST_LOAD_DSN}\" }\n"+minimal), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TEST_LOAD_DSN", "postgres://127.0.0.1/x")
		cfg, err := registry.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.File != path || cfg.Store.DSN != "postgres://127.0.0.1/x" {
			t.Errorf("file %q dsn %q", cfg.File, cfg.Store.DSN)
		}
	})
	t.Run("MissingFile", func(t *testing.T) {
		_, err := registry.Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Errorf("err = %v, want code %s", err, erasure.ENOTFOUND)
		}
	})
	t.Run("Directory", func(t *testing.T) {
		_, err := registry.Load(t.TempDir())
		if erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("err = %v, want code %s", err, erasure.EINVALID)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.yaml")
		if err := os.WriteFile(path, []byte(minimal+"#"+strings.Repeat("x", registry.MaxFileBytes)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := registry.Load(path)
		var errs registry.Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Msg != "file is larger than 4 MiB" {
			t.Errorf("err = %v", err)
		}
	})
}

func TestErrors_Error(t *testing.T) {
	one := registry.Errors{{File: "f", Line: 2, Msg: "b"}}
	if got := one.Error(); got != "f:2: b" {
		t.Errorf("one = %q", got)
	}
	two := registry.Errors{{File: "f", Line: 1, Msg: "a"}, {File: "f", Line: 2, Msg: "b"}}
	if got := two.Error(); got != "2 errors:\nf:1: a\nf:2: b" {
		t.Errorf("two = %q", got)
	}
	var le *registry.LineError
	if !errors.As(error(two), &le) || le.Line != 1 {
		t.Errorf("errors.As found %v", le)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
