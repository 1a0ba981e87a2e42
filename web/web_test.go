package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"erasure"
	"erasure/web"
)

func TestDashboard_SignIn(t *testing.T) {
	e := startEstate(t)
	t.Run("PagesNeedASession", func(t *testing.T) {
		b := e.browser()
		for _, path := range []string{"/ui/", "/ui/requests", "/ui/datasets", "/ui/audit"} {
			if p := b.get(path); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/login" {
				t.Fatalf("%s without a session: %d %s", path, p.status, p.header.Get("Location"))
			}
		}
		if p := b.do("POST", "/ui/search", url.Values{"type": {"email"}, "value": {"a@b.c"}}); p.status != http.StatusUnauthorized {
			t.Fatalf("POST without a session: %d", p.status)
		}
	})
	t.Run("WrongTokenRefused", func(t *testing.T) {
		b := e.browser()
		p := b.do("POST", "/ui/login", url.Values{"token": {"not-a-token-0123456789"}})
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Sign-in refused") || p.header.Get("Set-Cookie") != "" {
			t.Fatalf("%d %q cookie %q", p.status, p.body, p.header.Get("Set-Cookie"))
		}
		if p := b.get("/ui/"); p.status != http.StatusSeeOther {
			t.Fatalf("after a refused sign-in: %d", p.status)
		}
	})
	t.Run("TokenWithoutReadRefused", func(t *testing.T) {
		p := e.browser().do("POST", "/ui/login", url.Values{"token": {intakeToken}})
		if p.status != http.StatusForbidden || p.header.Get("Set-Cookie") != "" {
			t.Fatalf("%d %q", p.status, p.body)
		}
	})
	t.Run("SessionCookie", func(t *testing.T) {
		b := e.browser()
		p := b.do("POST", "/ui/login", url.Values{"token": {viewerToken}})
		c := p.header.Get("Set-Cookie")
		for _, want := range []string{web.CookieName + "=", "Path=/ui/", "HttpOnly", "SameSite=Strict", "Max-Age="} {
			if !strings.Contains(c, want) {
				t.Fatalf("cookie %q lacks %s", c, want)
			}
		}
		if strings.Contains(c, viewerToken) {
			t.Fatalf("the cookie holds the token: %q", c)
		}
		if p := b.get("/ui/"); p.status != http.StatusOK || !strings.Contains(p.body, "viewer · read only") {
			t.Fatalf("overview: %d", p.status)
		}
	})
	t.Run("TamperedCookieRefused", func(t *testing.T) {
		b := e.browser()
		b.signIn(viewerToken)
		u, _ := url.Parse(e.url + "/ui/")
		cs := b.c.Jar.Cookies(u)
		if len(cs) != 1 {
			t.Fatalf("cookies %v", cs)
		}
		payload, mac, _ := strings.Cut(cs[0].Value, ".")
		// Claim to be the operator with the viewer's signature.
		forged := strings.Replace(payload, "dmlld2Vy", "b3BlcmF0b3I", 1)
		for _, v := range []string{forged + "." + mac, payload + "." + mac[:len(mac)-2] + "AA", payload, ""} {
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: web.CookieName, Value: v, Path: "/ui/"}})
			if p := b.get("/ui/"); p.status != http.StatusSeeOther {
				t.Fatalf("cookie %q accepted: %d", v, p.status)
			}
		}
	})
	t.Run("SignOut", func(t *testing.T) {
		b := e.browser()
		b.signIn(viewerToken)
		csrf := b.csrf("/ui/")
		if p := b.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
			t.Fatalf("logout: %d", p.status)
		}
		if p := b.get("/ui/"); p.status != http.StatusSeeOther {
			t.Fatalf("after sign-out: %d", p.status)
		}
	})
}

