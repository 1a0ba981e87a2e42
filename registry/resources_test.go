package registry_test

import (
	"sync"
	"testing"

	"erasure"
	"erasure/registry"
)

// clock is a resource the test shares with a connector: a pointer the connector keeps.
type clock struct{ name string }

var sharedClock = registry.NewResource[*clock]("test-clock")

// clockConn asks for the shared clock in Build.
type clockConn struct {
	mu    sync.Mutex
	clock *clock
}

func (c *clockConn) Close() error { return nil }

func (c *clockConn) got() *clock {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clock
}

type clockDriver struct{}

func (clockDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (clockDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	c := &clockConn{}
	sharedClock.Use(b.Resources, func(k *clock) {
		c.mu.Lock()
		c.clock = k
		c.mu.Unlock()
	})
	return c
}

func init() { registry.Register("fakeclock", clockDriver{}) }

const clockRegistry = `version: 1
identifiers: [user_id]
datasets:
  - { name: a, owner: team, connector: fakeclock, fakeclock: {} }
  - { name: b, owner: team, connector: fakeclock, fakeclock: {} }
`

func TestResources(t *testing.T) {
	t.Run("ProvidedToEveryConnectorThatAsked", func(t *testing.T) {
		cfg := mustParse(t, "clock.yaml", clockRegistry)
		if !sharedClock.Wanted(cfg.Resources) {
			t.Fatal("the connectors asked for the clock, but it is not wanted")
		}
		for _, d := range cfg.Datasets {
			if got := d.Conn.(*clockConn).got(); got != nil {
				t.Fatalf("%s has a clock before the server provides one", d.Name)
			}
		}
		k := &clock{"server"}
		sharedClock.Provide(cfg.Resources, k)
		for _, d := range cfg.Datasets {
			if got := d.Conn.(*clockConn).got(); got != k {
				t.Fatalf("%s got %v, want the server's clock", d.Name, got)
			}
		}
	})
	t.Run("AskingAfterProvideGetsItAtOnce", func(t *testing.T) {
		rs := registry.NewResources()
		k := &clock{"early"}
		sharedClock.Provide(rs, k)
		var got *clock
		sharedClock.Use(rs, func(c *clock) { got = c })
		if got != k {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("ProvidingAgainReplaces", func(t *testing.T) {
		rs := registry.NewResources()
		var got []string
		sharedClock.Use(rs, func(c *clock) { got = append(got, c.name) })
		sharedClock.Provide(rs, &clock{"first"})
		sharedClock.Provide(rs, &clock{"second"})
		if len(got) != 2 || got[1] != "second" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("NotWantedWhenNobodyAsked", func(t *testing.T) {
		cfg := mustParse(t, "fake.yaml", `version: 1
identifiers: [user_id]
datasets:
  - { name: a, owner: team, connector: fake, fake: { url: "http://x/{user_id}" } }
`)
		if sharedClock.Wanted(cfg.Resources) {
			t.Fatal("wanted though no connector asked")
		}
	})
	t.Run("NilResourcesDoNothing", func(t *testing.T) {
		called := false
		sharedClock.Use(nil, func(*clock) { called = true })
		sharedClock.Provide(nil, &clock{})
		if called || sharedClock.Wanted(nil) {
			t.Fatal("nil resources did something")
		}
	})
}
