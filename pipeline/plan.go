// Package pipeline turns submissions into planned tasks and carries every task to its end:
// the planner (Plan), the retry policy (Backoff), the executor (Engine) and the Service the API
// and CLI act on. It uses only the domain's interfaces: any erasure.Store, any connector.
package pipeline

import (
	"erasure"
)

// Plan returns the tasks of a request over datasets: a lookup task for every dataset that
// provides identifiers and can resolve them, and an erase task for every dataset, each erase
// task waiting for the erase tasks of the datasets named in its `after:`. Erase tasks also wait
// for every lookup of the request (the store enforces both, see erasure.Runnable), so lookups
// read each dataset before anything is erased from it.
func Plan(datasets []*erasure.Dataset) []erasure.TaskSpec {
	var out []erasure.TaskSpec
	for _, d := range datasets {
		if _, ok := d.Conn.(erasure.Resolver); ok && len(d.Provides) > 0 {
			out = append(out, erasure.TaskSpec{Dataset: d.Name, Kind: erasure.TaskLookup, Method: erasure.MethodRealtime, Keys: d.Keys})
		}
	}
	for _, d := range datasets {
		out = append(out, erasure.TaskSpec{Dataset: d.Name, Kind: erasure.TaskErase, Method: d.Method, Keys: d.Keys, After: d.After})
	}
	return out
}

// HideTasks returns a hide task for every dataset that declares a hide action (erasure.Hider):
// planned for requests with a grace window, they hide the subject's data at once while the
// erase tasks wait for the window to end. A hide task waits for the request's lookups only.
func HideTasks(datasets []*erasure.Dataset) []erasure.TaskSpec {
	var out []erasure.TaskSpec
	for _, d := range datasets {
		if h, ok := d.Conn.(erasure.Hider); ok && h.Hides() {
			out = append(out, erasure.TaskSpec{Dataset: d.Name, Kind: erasure.TaskHide, Method: erasure.MethodRealtime, Keys: d.Keys})
		}
	}
	return out
}
