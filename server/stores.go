package server

// The stores this server offers; another driver registers itself with store.Register and is
// imported by the binary that offers it.
import (
	_ "erasure/store/postgres" // "postgres": shared by any number of processes
	_ "erasure/store/sqlite"   // "sqlite": the embedded store in the data dir
)
