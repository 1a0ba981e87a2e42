package registry

import "sync"

// Resources are what the connectors of one configuration share with the server that runs
// them: its NATS connection, its record store. Building performs no I/O, so a connector cannot
// open them in Build; it asks for each one it needs (Resource.Use), and the server provides
// every resource asked for once it has opened it (Resource.Provide), before anything runs. A
// configuration loaded only to be checked (datasets validate) gets nothing: its connectors
// stay without their resources and say so when called.
//
// The server opens a resource only when some connector wants it (Resource.Wanted): no NATS
// server starts for a registry without async datasets. Resources are safe for concurrent use;
// Load gives each Config its own (Config.Resources).
type Resources struct {
	mu      sync.Mutex
	entries map[string]*resourceEntry
}

type resourceEntry struct {
	provided bool
	value    any // the T of the Resource[T] that names the entry
	users    []func(any)
}

// NewResources returns an empty set of resources.
func NewResources() *Resources { return &Resources{entries: map[string]*resourceEntry{}} }

// Resource names a shared resource of type T. The package that defines T declares it:
//
//	var Shared = registry.NewResource[*Conn]("nats")
type Resource[T any] struct{ name string }

// NewResource returns the name of a resource of type T. Names are unique per type in a program;
// two resources of one name and different types would be a programming error.
func NewResource[T any](name string) Resource[T] { return Resource[T]{name: name} }

// Name is the resource's name.
func (r Resource[T]) Name() string { return r.name }

func (rs *Resources) entry(name string) *resourceEntry {
	e := rs.entries[name]
	if e == nil {
		e = &resourceEntry{}
		rs.entries[name] = e
	}
	return e
}

// Use asks rs for r: fn receives it when it is provided, at once if it already is. A connector
// calls Use from its Driver's Build; fn only keeps the value. Nothing happens with a nil rs.
func (r Resource[T]) Use(rs *Resources, fn func(T)) {
	if rs == nil {
		return
	}
	rs.mu.Lock()
	e := rs.entry(r.name)
	e.users = append(e.users, func(v any) { fn(v.(T)) })
	provided, v := e.provided, e.value
	rs.mu.Unlock()
	if provided {
		fn(v.(T))
	}
}

// Provide hands v to every connector that asked for r, and to those that ask later. Providing
// again replaces the value, for every user. Nothing happens with a nil rs.
func (r Resource[T]) Provide(rs *Resources, v T) {
	if rs == nil {
		return
	}
	rs.mu.Lock()
	e := rs.entry(r.name)
	e.provided, e.value = true, v
	users := append([]func(any){}, e.users...)
	rs.mu.Unlock()
	for _, fn := range users {
		fn(v)
	}
}

// Wanted reports whether any connector asked rs for r.
func (r Resource[T]) Wanted(rs *Resources) bool {
	if rs == nil {
		return false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e := rs.entries[r.name]
	return e != nil && len(e.users) > 0
}

// IndexKey is the 32-byte key connectors hash identifiers with in indexes of their own (the
// files connector's skip index): audit.IndexKey of the deployment's audit key, provided by
// the server. Any hash of an identifier is keyed.
var IndexKey = NewResource[[]byte]("index-key")
