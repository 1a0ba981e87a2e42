package registry_test

import (
	"context"

	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/registry"
)

// The fake connectors stand in for the real ones (which register themselves from their own
// packages): they decode a block strictly, parse its templates and declare their keys.
func init() {
	registry.Register("fake", fakeDriver{method: erasure.MethodRealtime})
	registry.Register("fakeasync", fakeDriver{method: erasure.MethodAsync})
	registry.Register("fakeoffline", fakeDriver{method: erasure.MethodOffline})
	registry.Register("fakepanic", panicDriver{})
}

type fakeDriver struct{ method erasure.Method }

type fakeBlock struct {
	URL  string   `yaml:"url"`
	Keys []string `yaml:"keys"`
	Note string   `yaml:"note"` // free text, not a template
}

// fakeConn is the connector fakeDriver builds; it remembers its block.
type fakeConn struct {
	Block  fakeBlock
	Closed bool
}

func (c *fakeConn) Close() error { c.Closed = true; return nil }

// plantingConn is what the fake driver builds for a dataset whose canary has a plant block:
// an erasure.Planter remembering the block.
type plantingConn struct {
	*fakeConn
	Planted fakePlant
}

type fakePlant struct {
	Keys []string `yaml:"keys"`
}

func (c *plantingConn) Plant(ctx context.Context, s erasure.Subject) error { return nil }
func (c *plantingConn) Remains(ctx context.Context, s erasure.Subject) (bool, error) {
	return false, nil
}

func (d fakeDriver) Method() erasure.Method { return d.method }

func (d fakeDriver) Build(b *registry.Build) erasure.Connector {
	var blk fakeBlock
	if !b.Decode(b.Block, &blk) {
		return nil
	}
	ok := true
	seen := map[string]bool{}
	var keys []string
	parse := func(n *yaml.Node) {
		t, err := registry.ParseTemplate(n.Value)
		if err != nil {
			b.Errorf(n, "%v", err)
			ok = false
			return
		}
		for _, v := range t.Vars() {
			if !seen[v] {
				seen[v] = true
				keys = append(keys, v)
			}
		}
	}
	for i := 0; i+1 < len(b.Block.Content); i += 2 {
		k, v := b.Block.Content[i], b.Block.Content[i+1]
		switch k.Value {
		case "url":
			parse(v)
		case "keys":
			for _, item := range v.Content {
				parse(item)
			}
		}
	}
	if len(keys) == 0 && ok {
		b.Errorf(b.Block, "keys: name at least one {identifier}")
		ok = false
	}
	if !ok {
		return nil
	}
	b.Dataset.Keys = keys
	if b.Plant != nil && d.method != erasure.MethodOffline {
		// The fake offline connector cannot plant: the loader must say so.
		var p fakePlant
		if !b.DecodePlant(&p) {
			return nil
		}
		return &plantingConn{fakeConn: &fakeConn{Block: blk}, Planted: p}
	}
	return &fakeConn{Block: blk}
}

// panicDriver is a broken connector: the loader must survive it.
type panicDriver struct{}

func (panicDriver) Method() erasure.Method                    { return erasure.MethodRealtime }
func (panicDriver) Build(b *registry.Build) erasure.Connector { panic("boom") }

// testEnv is the environment the test configurations expand from.
var testEnv = map[string]string{
	"ERASURE_POSTGRES_DSN": "postgres://erasure@127.0.0.1:5432/erasure?sslmode=disable",
	"ERASURE_AUDIT_KEY":    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	"NATS_PORT":            "4333",
	"INTAKE_TOKEN":         "intake-secret-0123456789",
	"INTAKE_TOKEN_NAME":    "intake",
	"OPERATOR_TOKEN":       "operator-secret-0123456789",
	"NOTIFICATIONS_TOKEN":  "notifications-secret-0123456789",
	"SHORT_TOKEN":          "short",
	"EMPTY":                "",
	"USER_ID":              "user_id",
	"WEBHOOK_SECRET":       "whsec-0123456789abcdef",
	"OTHER_SECRET":         "whsec-fedcba9876543210",
	"REDIS_PASSWORD":       "from-the-environment",
}

func lookupTestEnv(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}
