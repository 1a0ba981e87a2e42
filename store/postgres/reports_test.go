package postgres_test

import (
	"testing"
	"time"

	"erasure/store/storetest"
)

func TestReportStore_Conformance(t *testing.T) {
	storetest.RunReports(t, func(t *testing.T, now func() time.Time) storetest.ReportStore { return open(t, now) })
}
