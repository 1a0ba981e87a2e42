package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"erasure"
)

// Certificate returns the signed erasure certificate of a completed request, byte for byte as
// the server signed it (check it with audit.VerifyCertificate). ECONFLICT when the request has
// not completed, ENOTFOUND. Needs the read role.
func (c *Client) Certificate(ctx context.Context, id string) ([]byte, error) {
	resp, err := c.stream(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id)+"/certificate")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "reading the certificate: %v", err)
	}
	return b, nil
}

// CertificateKey returns the public key the server signs certificates with. Needs no token.
func (c *Client) CertificateKey(ctx context.Context) (erasure.CertificateKey, error) {
	var k erasure.CertificateKey
	_, err := c.do(ctx, http.MethodGet, "/v1/certificates/key", nil, nil, &k)
	return k, err
}
