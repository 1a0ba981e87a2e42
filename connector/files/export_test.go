package files

// SetHook installs fn to be called at named points of a sweep ("prepared" after a partition's
// temporary file is synced, "rename" and "renamed" around each swap, "committed" after the
// last), for the crash tests. nil removes it.
func SetHook(fn func(point, partition string)) {
	hookMu.Lock()
	hookFn = fn
	hookMu.Unlock()
}
