package records

// The bodies of the record store's move calls (POST /v1/records/{source}/archive, /restore,
// /reconcile), shared by the API that decodes them and the client that sends them.

// ArchiveRequest is the body of POST /v1/records/{source}/archive. DeletedBefore is a date
// (2017-01-01, UTC midnight) or an RFC 3339 time.
type ArchiveRequest struct {
	DeletedBefore string `json:"deleted_before"`
	DryRun        bool   `json:"dry_run"`
	Force         bool   `json:"force"`
	BatchSize     int    `json:"batch_size"`
	// Limit bounds how many records this call moves, so that a client can show progress by
	// calling again until Remaining is 0.
	Limit int64 `json:"limit"`
	// Compact rebuilds the live partition when the archive is complete (see records.Service.Compact).
	Compact bool `json:"compact"`
}

// RestoreRequest is the body of POST /v1/records/{source}/restore.
type RestoreRequest struct {
	IDs          []string `json:"ids"`
	DeletedAfter string   `json:"deleted_after"`
	DryRun       bool     `json:"dry_run"`
	BatchSize    int      `json:"batch_size"`
	Limit        int64    `json:"limit"`
}

// ReconcileRequest is the body of POST /v1/records/{source}/reconcile.
type ReconcileRequest struct {
	Present []string `json:"present"`
	Control []string `json:"control"`
	DryRun  bool     `json:"dry_run"`
	Force   bool     `json:"force"`
	Reason  string   `json:"reason"`
}
