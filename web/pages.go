package web

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/records"
)

// PageSize is how many rows a listing page shows.
const PageSize = 50

var (
	requestIDRE   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	subjectHashRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}:[0-9a-f]{32}$`)
)

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if h.session(r) != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login", nil, "Sign in", "", nil)
}

// login signs in with an API token holding the read role.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := sameOrigin(r); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	p, err := h.auth.Authenticate(r.PostFormValue("token"))
	if err == nil && !p.Has(api.RoleRead) {
		err = erasure.Errorf(erasure.EFORBIDDEN, "token %q cannot read: the dashboard needs a token with the read or operate role", p.Name)
	}
	if err != nil {
		h.log.Warn("dashboard sign-in refused", "reason", erasure.ErrorCode(err))
		h.render(w, r, api.StatusOf(erasure.ErrorCode(err)), "login", nil, "Sign in", "", map[string]any{"Error": signInError(err)})
		return
	}
	http.SetCookie(w, h.newSession(r, p))
	h.log.Info("dashboard sign-in", "actor", p.Name)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func signInError(err error) string {
	if erasure.ErrorCode(err) == erasure.EUNAUTHORIZED {
		return "Sign-in refused: this token is not valid."
	}
	return "Sign-in refused: " + erasure.ErrorMessage(err)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if s := h.session(r); s != nil {
		if err := h.checkPost(r, s); err != nil {
			h.fail(w, r, s, err)
			return
		}
	}
	http.SetCookie(w, h.cookie(r, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (h *Handler) datasetNames() []string {
	out := make([]string, len(h.cfg.Datasets))
	for i, d := range h.cfg.Datasets {
		out[i] = d.Name
	}
	return out
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	// Open requests are counted exactly; ended ones by day over the chart's window (counting
	// every completed request of the store would cost a read of its whole index).
	counts, err := h.cfg.Reports.RequestCounts(ctx, erasure.RequestPending, erasure.RequestRunning, erasure.RequestFailed)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	overdue, err := h.cfg.Reports.OverdueRequests(ctx)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	now := h.now().UTC()
	days, err := h.cfg.Reports.Activity(ctx, now.Add(-29*24*time.Hour))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	loads, err := h.cfg.Reports.DatasetLoads(ctx, h.datasetNames())
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	failed, err := h.cfg.Service.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestFailed, Limit: 10})
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	check, err := h.checker.Report(ctx)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	total := 0
	type statusCount struct {
		Status erasure.RequestStatus
		N      int
	}
	var byStatus []statusCount
	for _, st := range []erasure.RequestStatus{erasure.RequestPending, erasure.RequestRunning, erasure.RequestFailed} {
		byStatus = append(byStatus, statusCount{st, counts[st]})
		total += counts[st]
	}
	h.render(w, r, http.StatusOK, "overview", s, "Overview", "overview", map[string]any{
		"Total": total, "ByStatus": byStatus, "Overdue": overdue, "Chart": newChart(days), "Loads": loads, "Failed": failed.Requests, "Audit": check,
	})
}

// requestList is the data of the requests page.
type requestList struct {
	Filter      erasure.RequestFilter
	Subject     string // the keyed hash searched
	Requests    []erasure.Request
	NextURL     string
	FirstURL    string
	Datasets    []string
	Identifiers []string
	Statuses    []erasure.RequestStatus
	Error       string
}

func (h *Handler) requests(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	l := &requestList{Datasets: h.datasetNames(), Identifiers: h.cfg.Identifiers,
		Statuses: []erasure.RequestStatus{erasure.RequestPending, erasure.RequestRunning, erasure.RequestFailed, erasure.RequestCompleted, erasure.RequestCancelled}}
	f := erasure.RequestFilter{Status: erasure.RequestStatus(q.Get("status")), Dataset: q.Get("dataset"), Cursor: q.Get("cursor"), Limit: PageSize}
	f.Overdue = q.Get("overdue") == "1" || q.Get("overdue") == "true"
	f.SubjectHash = q.Get("subject")
	switch {
	case f.Status != "" && !f.Status.Valid():
		h.fail(w, r, s, erasure.Errorf(erasure.EINVALID, "unknown status"))
		return
	case f.Dataset != "" && !slices.Contains(l.Datasets, f.Dataset):
		h.fail(w, r, s, erasure.Errorf(erasure.EINVALID, "no dataset of that name is registered"))
		return
	case f.SubjectHash != "" && !subjectHashRE.MatchString(f.SubjectHash):
		h.fail(w, r, s, erasure.Errorf(erasure.EINVALID, "subject must be a keyed hash (TYPE:32 hex digits): search with the form"))
		return
	case len(f.Cursor) > 128:
		h.fail(w, r, s, erasure.Errorf(erasure.EINVALID, "bad cursor"))
		return
	}
	l.Filter, l.Subject = f, f.SubjectHash
	h.listRequests(w, r, s, l, http.StatusOK)
}

func (h *Handler) listRequests(w http.ResponseWriter, r *http.Request, s *session, l *requestList, status int) {
	page, err := h.cfg.Service.Requests(r.Context(), l.Filter)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	l.Requests = page.Requests
	v := url.Values{}
	if l.Filter.Status != "" {
		v.Set("status", string(l.Filter.Status))
	}
	if l.Filter.Overdue {
		v.Set("overdue", "1")
	}
	if l.Filter.Dataset != "" {
		v.Set("dataset", l.Filter.Dataset)
	}
	if l.Filter.SubjectHash != "" {
		v.Set("subject", l.Filter.SubjectHash)
	}
	l.FirstURL = "/ui/requests?" + v.Encode()
	if page.Next != "" {
		v.Set("cursor", page.Next)
		l.NextURL = "/ui/requests?" + v.Encode()
	}
	h.render(w, r, status, "requests", s, "Requests", "requests", l)
}

// search hashes the identifier searched and sends the browser to the results by keyed hash:
// the clear value travels once, in this POST's body, and is never in a URL, a page or a log.
func (h *Handler) search(w http.ResponseWriter, r *http.Request, s *session) {
	id := erasure.Identifier{Type: r.PostFormValue("type"), Value: r.PostFormValue("value")}
	hash, err := h.cfg.Hasher.SubjectHash(id)
	if err != nil {
		l := &requestList{Datasets: h.datasetNames(), Identifiers: h.cfg.Identifiers, Filter: erasure.RequestFilter{Limit: PageSize},
			Statuses: []erasure.RequestStatus{erasure.RequestPending, erasure.RequestRunning, erasure.RequestFailed, erasure.RequestCompleted, erasure.RequestCancelled},
			Error:    "Search refused: " + erasure.ErrorMessage(err)}
		h.listRequests(w, r, s, l, http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/ui/requests?subject="+url.QueryEscape(hash), http.StatusSeeOther)
}

// timelineEntry is one line of a task's (or the request's) history.
type timelineEntry struct {
	Seq   int64
	Block int64
	Time  time.Time
	Actor string
	Type  string
	Text  string
	Bad   bool
}

type taskView struct {
	erasure.Task
	LastError string
	Note      string
	Timeline  []timelineEntry
}

func (h *Handler) request(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !requestIDRE.MatchString(id) {
		h.fail(w, r, s, erasure.Errorf(erasure.ENOTFOUND, "no such request"))
		return
	}
	req, err := h.cfg.Service.Request(r.Context(), id)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	evs, err := h.cfg.Service.Audit(r.Context(), erasure.AuditFilter{RequestID: id, Limit: 10000})
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	m := masker(req.Subject)
	byTask := map[int64][]timelineEntry{}
	var own []timelineEntry
	for _, ev := range evs {
		e := timelineEntry{Seq: ev.Seq, Block: ev.Block, Time: ev.Time, Actor: ev.Actor, Type: ev.Type}
		e.Text, e.Bad = describe(ev)
		e.Text = m.mask(e.Text)
		if ev.TaskID != 0 {
			byTask[ev.TaskID] = append(byTask[ev.TaskID], e)
		} else {
			own = append(own, e)
		}
	}
	tasks := make([]taskView, len(req.Tasks))
	failed := false
	for i, t := range req.Tasks {
		tasks[i] = taskView{Task: t, LastError: m.mask(t.LastError), Note: m.mask(t.Note), Timeline: byTask[t.ID]}
		failed = failed || t.State == erasure.TaskFailed
	}
	h.render(w, r, http.StatusOK, "request", s, "Request "+req.ID, "requests", map[string]any{
		"Request": req, "Tasks": tasks, "Events": own, "CanRetry": failed && !req.Status.Ended(), "CanCancel": !req.Status.Ended(),
		"Certificate": h.cfg.Certifier != nil && req.Status == erasure.RequestCompleted,
	})
}

// describe says in a line what an audit event tells, and whether it is bad news. Event data
// holds keyed hashes only, never identifiers in clear.
func describe(ev erasure.AuditEvent) (string, bool) {
	var d map[string]any
	json.Unmarshal(ev.Data, &d)
	str := func(k string) string {
		if v, ok := d[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	numf := func(k string) int64 {
		if v, ok := d[k].(float64); ok {
			return int64(v)
		}
		return 0
	}
	var parts []string
	bad := false
	switch ev.Type {
	case erasure.EventTaskAttempt:
		var a erasure.AttemptData
		json.Unmarshal(ev.Data, &a)
		parts = append(parts, fmt.Sprintf("attempt %d: %s", a.Attempt, a.Outcome))
		if a.Removed > 0 {
			parts = append(parts, fmt.Sprintf("%d removed", a.Removed))
		}
		if a.Verified {
			parts = append(parts, "verified gone")
		}
		if a.Sweep != "" {
			parts = append(parts, "sweep "+a.Sweep)
		}
		if len(a.Found) > 0 {
			parts = append(parts, fmt.Sprintf("found %d identifiers", len(a.Found)))
		}
		if a.DueAt != nil {
			parts = append(parts, "next at "+when(a.DueAt))
		}
		if a.Note != "" {
			parts = append(parts, a.Note)
		}
		if a.Error != "" {
			parts = append(parts, "error: "+a.Error)
			bad = true
		}
		bad = bad || a.Outcome == erasure.TaskFailed
	case erasure.EventTaskAcked:
		parts = append(parts, fmt.Sprintf("acknowledged %s by %s (attempt %d): %d removed → %s", str("status"), ev.Actor, numf("attempt"), numf("removed"), str("outcome")))
		if e := str("error"); e != "" {
			parts = append(parts, "error: "+e)
			bad = true
		}
	case erasure.EventTaskCancelled:
		parts = append(parts, "cancelled (was "+str("from")+")")
	case erasure.EventRequestSubmitted:
		tasks, _ := d["tasks"].([]any)
		deadline := str("deadline")
		if t, err := time.Parse(time.RFC3339Nano, deadline); err == nil {
			deadline = when(t)
		}
		parts = append(parts, fmt.Sprintf("submitted by %s: reason %s, %d tasks planned, deadline %s", ev.Actor, str("reason"), len(tasks), deadline))
	case erasure.EventRequestCompleted, erasure.EventRequestFailed, erasure.EventRequestCancelled:
		parts = append(parts, fmt.Sprintf("%s → %s, %d removed in all", str("from"), strings.TrimPrefix(ev.Type, "request."), numf("removed")))
		bad = ev.Type == erasure.EventRequestFailed
	case erasure.EventRequestRetried:
		parts = append(parts, fmt.Sprintf("retried by %s: %d failed tasks re-opened", ev.Actor, numf("tasks")))
	case erasure.EventSubjectHashed:
		parts = append(parts, fmt.Sprintf("%d identifiers in clear dropped: only keyed hashes remain", numf("identifiers")))
	default:
		parts = append(parts, ev.Type)
	}
	return strings.Join(parts, "; "), bad
}

// action runs an operator action (operate) and goes back to the request.
func (h *Handler) action(name string, fn func(ctx context.Context, id, actor string) (*erasure.Request, error)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if !s.principal.Has(api.RoleOperate) {
			h.fail(w, r, s, erasure.Errorf(erasure.EFORBIDDEN, "token %q lacks the operate role: it may look, not act", s.Name))
			return
		}
		id := r.PathValue("id")
		if !requestIDRE.MatchString(id) {
			h.fail(w, r, s, erasure.Errorf(erasure.ENOTFOUND, "no such request"))
			return
		}
		if _, err := fn(r.Context(), id, s.Name); err != nil {
			h.fail(w, r, s, err)
			return
		}
		h.log.Info("dashboard action", "action", name, "request", id, "actor", s.Name)
		http.Redirect(w, r, "/ui/requests/"+url.PathEscape(id), http.StatusSeeOther)
	}
}

func (h *Handler) signed(w http.ResponseWriter, r *http.Request, s *session) (*erasure.SignedCertificate, bool) {
	if h.cfg.Certifier == nil {
		h.fail(w, r, s, erasure.Errorf(erasure.ENOTFOUND, "this server issues no certificates"))
		return nil, false
	}
	id := r.PathValue("id")
	if !requestIDRE.MatchString(id) {
		h.fail(w, r, s, erasure.Errorf(erasure.ENOTFOUND, "no such request"))
		return nil, false
	}
	sc, err := h.cfg.Certifier.Certificate(r.Context(), id)
	if err != nil {
		h.fail(w, r, s, err)
		return nil, false
	}
	return sc, true
}

func (h *Handler) certificate(w http.ResponseWriter, r *http.Request, s *session) {
	sc, ok := h.signed(w, r, s)
	if !ok {
		return
	}
	key := h.cfg.Certifier.CertificateKey()
	pub, _ := base64.StdEncoding.DecodeString(key.PublicKey)
	_, _, verr := audit.VerifyCertificate(sc.Document, ed25519.PublicKey(pub))
	verified := "signature verified with the deployment's key " + key.KeyID
	if verr != nil {
		verified = "signature does NOT verify: " + verr.Error()
	}
	h.render(w, r, http.StatusOK, "certificate", s, "Erasure certificate "+sc.Certificate.Request.ID, "requests", map[string]any{
		"C": sc.Certificate, "Key": key, "Verified": verified, "OK": verr == nil,
	})
}

func (h *Handler) certificateJSON(w http.ResponseWriter, r *http.Request, s *session) {
	sc, ok := h.signed(w, r, s)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="certificate-`+sc.Certificate.Request.ID+`.json"`)
	w.Write(sc.Document)
}

