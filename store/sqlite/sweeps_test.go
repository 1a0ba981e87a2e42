package sqlite_test

import (
	"testing"
	"time"

	"erasure/store/storetest"
)

func TestSweepStore_Conformance(t *testing.T) {
	storetest.RunSweeps(t, func(t *testing.T, now func() time.Time) storetest.SweepStore { return open(t, now) })
}

func TestGuards_Conformance(t *testing.T) {
	storetest.RunGuards(t, func(t *testing.T, now func() time.Time) storetest.GuardStore { return open(t, now) })
}
