package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"erasure"
)

// An erasure certificate is a JSON document of two members, written by SignCertificate:
//
//	{
//	  "certificate": { ... erasure.Certificate ... },
//	  "signature": {
//	    "algorithm": "ed25519",
//	    "key_id": "first 16 hex digits of the SHA-256 of the public key",
//	    "public_key": "base64",
//	    "value": "base64 signature"
//	  }
//	}
//
// The signature is Ed25519 over certificateContext followed by the certificate member in
// compact JSON. VerifyCertificate also requires the document to be byte for byte what
// SignCertificate writes for that certificate and signature, so that any changed byte of the
// file fails verification, whitespace included.

// certificateContext separates certificate signatures from anything else the key may sign.
const certificateContext = "erasure certificate/1\x00"

// CertificateSignature is the signature member of a certificate document.
type CertificateSignature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
	Value     string `json:"value"`
}

type certificateDocument struct {
	Certificate json.RawMessage      `json:"certificate"`
	Signature   CertificateSignature `json:"signature"`
}

// SignCertificate encodes c and signs it with key, and returns the document.
func SignCertificate(key ed25519.PrivateKey, c *erasure.Certificate) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(key, append([]byte(certificateContext), body...))
	return encodeCertificate(body, CertificateSignature{Algorithm: "ed25519", KeyID: KeyID(pub),
		PublicKey: base64.StdEncoding.EncodeToString(pub), Value: base64.StdEncoding.EncodeToString(sig)})
}

// encodeCertificate writes the document of a compact certificate body and its signature: the
// one encoding a certificate has.
func encodeCertificate(body []byte, sig CertificateSignature) ([]byte, error) {
	doc, err := json.MarshalIndent(certificateDocument{Certificate: body, Signature: sig}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(doc, '\n'), nil
}

// ErrCertificate is the error of every certificate that does not verify.
var ErrCertificate = errors.New("certificate does not verify")

// VerifyCertificate checks a certificate document and returns its certificate and the key
// that signed it. With pub set, the document must be signed by pub; with pub nil, by the key
// it names itself, which proves only that the document is whole, not who issued it. Errors
// wrap ErrCertificate and say what failed.
func VerifyCertificate(doc []byte, pub ed25519.PublicKey) (*erasure.Certificate, erasure.CertificateKey, error) {
	fail := func(format string, args ...any) (*erasure.Certificate, erasure.CertificateKey, error) {
		return nil, erasure.CertificateKey{}, fmt.Errorf("%w: %s", ErrCertificate, fmt.Sprintf(format, args...))
	}
	var d certificateDocument
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fail("not a certificate document: %v", err)
	}
	if len(d.Certificate) == 0 {
		return fail("the document has no certificate member")
	}
	var body bytes.Buffer
	if err := json.Compact(&body, d.Certificate); err != nil {
		return fail("the certificate member is not JSON: %v", err)
	}
	if d.Signature.Algorithm != "ed25519" {
		return fail("signature algorithm %q is not ed25519", d.Signature.Algorithm)
	}
	named, err := base64.StdEncoding.DecodeString(d.Signature.PublicKey)
	if err != nil || len(named) != ed25519.PublicKeySize {
		return fail("the signature's public key is not %d bytes of base64", ed25519.PublicKeySize)
	}
	if d.Signature.KeyID != KeyID(named) {
		return fail("key_id %q is not the id of the signature's public key", d.Signature.KeyID)
	}
	if pub != nil && !bytes.Equal(pub, named) {
		return fail("signed by key %s, not by the key given (%s)", KeyID(named), KeyID(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(d.Signature.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fail("the signature is not %d bytes of base64", ed25519.SignatureSize)
	}
	if !ed25519.Verify(named, append([]byte(certificateContext), body.Bytes()...), sig) {
		return fail("the signature does not match the certificate: it was altered, or signed by another key")
	}
	// Re-encoded from the decoded values: base64 has spare bits a lenient decoder ignores, so
	// the document must hold the one encoding of each.
	canonical, err := encodeCertificate(body.Bytes(), CertificateSignature{Algorithm: "ed25519", KeyID: KeyID(named),
		PublicKey: base64.StdEncoding.EncodeToString(named), Value: base64.StdEncoding.EncodeToString(sig)})
	if err != nil || !bytes.Equal(canonical, doc) {
		return fail("the document is not as it was issued (its layout was changed)")
	}
	var c erasure.Certificate
	dec = json.NewDecoder(bytes.NewReader(body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fail("the certificate is not of a version this build reads: %v", err)
	}
	if c.Kind != erasure.CertificateKind || c.Version != erasure.CertificateVersion {
		return fail("kind %q version %d is not an erasure certificate of version %d", c.Kind, c.Version, erasure.CertificateVersion)
	}
	return &c, PublicKeyOf(named), nil
}
