package web_test

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"erasure"
)

// TestDashboard_NoIdentifierInClear walks every page of the dashboard and every payload of the
// API, for requests in every state (an open, failed one still holds its identifiers in clear
// in the store), and the server's log: none holds a subject's identifier in clear, in any
// encoding a page or a URL would use.
func TestDashboard_NoIdentifierInClear(t *testing.T) {
	e := startEstate(t)
	e.importRecords()
	secrets := map[string][]string{
		"completed": {"user_id", "9876543210", "email", "Zelda.Quinn@Example.com"},
		"failed":    {"user_id", "5550001112", "email", "yuri.open@example.net"},
		"cancelled": {"user_id", "3133731337", "email", "xavier.gone@example.org"},
	}
	ids := map[string]string{}
	ids["completed"] = e.submit(secrets["completed"]...)
	e.waitStatus(ids["completed"], erasure.RequestCompleted)
	refusing.Store(true)
	ids["failed"] = e.submit(secrets["failed"]...)
	ids["cancelled"] = e.submit(secrets["cancelled"]...)
	e.waitStatus(ids["failed"], erasure.RequestFailed)
	e.waitStatus(ids["cancelled"], erasure.RequestFailed)
	refusing.Store(false)

	// A sweep of an offline dataset, as a sweep would leave it.
	if _, err := e.srv.Store.SQL().Exec(`INSERT INTO sweeps (id, dataset, state, mode, actor, tasks, started, finished, partitions, rows_scanned, rows_removed, bytes, error)
		VALUES ('s_06h36000000000000000000000', 'accounts.profiles', 'failed', 'internal', 'scheduler', 3, 1764600000000, 1764600060000, 4, 1000, 0, 4096, 'disk full')`); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	b.signIn(operatorToken)
	csrf := b.csrf("/ui/")
	if p := b.get("/ui/sweeps"); p.status != http.StatusOK || !strings.Contains(p.body, "s_06h36000000000000000000000") || !strings.Contains(p.body, "disk full") {
		t.Fatalf("sweeps page: %d", p.status)
	}
	if p := b.do("POST", "/ui/requests/"+ids["cancelled"]+"/cancel", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", p.status)
	}
	if p := b.do("POST", "/ui/records/dry-run", url.Values{"csrf": {csrf}, "source": {"sierra"}, "deleted_before": {"2018-01-01"}}); p.status != http.StatusOK || !strings.Contains(p.body, "would move") {
		t.Fatalf("dry run: %d", p.status)
	}

	var forbidden []string
	for _, kv := range secrets {
		for i := 1; i < len(kv); i += 2 {
			v := kv[i]
			for _, s := range []string{v, strings.ToLower(v), url.QueryEscape(v), url.QueryEscape(strings.ToLower(v)), html.EscapeString(strings.ToLower(v))} {
				forbidden = append(forbidden, s)
			}
		}
	}
	check := func(what, body string) {
		t.Helper()
		for _, s := range forbidden {
			if strings.Contains(body, s) {
				t.Errorf("%s holds %q in clear", what, s)
			}
		}
	}

	// Searches: the clear value goes in a POST body, and comes back as a keyed hash.
	pages := []string{"/ui/", "/ui/requests", "/ui/requests?status=failed", "/ui/requests?status=cancelled", "/ui/requests?overdue=1",
		"/ui/requests?dataset=accounts.profiles", "/ui/datasets", "/ui/sweeps", "/ui/records", "/ui/audit",
		"/ui/static/style.css", "/ui/static/app.js",
		"/ui/requests/" + ids["completed"] + "/certificate", "/ui/requests/" + ids["completed"] + "/certificate.json"}
	for _, kv := range secrets {
		for i := 0; i+1 < len(kv); i += 2 {
			p := b.do("POST", "/ui/search", url.Values{"csrf": {csrf}, "type": {kv[i]}, "value": {kv[i+1]}})
			if p.status != http.StatusSeeOther {
				t.Fatalf("search: %d", p.status)
			}
			check("the search's redirect", p.header.Get("Location"))
			pages = append(pages, p.header.Get("Location"))
		}
	}
	for _, id := range ids {
		pages = append(pages, "/ui/requests/"+id)
	}
	seen := map[string]bool{}
	older := regexp.MustCompile(`href="(/ui/audit\?before=\d+)"`)
	for len(pages) > 0 {
		path := pages[0]
		pages = pages[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		check(path, p.body)
		if m := older.FindStringSubmatch(p.body); m != nil {
			pages = append(pages, html.UnescapeString(m[1]))
		}
	}
	if !seen["/ui/audit"] || len(seen) < 20 {
		t.Fatalf("only %d pages walked", len(seen))
	}

	// The API's payloads, with the operator's token.
	api := []string{"/v1/requests?limit=500", "/v1/audit?limit=10000", "/v1/datasets", "/v1/certificates/key",
		"/v1/requests/" + ids["completed"] + "/certificate",
		"/v1/requests?identifier=" + url.QueryEscape("email:zelda.quinn@example.com")}
	for _, id := range ids {
		api = append(api, "/v1/requests/"+id, "/v1/audit?request="+id)
	}
	for _, path := range api {
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+operatorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if strings.Contains(path, "identifier=") {
			if !strings.Contains(string(body), ids["completed"]) {
				t.Fatalf("the search by identifier did not find the completed request: %s", body)
			}
		} else {
			check(path, string(body))
		}
	}
	check("the server log", e.logs.String())
}
