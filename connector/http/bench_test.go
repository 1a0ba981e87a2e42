package httpconn_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"erasure"
)

// BenchmarkErase sends one DELETE per subject to a loopback server, next to a baseline sending
// the same request with a plain *http.Client: go test -run - -bench Erase ./connector/http/
func BenchmarkErase(b *testing.B) {
	ctx := context.Background()
	srv := newServer(b, status(http.StatusNoContent))
	c := build(b, eraseBlock(srv.URL)).(erasure.Eraser)
	s := users("a/b?c=d")
	b.Run("connector", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Erase(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-net-http", func(b *testing.B) {
		client := &http.Client{}
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, srv.URL+"/users/a%2Fb%3Fc=d", nil)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
