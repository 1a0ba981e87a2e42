package client

import (
	"context"
	"net/http"
	"net/url"

	"erasure"
)

// canaryList is the body of the canary routes (api.CanaryList).
type canaryList struct {
	Canaries []erasure.CanaryResult `json:"canaries"`
}

// Canaries returns the last canary of every dataset with one (Started zero for a canary that
// never ran). Needs the read role.
func (c *Client) Canaries(ctx context.Context) ([]erasure.CanaryResult, error) {
	var body canaryList
	_, err := c.do(ctx, http.MethodGet, "/v1/canaries", nil, nil, &body)
	return body.Canaries, err
}

// RunCanaries runs the canary of dataset (of every dataset with one when dataset is "") now
// and returns the results once they have ended: a failed canary is a result with OK false, not
// an error; a canary the server's schedule is running already is waited for rather than run
// twice. ENOTFOUND for an unknown dataset, EINVALID for one without a canary. The call lasts
// as long as the canaries (up to their timeouts): it is bounded by ctx alone. Needs operate.
func (c *Client) RunCanaries(ctx context.Context, dataset string) ([]erasure.CanaryResult, error) {
	path := "/v1/canaries/run"
	if dataset != "" {
		path = "/v1/canaries/" + url.PathEscape(dataset) + "/run"
	}
	var body canaryList
	_, err := c.untimed().do(ctx, http.MethodPost, path, nil, nil, &body)
	return body.Canaries, err
}
