package drp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// errorBody is the error state of section 3.06.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"code":"500","message":"internal error"}`), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// fail answers a refusal with the error state and logs it (never a claim's value).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, agentID string, ref *refusal) {
	s.log.Info("refused", "route", r.Pattern, "agent", agentID, "status", ref.status, "why", ref.msg)
	writeJSON(w, ref.status, errorBody{Code: strconv.Itoa(ref.status), Message: ref.msg, Fatal: ref.fatal})
}

// failErr answers an error of the service or the store.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, agentID string, err error) {
	ref := refuse(http.StatusInternalServerError, "internal error")
	switch erasure.ErrorCode(err) {
	case erasure.EUNAVAILABLE:
		ref = refuse(http.StatusServiceUnavailable, "temporarily unavailable: try again with a new signed message")
		w.Header().Set("Retry-After", "1")
	case erasure.EINVALID:
		ref = refuse(http.StatusBadRequest, "%s", erasure.ErrorMessage(err))
	case erasure.ECONFLICT:
		ref = refuse(http.StatusConflict, "%s", erasure.ErrorMessage(err))
	default:
		s.log.Error("internal error", "route", r.Pattern, "agent", agentID, "err", err)
	}
	s.fail(w, r, agentID, ref)
}

// forbidden answers a failed key set-up: 403 with no body, as the specification says. The
// reason goes to the log only.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, agentID, why string) {
	s.log.Info("refused", "route", r.Pattern, "agent", agentID, "status", http.StatusForbidden, "why", why)
	w.WriteHeader(http.StatusForbidden)
}

// readBody reads a signed message, at most MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *refusal) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, refuse(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", s.cfg.MaxBodyBytes)
	} else if err != nil {
		return nil, refuse(http.StatusBadRequest, "the body could not be read")
	}
	return b, nil
}

// tokenHash is how a token is stored: the hex SHA-256 of it.
func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// callbackKey derives the key that signs an agent's status callbacks from its token.
func callbackKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("drp-status-callback/1"))
	return m.Sum(nil)
}

// authenticate returns the agent whose current token the request bears.
func (s *Server) authenticate(r *http.Request) (*Agent, *refusal) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 512 {
		return nil, refuse(http.StatusForbidden, "an Authorization: Bearer token is required: the token of POST /v1/agent/{agent-id}")
	}
	k, err := s.cfg.Store.DRPAgentByToken(r.Context(), tokenHash(token))
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return nil, refuse(http.StatusForbidden, "the Bearer token is not a current pair-wise token of this business: set one up with POST /v1/agent/{agent-id}")
	} else if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, "temporarily unavailable: try again")
	}
	a := s.agents[k.AgentID]
	if a == nil {
		return nil, refuse(http.StatusForbidden, "agent %s is no longer an authorized agent of this business", k.AgentID)
	}
	return a, nil
}