func TestDashboard_Actions(t *testing.T) {
	e := startEstate(t)
	refusing.Store(true)
	defer refusing.Store(false)
	id := e.submit("user_id", "4711", "email", "carol@example.com")
	e.waitStatus(id, erasure.RequestFailed)

	op := e.browser()
	op.signIn(operatorToken)
	csrf := op.csrf("/ui/requests/" + id)
	retry := "/ui/requests/" + id + "/retry"

	t.Run("WithoutCSRFTokenRefused", func(t *testing.T) {
		for name, form := range map[string]url.Values{"missing": {}, "wrong": {"csrf": {"AAAAAAAAAAAAAAAAAAAAAA"}}, "empty": {"csrf": {""}}} {
			if p := op.do("POST", retry, form); p.status != http.StatusForbidden || !strings.Contains(p.body, "CSRF") {
				t.Fatalf("%s CSRF token: %d %q", name, p.status, p.body)
			}
		}
	})
	t.Run("CrossSiteRefused", func(t *testing.T) {
		for _, h := range [][]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}} {
			if p := op.do("POST", retry, url.Values{"csrf": {csrf}}, h...); p.status != http.StatusForbidden {
				t.Fatalf("%s: %d", h, p.status)
			}
		}
	})
	t.Run("CSRFTokenOfAnotherSessionRefused", func(t *testing.T) {
		other := e.browser()
		other.signIn(operatorToken)
		if p := op.do("POST", retry, url.Values{"csrf": {other.csrf("/ui/")}}); p.status != http.StatusForbidden {
			t.Fatalf("%d", p.status)
		}
	})
	if r := e.waitStatus(id, erasure.RequestFailed); r.Status != erasure.RequestFailed {
		t.Fatal("a refused action changed the request")
	}
	t.Run("ReadOnlyCannotAct", func(t *testing.T) {
		v := e.browser()
		v.signIn(viewerToken)
		p := v.get("/ui/requests/" + id)
		if strings.Contains(p.body, `id="retry"`) || strings.Contains(p.body, `id="cancel"`) {
			t.Fatal("a read-only session is offered the actions")
		}
		if p := v.do("POST", retry, url.Values{"csrf": {v.csrf("/ui/")}}); p.status != http.StatusForbidden {
			t.Fatalf("retry with a read-only session: %d", p.status)
		}
	})
	t.Run("RetryCompletes", func(t *testing.T) {
		refusing.Store(false)
		p := op.do("POST", retry, url.Values{"csrf": {csrf}}, "Origin", e.url)
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/requests/"+id {
			t.Fatalf("retry: %d %s", p.status, p.body)
		}
		e.waitStatus(id, erasure.RequestCompleted)
		page := op.get("/ui/requests/" + id)
		if !strings.Contains(page.body, "request.retried") || !strings.Contains(page.body, "retried by operator") {
			t.Fatalf("the request page does not show the retry")
		}
		if !strings.Contains(page.body, `id="certificate"`) {
			t.Fatal("a completed request offers no certificate")
		}
	})
	t.Run("CancelEnded", func(t *testing.T) {
		p := op.do("POST", "/ui/requests/"+id+"/cancel", url.Values{"csrf": {csrf}})
		if p.status != http.StatusConflict {
			t.Fatalf("cancel of a completed request: %d", p.status)
		}
	})
}

func TestDashboard_Search(t *testing.T) {
	e := startEstate(t)
	a := e.submit("email", "Dora@Example.com")
	e.submit("email", "eve@example.com")
	e.waitStatus(a, erasure.RequestCompleted)
	b := e.browser()
	b.signIn(viewerToken)
	csrf := b.csrf("/ui/requests")
	p := b.do("POST", "/ui/search", url.Values{"csrf": {csrf}, "type": {"email"}, "value": {" dora@example.COM "}})
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/requests?subject=email%3A") || strings.Contains(strings.ToLower(loc), "dora") {
		t.Fatalf("search: %d %q", p.status, loc)
	}
	res := b.get(loc)
	if res.status != http.StatusOK || !strings.Contains(res.body, a) || strings.Count(res.body, `href="/ui/requests/r_`) != 1 {
		t.Fatalf("results: %d", res.status)
	}
	for _, bad := range []url.Values{{"type": {"phone"}, "value": {"1"}}, {"type": {"email"}, "value": {""}}} {
		bad.Set("csrf", csrf)
		if p := b.do("POST", "/ui/search", bad); p.status != http.StatusBadRequest || !strings.Contains(p.body, "Search refused") {
			t.Fatalf("search %v: %d", bad, p.status)
		}
	}
	if p := b.get("/ui/requests?subject=dora@example.com"); p.status != http.StatusBadRequest {
		t.Fatalf("a clear value as subject: %d", p.status)
	}
}
