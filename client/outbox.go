package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"erasure"
)

// DeliveryPage is one page of the notifications' outbox, newest first; NextAfter, when not 0,
// is the f.After of the next page.
type DeliveryPage struct {
	Deliveries []erasure.OutboxMessage `json:"deliveries"`
	NextAfter  int64                   `json:"next_after,omitempty"`
}

// Deliveries lists the outbox's messages with their delivery state, newest first: of one
// subscriber ("webhook:NAME"), request (f.Key) and state when set. Each message's URL is only
// the endpoint's origin. Needs read.
func (c *Client) Deliveries(ctx context.Context, f erasure.OutboxFilter) (DeliveryPage, error) {
	q := url.Values{}
	if f.Subscriber != "" {
		q.Set("subscriber", f.Subscriber)
	}
	if f.Key != "" {
		q.Set("request", f.Key)
	}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.After > 0 {
		q.Set("after", strconv.FormatInt(f.After, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var page DeliveryPage
	_, err := c.do(ctx, http.MethodGet, "/v1/webhooks/deliveries"+query(q), nil, nil, &page)
	return page, err
}

// RetryDelivery sends a dead message again (with fresh attempts); ENOTFOUND, ECONFLICT when it
// is not dead. Needs operate.
func (c *Client) RetryDelivery(ctx context.Context, id int64) (*erasure.OutboxMessage, error) {
	m := new(erasure.OutboxMessage)
	if _, err := c.do(ctx, http.MethodPost, "/v1/webhooks/deliveries/"+strconv.FormatInt(id, 10)+"/retry", nil, nil, m); err != nil {
		return nil, err
	}
	return m, nil
}

// ResolveRequestID returns the id of the one request whose id starts with prefix ("r_" may be
// left out): ENOTFOUND when none does, ECONFLICT when several do (the message names some).
// Needs read.
func (c *Client) ResolveRequestID(ctx context.Context, prefix string) (string, error) {
	var body struct {
		ID string `json:"id"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/requests:resolve?prefix="+url.QueryEscape(prefix), nil, nil, &body); err != nil {
		return "", err
	}
	return body.ID, nil
}