// setupKey is POST /v1/agent/{agent-id}, the pair-wise key set-up of section 2.05.
func (s *Server) setupKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("agent")
	agent := s.agents[id]
	if agent == nil {
		s.forbidden(w, r, clip(id), "unknown agent")
		return
	}
	body, ref := s.readBody(w, r)
	if ref != nil {
		s.forbidden(w, r, id, ref.msg)
		return
	}
	m, ref := s.open(body, agent, s.cfg.Now())
	if ref != nil {
		s.forbidden(w, r, id, ref.msg)
		return
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Random, raw); err != nil {
		s.log.Error("no randomness for a token", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	key := erasure.DRPAgentKey{AgentID: id, TokenHash: tokenHash(token), CallbackKey: hex.EncodeToString(callbackKey(token))}
	switch err := s.cfg.Store.SetDRPAgentKey(r.Context(), key, s.accepted(m)); erasure.ErrorCode(err) {
	case "":
	case erasure.ECONFLICT:
		s.forbidden(w, r, id, "replayed message")
		return
	default:
		s.log.Error("key set-up not stored", "agent", id, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.log.Info("pair-wise token set up", "agent", id)
	writeJSON(w, http.StatusOK, map[string]string{"agent-id": id, "token": token})
}

// agentInfo is GET /v1/agent/{agent-id}, section 2.06: {} when the token is this agent's.
func (s *Server) agentInfo(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("agent")
	a, ref := s.authenticate(r)
	if ref != nil || a.ID != id {
		why := "the token is another agent's"
		if ref != nil {
			why = ref.msg
		}
		s.forbidden(w, r, clip(id), why)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

var regimeRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// MaxAgentRequestID is the longest agent-request-id accepted, in bytes.
const MaxAgentRequestID = 200

// exercise is POST /v1/data-rights-request, the Data Rights Exercise endpoint of section 2.01.
func (s *Server) exercise(w http.ResponseWriter, r *http.Request) {
	ctx, now := r.Context(), s.cfg.Now()
	agent, ref := s.authenticate(r)
	if ref != nil {
		s.fail(w, r, "", ref)
		return
	}
	body, ref := s.readBody(w, r)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	}
	m, ref := s.open(body, agent, now)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	}
	rec, subject, ref := s.newRequest(m, now)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	}
	got, created, err := s.cfg.Store.CreateDRPRequest(ctx, rec, s.accepted(m))
	if erasure.ErrorCode(err) == erasure.ECONFLICT {
		s.fail(w, r, agent.ID, refuse(http.StatusConflict, "this signed message was accepted before: sign a new one (the same agent-request-id finds the same request)"))
		return
	} else if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	if !created && (got.Exercise != rec.Exercise || got.Status == "" && subject == nil) {
		s.fail(w, r, agent.ID, refuse(http.StatusConflict, "agent-request-id %q names request %s, made with another exercise or other claims", clip(rec.AgentRequestID), got.ID))
		return
	}
	if got.Status == "" && got.ExpectedBy.After(now) {
		if ref, err := s.submit(ctx, got, subject, rec.Regime); ref != nil {
			s.fail(w, r, agent.ID, ref)
			return
		} else if err != nil {
			s.failErr(w, r, agent.ID, err)
			return
		}
	}
	st, err := s.statusOf(ctx, got)
	if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	s.log.Info("data rights request", "request", got.ID, "agent", agent.ID, "exercise", got.Exercise, "new", created, "status", st.Status, "reason", st.Reason)
	writeJSON(w, http.StatusOK, st)
}

// newRequest reads an exercise: the request to record and, for a deletion that can proceed,
// its subject. A request answered at once (another right, no identity to act on) comes back
// with its status. Refusals are for malformed requests: nothing is recorded for them.
func (s *Server) newRequest(m *message, now time.Time) (erasure.DRPRequest, erasure.Subject, *refusal) {
	rec := erasure.DRPRequest{ID: s.cfg.NewID(now), AgentID: m.agent.ID, ReceivedAt: now.UTC().Truncate(time.Millisecond)}
	rec.ExpectedBy = rec.ReceivedAt.Add(s.cfg.Deadline)
	ex, ok := m.str("exercise")
	if !ok {
		return rec, nil, refuse(http.StatusBadRequest, "exercise is required: a right such as \"deletion\"")
	}
	if !slices.Contains(Exercises, ex) {
		return rec, nil, refuse(http.StatusBadRequest, "unsupported rights action %q (section 3.01: %s)", clip(ex), strings.Join(Exercises[:6], ", "))
	}
	rec.Exercise = ex
	var ref *refusal
	if rec.Regime, ref = m.optionalStr("regime"); ref != nil {
		return rec, nil, ref
	} else if rec.Regime != "" && !regimeRE.MatchString(rec.Regime) {
		return rec, nil, refuse(http.StatusBadRequest, "regime %q is not a regime such as \"ccpa\"", clip(rec.Regime))
	}
	if rec.AgentRequestID, ref = m.optionalStr("agent-request-id"); ref != nil {
		return rec, nil, ref
	} else if len(rec.AgentRequestID) > MaxAgentRequestID || !printable(rec.AgentRequestID) {
		return rec, nil, refuse(http.StatusBadRequest, "agent-request-id must be at most %d bytes of printable text", MaxAgentRequestID)
	}
	if rec.StatusCallback, ref = m.optionalStr("status_callback"); ref != nil {
		return rec, nil, ref
	} else if rec.StatusCallback != "" {
		if ref := s.checkCallback(rec.StatusCallback); ref != nil {
			return rec, nil, ref
		}
	}
	if rec.AgentRequestID != "" {
		rec.AgentKey = "id:" + rec.AgentRequestID
	} else {
		rec.AgentKey = "msg:" + s.accepted(m).Hash
	}
	if ex != "deletion" {
		rec.Status, rec.Reason, rec.Details = string(StatusDenied), string(ReasonClaimNotCovered), detailsNotCovered
		return rec, nil, nil
	}
	subject, reason, details, ref := s.subject(m)
	if ref != nil {
		return rec, nil, ref
	}
	if reason != "" {
		rec.Status, rec.Reason, rec.Details = string(StatusDenied), string(reason), details
	}
	return rec, subject, nil
}

// subject returns the identifiers the message's identity claims give, in canonical form: only
// the claims the agent's configuration maps, each only when verified (or configured as usable
// unverified). With none, the reason to deny the request and its details.
func (s *Server) subject(m *message) (erasure.Subject, Reason, string, *refusal) {
	a := m.agent
	claims := make([]string, 0, len(a.Claims))
	for c := range a.Claims {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	var ids []erasure.Identifier
	present := 0
	for _, claim := range claims {
		v, ok, ref := claimValue(m, claim)
		if ref != nil {
			return nil, "", "", ref
		} else if !ok {
			continue
		}
		present++
		if !m.flag(claim+"_verified") && !slices.Contains(a.Unverified, claim) {
			continue
		}
		id := erasure.Identifier{Type: a.Claims[claim], Value: v}
		for _, t := range s.cfg.IdentifierTypes {
			if t.Name == id.Type {
				c, err := t.Canonical(v)
				if err != nil {
					return nil, "", "", refuse(http.StatusBadRequest, "claim %s: %s", claim, erasure.ErrorMessage(err))
				}
				id.Value = c
			}
		}
		if err := id.Validate(); err != nil {
			return nil, "", "", refuse(http.StatusBadRequest, "claim %s: %s", claim, erasure.ErrorMessage(err))
		}
		ids = append(ids, id)
	}
	switch {
	case len(ids) > erasure.MaxSubjectIdentifiers:
		return nil, "", "", refuse(http.StatusBadRequest, "more than %d identity claims", erasure.MaxSubjectIdentifiers)
	case len(ids) > 0:
		return erasure.NewSubject(ids...), "", "", nil
	case present > 0:
		return nil, ReasonInsufVerification, detailsUnverified, nil
	}
	return nil, ReasonNoMatch, fmt.Sprintf(detailsNoClaim, strings.Join(claims, ", ")), nil
}

// claimValue returns an identity claim's value: a string, or the `formatted` member of an
// address object (OpenID Connect's address claim). False when absent or empty.
func claimValue(m *message, claim string) (string, bool, *refusal) {
	raw, ok := m.fields[claim]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var v string
	if json.Unmarshal(raw, &v) == nil {
		return v, v != "", nil
	}
	var addr struct {
		Formatted string `json:"formatted"`
	}
	if json.Unmarshal(raw, &addr) == nil {
		return addr.Formatted, addr.Formatted != "", nil
	}
	return "", false, refuse(http.StatusBadRequest, "claim %s must be a string", claim)
}

// checkCallback accepts an absolute https URL (http too when allowed), without credentials.
func (s *Server) checkCallback(raw string) *refusal {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > 2048 || err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || !printable(raw):
		return refuse(http.StatusBadRequest, "status_callback must be an absolute URL of at most 2048 bytes, without credentials or fragment")
	case u.Scheme == "https", u.Scheme == "http" && s.cfg.AllowHTTPCallbacks:
		return nil
	}
	return refuse(http.StatusBadRequest, "status_callback must be an https URL")
}

// submit submits the erasure of a recorded deletion, under the record's id, deadline and key
// (a second submission finds the first). A revoke that closed the record meanwhile is honoured:
// the erasure just created is cancelled.
func (s *Server) submit(ctx context.Context, rec *erasure.DRPRequest, subject erasure.Subject, regime string) (*refusal, error) {
	reason := "drp"
	if regime != "" {
		reason += " " + regime
	}
	_, _, err := s.cfg.Service.Submit(ctx, erasure.Submission{ID: rec.ID, Subject: subject, Reason: reason, Deadline: rec.ExpectedBy,
		IdempotencyKey: rec.AgentKey, Actor: actor(rec.AgentID)})
	switch erasure.ErrorCode(err) {
	case "":
	case erasure.ECONFLICT:
		return refuse(http.StatusConflict, "agent-request-id %q names request %s, made with other claims", clip(rec.AgentRequestID), rec.ID), nil
	case erasure.EINVALID:
		return refuse(http.StatusBadRequest, "%s", erasure.ErrorMessage(err)), nil
	default:
		return nil, err
	}
	again, err := s.cfg.Store.DRPRequest(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	if again.Status != "" {
		if _, err := s.cfg.Service.Cancel(ctx, rec.ID, actor(rec.AgentID)); err != nil && erasure.ErrorCode(err) != erasure.ECONFLICT {
			return nil, err
		}
		*rec = *again
	}
	return nil, nil
}

// owned returns request id when it is agent's; a 403 otherwise, whether it exists or not
// (section 2.02.1), so that ids reveal nothing.
func (s *Server) owned(ctx context.Context, agent *Agent, id string) (*erasure.DRPRequest, *refusal, error) {
	rec, err := s.cfg.Store.DRPRequest(ctx, id)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND || err == nil && rec.AgentID != agent.ID {
		return nil, refuse(http.StatusForbidden, "request %s is not a request of agent %s", clip(id), agent.ID), nil
	}
	return rec, nil, err
}

// status is GET /v1/data-rights-request/{request_id}, the Data Rights Status endpoint.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	agent, ref := s.authenticate(r)
	if ref != nil {
		s.fail(w, r, "", ref)
		return
	}
	rec, ref, err := s.owned(r.Context(), agent, r.PathValue("id"))
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	} else if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	st, err := s.statusOf(r.Context(), rec)
	if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// revoke is DELETE /v1/data-rights-request/{request_id}, the Data Rights Revoke endpoint: the
// erasure is cancelled unless it has ended.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx, now, id := r.Context(), s.cfg.Now(), r.PathValue("id")
	agent, ref := s.authenticate(r)
	if ref != nil {
		s.fail(w, r, "", ref)
		return
	}
	body, ref := s.readBody(w, r)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	}
	m, ref := s.open(body, agent, now)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	}
	// The specification's revoke holds a reason; some agents also name the request.
	if rid, ref := m.optionalStr("request_id"); ref != nil || rid != "" && rid != id {
		s.fail(w, r, agent.ID, refuse(http.StatusBadRequest, "request_id in the message must be the request of the path"))
		return
	}
	if _, ref := m.optionalStr("reason"); ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	}
	rec, ref, err := s.owned(ctx, agent, id)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	} else if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	if err := s.cfg.Store.AcceptDRPMessage(ctx, s.accepted(m)); erasure.ErrorCode(err) == erasure.ECONFLICT {
		s.fail(w, r, agent.ID, refuse(http.StatusConflict, "this signed message was accepted before: sign a new one"))
		return
	} else if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	st, ref, err := s.cancel(ctx, rec)
	if ref != nil {
		s.fail(w, r, agent.ID, ref)
		return
	} else if err != nil {
		s.failErr(w, r, agent.ID, err)
		return
	}
	s.log.Info("data rights request revoked", "request", rec.ID, "agent", agent.ID)
	writeJSON(w, http.StatusOK, st)
}

