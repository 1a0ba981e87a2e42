package web_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"erasure"
	"erasure/internal/testenv"
)

// chromePath finds the browser: ERASURE_TEST_CHROME, else chromium or Chrome on the PATH. With
// none, the test skips, or fails when ERASURE_TEST_REQUIRE_SERVICES=1 (.ci/run installs
// Debian's chromium when it is missing).
func chromePath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ERASURE_TEST_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Unavailable(t, "chromium", errors.New("no chromium on the PATH and ERASURE_TEST_CHROME unset"))
	return ""
}

// screenshotDir is where the browser test writes a screenshot of each page:
// ERASURE_TEST_SCREENSHOTS when set (docs/ holds two of them), else a temporary folder.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ERASURE_TEST_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDashboard_Browser drives the dashboard in headless Chromium as an operator would: a wrong
// token is refused, the right one signs in, a request is found by its subject's e-mail, opened,
// its failed task retried, and it completes; an action posted without the CSRF token is
// refused. Every page is captured.
func TestDashboard_Browser(t *testing.T) {
	chrome := chromePath(t)
	shots := screenshotDir(t)
	e := startEstate(t)
	e.importRecords()
	for i := 0; i < 8; i++ {
		e.waitStatus(e.submit("user_id", fmt.Sprint(1000+i), "email", fmt.Sprintf("user%d@example.com", i)), erasure.RequestCompleted)
	}
	refusing.Store(true)
	defer refusing.Store(false)
	failing := e.submit("user_id", "4242", "email", "Alice@Example.com")
	e.waitStatus(failing, erasure.RequestFailed)
	pending := e.submit("user_id", "77")
	e.waitStatus(pending, erasure.RequestFailed)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true), chromedp.WindowSize(1280, 860))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout on this first call
		t.Fatalf("starting %s: %v", chrome, err)
	}
	// Accept the confirmation dialogs of the action buttons.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(s, e.url)
	}
	shot := func(name string) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, "dashboard-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Signed out, every page leads to the sign-in page; a wrong token is refused.
	do("open the dashboard", chromedp.Navigate(e.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := location(); loc != "/ui/login" {
		t.Fatalf("signed out, /ui/ led to %s", loc)
	}
	shot("login")
	do("sign in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token-0123456789"), chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	if s := text("#login-error"); !strings.Contains(s, "Sign-in refused") {
		t.Fatalf("wrong token: %q", s)
	}
	shot("login-refused")

	do("sign in", chromedp.SendKeys(chromedp.ID("token"), operatorToken), chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.CSS("section.cards")))
	if s := text("#user"); !strings.Contains(s, "operator") {
		t.Fatalf("signed in as %q", s)
	}
	shot("overview")

	// Find the failed request by the subject's e-mail, written otherwise than submitted.
	do("search", chromedp.Navigate(e.url+"/ui/requests"), chromedp.WaitVisible(chromedp.ID("search-value")),
		chromedp.SetValue(chromedp.ID("search-type"), "email"), chromedp.SendKeys(chromedp.ID("search-value"), "alice@example.COM"),
		chromedp.Click(chromedp.ID("search-go")), chromedp.WaitVisible(chromedp.ID("searching")))
	if loc := location(); !strings.HasPrefix(loc, "/ui/requests?subject=email%3A") || strings.Contains(strings.ToLower(loc), "alice") {
		t.Fatalf("search results at %s", loc)
	}
	if s := text("#requests"); !strings.Contains(s, failing) || strings.Contains(s, pending) {
		t.Fatalf("search results: %q", s)
	}
	shot("search")

	do("open the request", chromedp.Click(chromedp.CSS(`a[href="/ui/requests/`+failing+`"]`)), chromedp.WaitVisible(chromedp.ID("retry")))
	if s := text("#status"); s != "failed" {
		t.Fatalf("status %q, want failed", s)
	}
	shot("request-failed")

	// An action posted from the page without the CSRF token is refused, and changes nothing.
	do("post a form without the CSRF token", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = "/ui/requests/`+failing+`/cancel";
		document.body.appendChild(f);
		f.submit();
	})()`), chromedp.WaitVisible(chromedp.ID("error-message")))
	if s := text("#error-message"); !strings.Contains(s, "CSRF") {
		t.Fatalf("cancel without the CSRF token: %q", s)
	}
	shot("csrf-refused")
	if r, _ := e.srv.Service.Request(ctx, failing); r.Status != erasure.RequestFailed {
		t.Fatalf("a refused action changed the request to %s", r.Status)
	}
	do("back to the request", chromedp.Navigate(e.url+"/ui/requests/"+failing), chromedp.WaitVisible(chromedp.ID("retry")))

	// The owner fixed their side: retry, and watch it complete.
	refusing.Store(false)
	do("retry", chromedp.Click(chromedp.ID("retry")), chromedp.WaitVisible(chromedp.ID("status")))
	for deadline := time.Now().Add(20 * time.Second); ; {
		if s := text("#status"); s == "completed" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after retry the request is still %q", s)
		}
		time.Sleep(100 * time.Millisecond)
		do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("status")))
	}
	shot("request")

	do("open the certificate", chromedp.Click(chromedp.ID("certificate")), chromedp.WaitVisible(chromedp.ID("verified")))
	if s := text("#verified"); !strings.HasPrefix(s, "signature verified") {
		t.Fatalf("certificate page: %q", s)
	}
	shot("certificate")

	for _, p := range []struct{ path, sel, name string }{
		{"/ui/datasets", "#datasets", "datasets"},
		{"/ui/sweeps", "#sweeps", "sweeps"},
		{"/ui/records", "#sources", "records"},
		{"/ui/audit", "#check", "audit"},
		{"/ui/requests", "#requests", "requests"},
		{"/ui/", "section.cards", "overview-after"},
	} {
		do("open "+p.path, chromedp.Navigate(e.url+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		shot(p.name)
	}
	t.Logf("screenshots in %s", shots)
}
