package httpconn_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"erasure"
	"erasure/registry"
)

func TestConnector_Hide(t *testing.T) {
	ctx := context.Background()
	t.Run("TheHideRequestIsSentForEachValue", func(t *testing.T) {
		srv := newServer(t, status(http.StatusOK))
		c := build(t, eraseBlock(srv.URL)+"hide: { url: \""+srv.URL+"/users/{user_id}/hide\", body: '{{\"reason\": \"grace\"}}' }\n")
		h, ok := c.(erasure.Hider)
		if !ok || !h.Hides() {
			t.Fatal("a block with hide is not a Hider that hides")
		}
		out, err := h.Hide(ctx, users("41", "42"))
		if err != nil || out.Removed != 2 {
			t.Fatalf("Hide = %+v, %v", out, err)
		}
		for _, r := range srv.got() {
			if r.Method != "POST" || !strings.HasSuffix(r.Path, "/hide") || r.Body != `{"reason": "grace"}` {
				t.Fatalf("request %+v", r)
			}
		}
	})
	t.Run("FailuresAreClassifiedAsErasesAre", func(t *testing.T) {
		for code, permanent := range map[int]bool{http.StatusServiceUnavailable: false, http.StatusForbidden: true} {
			srv := newServer(t, status(code))
			_, err := build(t, eraseBlock(srv.URL)+"hide: { url: \""+srv.URL+"/users/{user_id}/hide\" }\n").(erasure.Hider).Hide(ctx, users("42"))
			if err == nil || erasure.IsPermanent(err) != permanent {
				t.Fatalf("%d: err %v, permanent %v", code, err, erasure.IsPermanent(err))
			}
		}
	})
	t.Run("WithoutAHideBlockNothingHides", func(t *testing.T) {
		srv := newServer(t, status(http.StatusOK))
		if build(t, eraseBlock(srv.URL)).(erasure.Hider).Hides() {
			t.Fatal("hides without a hide block")
		}
	})
	t.Run("APlaceholderEraseDoesNotUseIsRefused", func(t *testing.T) {
		yml := registryYAML(eraseBlock("http://x") + "hide: { url: \"http://x/hide/{email}\" }\n")
		if _, err := registry.Parse("erasure.yaml", []byte(yml), func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "hide: placeholder {email} is not used by erase") {
			t.Fatalf("err %v", err)
		}
	})
}
