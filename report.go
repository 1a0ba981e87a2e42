package erasure

import (
	"context"
	"time"
)

// The operator dashboard reads the store through ReportStore: aggregates that each read an
// index, never a whole table, so that a page renders in about the same time with a thousand
// requests or a million.

// ActivityDay is what ended on one day (UTC): requests completed and cancelled that day, and
// requests failed whose last change was that day and that are still failed.
type ActivityDay struct {
	Day       time.Time `json:"day"`
	Completed int       `json:"completed"`
	Cancelled int       `json:"cancelled"`
	Failed    int       `json:"failed"`
}

// DatasetLoad is the work a dataset has: its unfinished tasks by state (blocked, pending,
// running, dispatched, queued, failed) and the oldest request it holds up.
type DatasetLoad struct {
	Dataset string `json:"dataset"`
	// ByState counts the dataset's tasks in each unfinished state (final states are not counted:
	// they are most of the table and say nothing of what is stuck).
	ByState map[TaskState]int `json:"tasks_by_status"`
	// Backlog is blocked + pending + running + dispatched + queued.
	Backlog int `json:"backlog"`
	// Failed is the tasks failed and waiting for an operator.
	Failed int `json:"failed"`
	// Oldest is the oldest request with an unfinished task on the dataset, and OldestSince when
	// it was submitted; empty when the dataset has nothing unfinished.
	Oldest      string     `json:"oldest_request,omitempty"`
	OldestSince *time.Time `json:"oldest_since,omitempty"`
}

// SweepFilter selects sweeps for a listing, newest first: of one dataset when Dataset is set,
// after Cursor (the Next of the previous page), at most Limit (1..500, default 50).
type SweepFilter struct {
	Dataset string
	Cursor  string
	Limit   int
}

// SweepPage is one page of sweeps; Next is the cursor of the next page, empty at the end.
type SweepPage struct {
	Sweeps []Sweep `json:"sweeps"`
	Next   string  `json:"next_cursor,omitempty"`
}

// ReportStore answers the dashboard's questions. Every method reads through an index: its cost
// grows with what it counts or returns (open requests, a window of days, a page), not with the
// store's size.
// Implementations: store/sqlstore (SQLite and PostgreSQL); store/storetest.RunReports is its
// suite.
type ReportStore interface {
	// RequestCounts counts the requests in each of statuses (every status when none is given);
	// statuses without requests are absent. Its cost grows with the requests counted: the
	// dashboard counts the open statuses, and ended requests by day (Activity).
	RequestCounts(ctx context.Context, statuses ...RequestStatus) (map[RequestStatus]int, error)
	// Activity returns one ActivityDay per day from since's day to today (UTC), oldest first,
	// days without activity included.
	Activity(ctx context.Context, since time.Time) ([]ActivityDay, error)
	// DatasetLoads returns the load of each dataset named, in the order given.
	DatasetLoads(ctx context.Context, datasets []string) ([]DatasetLoad, error)
	// SweepPage lists sweeps, newest first; EINVALID for a bad cursor.
	SweepPage(ctx context.Context, f SweepFilter) (SweepPage, error)
}
