package reindex

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"erasure"
	"erasure/records"
)

var (
	_ records.Sink = (*JSONLSink)(nil)
	_ records.Sink = (*NATSSink)(nil)
	_ records.Sink = (*HTTPSink)(nil)
)

// JSONLSink writes batches as JSON lines to a writer (stdout, a file). Batches of parallel
// segments are written whole, one at a time.
type JSONLSink struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

// NewJSONLSink returns a sink writing to w; Close closes closer when it is not nil (nil for
// stdout, the file for a file).
func NewJSONLSink(w io.Writer, closer io.Closer) *JSONLSink { return &JSONLSink{w: w, c: closer} }

// Send writes the batch.
func (s *JSONLSink) Send(ctx context.Context, b *records.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(b.Body)
	return err
}

// Close closes the underlying writer when one was given.
func (s *JSONLSink) Close() error {
	if s.c != nil {
		return s.c.Close()
	}
	return nil
}

// NATSSink publishes each batch as one message (NDJSON body, header Records-Count) on a
// subject. Close flushes, so every batch sent before it has reached the server.
type NATSSink struct {
	nc      *nats.Conn
	subject string
	own     bool
}

// NewNATSSink connects to url and returns a sink publishing on subject. EINVALID for a bad
// subject, EUNAVAILABLE when the server cannot be reached.
func NewNATSSink(url, subject string) (*NATSSink, error) {
	if subject == "" || bytes.ContainsAny([]byte(subject), " \t\r\n*>") {
		return nil, erasure.Errorf(erasure.EINVALID, "NATS subject %q is not valid for publishing", records.Clip(subject))
	}
	nc, err := nats.Connect(url, nats.Name("erasure records reindex"))
	if err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "NATS %s: %v", url, err)
	}
	return &NATSSink{nc: nc, subject: subject, own: true}, nil
}

// Send publishes the batch; EINVALID when it is larger than the server's max payload.
func (s *NATSSink) Send(ctx context.Context, b *records.Batch) error {
	if max := s.nc.MaxPayload(); int64(len(b.Body)) > max {
		return erasure.Errorf(erasure.EINVALID, "a batch of %d bytes exceeds the NATS max payload of %d: lower --batch-bytes", len(b.Body), max)
	}
	m := nats.NewMsg(s.subject)
	m.Header.Set("Records-Count", strconv.Itoa(b.Records))
	m.Data = b.Body
	if err := s.nc.PublishMsg(m); err != nil {
		return erasure.Transient(err, 0)
	}
	// Bound what sits unacknowledged in the client buffer: a flush per batch means a
	// checkpoint never runs ahead of what the server received.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return erasure.Transient(err, 0)
	}
	return nil
}

// Close flushes and closes the connection.
func (s *NATSSink) Close() error {
	err := s.nc.Flush()
	if s.own {
		s.nc.Close()
	}
	return err
}

// HTTPSink posts each batch to an endpoint as application/x-ndjson, retrying 429, 5xx and
// transport errors with exponential backoff (honouring Retry-After) up to Attempts times.
// Any other non-2xx status stops the reindex.
type HTTPSink struct {
	URL      string
	Client   *http.Client
	Header   http.Header
	Attempts int
}

// NewHTTPSink returns a sink posting to url; EINVALID unless url is http(s).
func NewHTTPSink(url string) (*HTTPSink, error) {
	if !(len(url) > 7 && (url[:7] == "http://" || (len(url) > 8 && url[:8] == "https://"))) {
		return nil, erasure.Errorf(erasure.EINVALID, "the HTTP sink needs an http:// or https:// URL")
	}
	return &HTTPSink{URL: url, Client: &http.Client{Timeout: 60 * time.Second}, Header: http.Header{}, Attempts: 5}, nil
}

// Send posts the batch.
func (s *HTTPSink) Send(ctx context.Context, b *records.Batch) error {
	wait := 200 * time.Millisecond
	var last error
	for attempt := 1; attempt <= max(s.Attempts, 1); attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(b.Body))
		if err != nil {
			return erasure.Errorf(erasure.EINVALID, "HTTP sink: %v", err)
		}
		for k, v := range s.Header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Records-Count", strconv.Itoa(b.Records))
		resp, err := s.Client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				last = fmt.Errorf("HTTP sink answered %s", resp.Status)
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
					wait = time.Duration(ra) * time.Second
				}
			default:
				return erasure.Permanentf("HTTP sink answered %s", resp.Status)
			}
		} else {
			last = err
		}
		if attempt == s.Attempts {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(wait*2, 30*time.Second)
	}
	return erasure.Transient(fmt.Errorf("HTTP sink: %w", last), 0)
}

// Close does nothing: each batch is complete when Send returns.
func (s *HTTPSink) Close() error { return nil }
