package api

import (
	"net/http"
	"net/url"
	"strconv"

	"erasure"
)

// DeliveryPage is the body of GET /v1/webhooks/deliveries: messages of the outbox, newest
// first, with their delivery state. Each message's url is cut to its origin (scheme and host):
// the path or query of an endpoint may hold a token. NextAfter, when set, is the `after` of
// the next page.
type DeliveryPage struct {
	Deliveries []erasure.OutboxMessage `json:"deliveries"`
	NextAfter  int64                   `json:"next_after,omitempty"`
}

// Limits of the deliveries listing.
const (
	DefaultDeliveriesLimit = 100
	MaxDeliveriesLimit     = 1000
)

// OutboxRoutes returns the routes of the notifications' outbox over o
// (pipeline.OutboxService in the server), by ServeMux pattern, for Server.Mount:
//
//	GET  /v1/webhooks/deliveries               read     ?subscriber=&request=&state=pending|delivered|dead&after=&limit= (1..1000, default 100)
//	POST /v1/webhooks/deliveries/{id}/retry    operate  a dead message is sent again (409 when it is not dead)
//
// The listing holds every subscriber's messages (webhook:NAME, and others such as protocol
// callbacks); request= selects the messages of one request.
func OutboxRoutes(s *Server, o erasure.OutboxService) map[string]http.Handler {
	h := &outboxHandlers{s: s, o: o}
	return map[string]http.Handler{
		"GET /v1/webhooks/deliveries":             http.HandlerFunc(h.list),
		"POST /v1/webhooks/deliveries/{id}/retry": http.HandlerFunc(h.retry),
	}
}

type outboxHandlers struct {
	s *Server
	o erasure.OutboxService
}

// origin cuts a URL to its scheme and host.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (h *outboxHandlers) list(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	q, err := query(r, "subscriber", "request", "state", "after", "limit")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	f := erasure.OutboxFilter{Subscriber: q.Get("subscriber"), Key: q.Get("request"), State: erasure.OutboxState(q.Get("state"))}
	switch {
	case len(f.Subscriber) > 200:
		err = erasure.Errorf(erasure.EINVALID, "subscriber is longer than 200 bytes")
	case f.Key != "" && !requestIDPathRE.MatchString(f.Key):
		err = erasure.Errorf(erasure.EINVALID, "%q is not a valid request id", truncate(f.Key, 64))
	case f.State != "" && f.State != erasure.OutboxPending && f.State != erasure.OutboxDelivered && f.State != erasure.OutboxDead:
		err = erasure.Errorf(erasure.EINVALID, "state must be pending, delivered or dead")
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if f.After, err = intParam(q, "after", 0, 0, 1<<62); err != nil {
		WriteError(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", DefaultDeliveriesLimit, 1, MaxDeliveriesLimit)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	f.Limit = int(limit)
	ms, err := h.o.OutboxMessages(r.Context(), f)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	page := DeliveryPage{Deliveries: ms}
	if page.Deliveries == nil {
		page.Deliveries = []erasure.OutboxMessage{}
	}
	for i := range page.Deliveries {
		page.Deliveries[i].URL = origin(page.Deliveries[i].URL)
	}
	if len(ms) == f.Limit {
		page.NextAfter = ms[len(ms)-1].ID
	}
	WriteJSON(w, http.StatusOK, page)
}

func (h *outboxHandlers) retry(w http.ResponseWriter, r *http.Request) {
	actor, err := h.s.Authorize(r, RoleOperate)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "%q is not a delivery id", truncate(r.PathValue("id"), 32)))
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	m, err := h.o.RetryOutbox(r.Context(), id, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	m.URL = origin(m.URL)
	WriteJSON(w, http.StatusOK, m)
}

// ResolvedID is the body of GET /v1/requests:resolve.
type ResolvedID struct {
	ID string `json:"id"`
}

// ResolveRoutes returns the route that finds a request by the first characters of its id,
// over res (pipeline.Service in the server), for Server.Mount:
//
//	GET /v1/requests:resolve?prefix=r_06h3k   read   {"id":"r_…"}; 404 when no id starts so, 409 when several do
//
// The CLI takes a unique prefix wherever a request id goes.
func ResolveRoutes(s *Server, res erasure.RequestResolver) map[string]http.Handler {
	return map[string]http.Handler{
		"GET /v1/requests:resolve": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := s.Authorize(r, RoleRead); err != nil {
				WriteError(w, r, err)
				return
			}
			q, err := query(r, "prefix")
			if err != nil {
				WriteError(w, r, err)
				return
			}
			prefix := q.Get("prefix")
			if prefix == "" || len(prefix) > 64 {
				WriteError(w, r, erasure.Errorf(erasure.EINVALID, "prefix must be 1 to 64 characters of a request id"))
				return
			}
			id, err := res.ResolveRequestID(r.Context(), prefix)
			if err != nil {
				WriteError(w, r, err)
				return
			}
			WriteJSON(w, http.StatusOK, ResolvedID{ID: id})
		}),
	}
}