// cancel revokes rec: its erasure request is cancelled, or, when it has none, the record is
// closed so that none will be made. A request that ended otherwise is a conflict; one the
// agent revoked before answers revoked again.
func (s *Server) cancel(ctx context.Context, rec *erasure.DRPRequest) (ExerciseStatus, *refusal, error) {
	for try := 0; try < 3; try++ {
		if rec.Status == "" {
			_, err := s.cfg.Service.Cancel(ctx, rec.ID, actor(rec.AgentID))
			switch erasure.ErrorCode(err) {
			case "", erasure.ECONFLICT: // cancelled now, or ended before: the status says which
			case erasure.ENOTFOUND:
				closed, err := s.cfg.Store.CloseDRPRequest(ctx, rec.ID, string(StatusRevoked), "", detailsRevokedBefore)
				if erasure.ErrorCode(err) == erasure.ECONFLICT {
					// Its erasure was created meanwhile, or the record closed: look again.
					if rec, err = s.cfg.Store.DRPRequest(ctx, rec.ID); err != nil {
						return ExerciseStatus{}, nil, err
					}
					continue
				} else if err != nil {
					return ExerciseStatus{}, nil, err
				}
				rec = closed
			default:
				return ExerciseStatus{}, nil, err
			}
		}
		st, err := s.statusOf(ctx, rec)
		if err != nil {
			return ExerciseStatus{}, nil, err
		}
		if st.Status != StatusRevoked {
			return ExerciseStatus{}, refuse(http.StatusConflict, "request %s is already %s: there is nothing left to revoke", rec.ID, st.Status), nil
		}
		return st, nil, nil
	}
	return ExerciseStatus{}, nil, erasure.Errorf(erasure.EUNAVAILABLE, "request %s kept changing", rec.ID)
}
