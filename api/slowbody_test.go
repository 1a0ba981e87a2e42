package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"erasure/api"
)

// TestAPI_SlowBodyIsCut: a client that sends its headers and then trickles (or withholds) its
// body is answered 408 once the body timeout passes, like a slow header, and nothing is
// created; a body that arrives in time is served, and the connection serves the next request.
func TestAPI_SlowBodyIsCut(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.BodyTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	send := func(t *testing.T, conn net.Conn, body string, declared int) {
		t.Helper()
		fmt.Fprintf(conn, "POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", tokSubmit, declared, body)
	}
	t.Run("WithheldBodyIs408", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		send(t, conn, okBody[:10], len(okBody))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a withheld body within 5 s: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("answered after %s", d)
		}
		if n := e.count(); n != 0 {
			t.Fatalf("a cut body created %d requests", n)
		}
	})
	t.Run("TimelyBodyIsServedAndTheConnectionLives", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for i := 0; i < 2; i++ {
			send(t, conn, okBody, len(okBody))
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("request %d: status %d", i, resp.StatusCode)
			}
			// Longer than the body timeout between requests: the deadline was lifted.
			time.Sleep(500 * time.Millisecond)
		}
	})
}
