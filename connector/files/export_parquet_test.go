package files

// SetParallelBytes sets the memory bound of row groups filtered at once, for a test, and
// returns the previous value.
func SetParallelBytes(n int64) int64 {
	old := parallelBytes
	parallelBytes = n
	return old
}
