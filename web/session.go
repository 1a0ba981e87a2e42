package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"erasure"
	"erasure/api"
)

// Sessions are signed cookies, not server state, so that every process serving the dashboard
// accepts a session whichever signed it in (they share the session key) and a restart signs no
// one out. The cookie holds the token's name, an expiry, the session's CSRF token and a keyed
// hash of the token's secret; it is HttpOnly (no script reads it), SameSite=Strict (no other
// site's page sends it) and limited to /ui/. Every request checks the signature, the expiry
// and that the token still exists with the same secret, and takes the token's roles as they are
// configured now: removing or rotating a token ends its sessions.

// CookieName is the name of the session cookie.
const CookieName = "erasure_session"

// session is a signed-in operator.
type session struct {
	Name    string `json:"n"`
	Expires int64  `json:"e"` // unix seconds
	CSRF    string `json:"c"`
	Binding string `json:"b"` // keyed hash of the token's secret hash
	// principal is the token as configured now (not in the cookie).
	principal *api.Principal
}

func (h *Handler) mac(b []byte) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("erasure dashboard session/1\x00"))
	m.Write(b)
	return m.Sum(nil)
}

func (h *Handler) binding(p *api.Principal) string {
	sum := p.Binding()
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("erasure dashboard binding/1\x00"))
	m.Write(sum[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// newSession signs p in until now + TTL and returns the cookie to set.
func (h *Handler) newSession(r *http.Request, p *api.Principal) *http.Cookie {
	var c [16]byte
	rand.Read(c[:])
	s := session{Name: p.Name, Expires: h.now().Add(h.ttl).Unix(), CSRF: base64.RawURLEncoding.EncodeToString(c[:]), Binding: h.binding(p)}
	payload, _ := json.Marshal(s)
	value := base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(h.mac(payload))
	return h.cookie(r, value, int(h.ttl/time.Second))
}

func (h *Handler) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	// Secure when the browser reached us over TLS, directly or through a proxy that says so.
	secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	return &http.Cookie{Name: CookieName, Value: value, Path: "/ui/", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure}
}

// session returns the request's valid session, or nil.
func (h *Handler) session(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	p64, m64, ok := strings.Cut(c.Value, ".")
	if !ok {
		return nil
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, h.mac(payload)) {
		return nil
	}
	var s session
	if json.Unmarshal(payload, &s) != nil || s.Name == "" || s.CSRF == "" || h.now().Unix() >= s.Expires {
		return nil
	}
	p, ok := h.auth.PrincipalNamed(s.Name)
	if !ok || subtle.ConstantTimeCompare([]byte(h.binding(p)), []byte(s.Binding)) != 1 || !p.Has(api.RoleRead) {
		return nil
	}
	s.principal = p
	return &s
}

// checkPost refuses a state-changing request that another site could have sent: its form must
// carry the session's CSRF token, and its Origin (or Sec-Fetch-Site), when the browser sends
// one, must be this site. SameSite=Strict already keeps the cookie off cross-site requests;
// this holds even where it does not.
func (h *Handler) checkPost(r *http.Request, s *session) error {
	if err := sameOrigin(r); err != nil {
		return err
	}
	if s == nil {
		return nil
	}
	got := r.PostFormValue("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
		return erasure.Errorf(erasure.EFORBIDDEN, "this form has expired or did not come from the dashboard (missing or wrong CSRF token): reload the page and try again")
	}
	return nil
}

// sameOrigin refuses a request whose browser says it comes from another site.
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return erasure.Errorf(erasure.EFORBIDDEN, "cross-site request refused")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return erasure.Errorf(erasure.EFORBIDDEN, "cross-site request refused")
		}
	}
	return nil
}