type datasetRow struct {
	*erasure.Dataset
	Load      erasure.DatasetLoad
	LastSweep *erasure.Sweep
}

func (h *Handler) datasets(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	loads, err := h.cfg.Reports.DatasetLoads(ctx, h.datasetNames())
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	rows := make([]datasetRow, len(h.cfg.Datasets))
	for i, d := range h.cfg.Datasets {
		rows[i] = datasetRow{Dataset: d, Load: loads[i]}
		if d.Method == erasure.MethodOffline {
			p, err := h.cfg.Reports.SweepPage(ctx, erasure.SweepFilter{Dataset: d.Name, Limit: 1})
			if err != nil {
				h.fail(w, r, s, err)
				return
			}
			if len(p.Sweeps) > 0 {
				rows[i].LastSweep = &p.Sweeps[0]
			}
		}
	}
	h.render(w, r, http.StatusOK, "datasets", s, "Datasets", "datasets", map[string]any{"Datasets": rows})
}

func (h *Handler) sweeps(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := erasure.SweepFilter{Dataset: q.Get("dataset"), Cursor: q.Get("cursor"), Limit: PageSize}
	if f.Dataset != "" && !slices.Contains(h.datasetNames(), f.Dataset) {
		h.fail(w, r, s, erasure.Errorf(erasure.EINVALID, "no dataset of that name is registered"))
		return
	}
	page, err := h.cfg.Reports.SweepPage(r.Context(), f)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	var offline []string
	for _, d := range h.cfg.Datasets {
		if d.Method == erasure.MethodOffline {
			offline = append(offline, d.Name)
		}
	}
	next := ""
	if page.Next != "" {
		v := url.Values{"cursor": {page.Next}}
		if f.Dataset != "" {
			v.Set("dataset", f.Dataset)
		}
		next = "/ui/sweeps?" + v.Encode()
	}
	h.render(w, r, http.StatusOK, "sweeps", s, "Sweeps", "sweeps", map[string]any{"Filter": f, "Sweeps": page.Sweeps, "NextURL": next, "Datasets": offline})
}

type sourceRow struct {
	Source        string
	Live, Deleted int64
}

func (h *Handler) records(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderRecords(w, r, s, http.StatusOK, nil, "")
}

func (h *Handler) renderRecords(w http.ResponseWriter, r *http.Request, s *session, status int, report *records.MoveReport, errMsg string) {
	data := map[string]any{"Enabled": h.cfg.Records != nil, "Report": report, "Error": errMsg}
	if h.cfg.Records != nil {
		ctx := r.Context()
		srcs, err := h.cfg.Records.Sources(ctx)
		if err != nil {
			h.fail(w, r, s, err)
			return
		}
		var rows []sourceRow
		for _, src := range srcs {
			row := sourceRow{Source: src}
			// Segments reads the totals from the source's ledger (one row), never counts.
			if _, row.Live, err = h.cfg.Records.Segments(ctx, records.Live, src, 1); err == nil {
				_, row.Deleted, err = h.cfg.Records.Segments(ctx, records.Deleted, src, 1)
			}
			if err != nil {
				h.fail(w, r, s, err)
				return
			}
			rows = append(rows, row)
		}
		data["Sources"] = rows
	}
	h.render(w, r, status, "records", s, "Record store", "records", data)
}

// archiveDryRun reports what an archive would move (operate, as the API's archive).
func (h *Handler) archiveDryRun(w http.ResponseWriter, r *http.Request, s *session) {
	if h.cfg.Records == nil {
		h.fail(w, r, s, erasure.Errorf(erasure.ENOTFOUND, "this server has no record store"))
		return
	}
	if !s.principal.Has(api.RoleOperate) {
		h.fail(w, r, s, erasure.Errorf(erasure.EFORBIDDEN, "token %q lacks the operate role", s.Name))
		return
	}
	before, err := time.Parse("2006-01-02", r.PostFormValue("deleted_before"))
	if err != nil {
		h.renderRecords(w, r, s, http.StatusBadRequest, nil, "deleted before must be a date such as 2017-01-01")
		return
	}
	rep, err := h.cfg.Records.Archive(r.Context(), records.ArchiveOptions{Source: r.PostFormValue("source"), DeletedBefore: before, DryRun: true, Actor: s.Name})
	if err != nil && rep == nil {
		h.renderRecords(w, r, s, api.StatusOf(erasure.ErrorCode(err)), nil, erasure.ErrorMessage(err))
		return
	}
	h.renderRecords(w, r, s, http.StatusOK, rep, "")
}

type blockView struct {
	Seq    int64
	Time   time.Time
	Hash   string
	Events []erasure.AuditEvent
	// More is how many events of the block are not shown.
	More int
}

// AuditEventsPerBlock is how many events of a block the audit page shows.
const AuditEventsPerBlock = 10

// AuditBlocksPerPage is how many blocks the audit page shows.
const AuditBlocksPerPage = 20

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	// Each view verifies what was appended since the last one, within a budget; a long trail
	// is verified over a few views (the page says how far it got).
	rep, err := h.checker.Advance(ctx, 250*time.Millisecond, h.now())
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	before := rep.Head.Block + 1
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			h.fail(w, r, s, erasure.Errorf(erasure.EINVALID, "bad block number"))
			return
		}
		before = min(n, before)
	}
	after := max(0, before-1-AuditBlocksPerPage)
	bs, err := h.cfg.Trail.AuditBlocks(ctx, after, int(before-1-after))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	var blocks []blockView
	for i := len(bs) - 1; i >= 0; i-- {
		b := &bs[i]
		evs, total, err := audit.FirstEvents(b, AuditEventsPerBlock)
		if err != nil {
			evs = nil // the check above reports a broken block
		}
		blocks = append(blocks, blockView{Seq: b.Seq, Time: b.Time, Hash: b.Hash, Events: evs, More: total - len(evs)})
	}
	older := ""
	if after > 0 {
		older = "/ui/audit?before=" + strconv.FormatInt(after+1, 10)
	}
	h.render(w, r, http.StatusOK, "audit", s, "Audit trail", "audit", map[string]any{"Report": rep, "Blocks": blocks, "OlderURL": older})
}
