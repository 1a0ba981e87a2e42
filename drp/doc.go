// Package drp speaks the Data Rights Protocol (DRP 0.9.4, consumer-reports-innovation-lab/
// data-rights-protocol) as the Privacy Infrastructure Provider of one covered business:
// authorized agents set up a pair-wise token, send signed data rights requests, follow them and
// revoke them, and get status callbacks. A deletion becomes an erasure request of the same id,
// submitted through erasure.Service like any other; other rights are answered `denied` /
// `claim_not_covered`. docs/drp.md is the operator's guide; the protocol's own words for
// every field are kept here.
//
// # Endpoints
//
// Mounted on the API's listener (server.Open does it when the registry has a drp section); the
// API's bearer tokens and roles play no part, each agent authenticates with its own key:
//
//	POST   /v1/agent/{agent-id}                 pair-wise key set-up: a signed message → {"agent-id","token"}; 403, no body, on any failure
//	GET    /v1/agent/{agent-id}                 Bearer token → {}; 403 when the token is not this agent's
//	POST   /v1/data-rights-request              Bearer + signed exercise → Exercise Status (also with a trailing /)
//	GET    /v1/data-rights-request/{request_id} Bearer → Exercise Status; 403 for a request of another agent (or none)
//	DELETE /v1/data-rights-request/{request_id} Bearer + signed revoke → Exercise Status `revoked`
//
// # Signed messages
//
// A signed message is the body of a POST or DELETE, read as text whatever its Content-Type:
// base64 (standard alphabet; unpadded and URL-safe are accepted too) of libsodium's combined
// format, the 64-byte Ed25519 signature followed by the JSON it signs. It is validated in the
// order of the specification's section 3.07, stopping at the first failure: it decodes; the
// signature verifies with the key of the agent (named by the path for the key set-up, by the
// Bearer token otherwise); agent-id is that agent; business-id is this business; issued-at is
// not in the future; expires-at has not passed. issued-at and expires-at are ISO 8601 (RFC 3339,
// or without a zone: UTC), and both are judged with a tolerance of Config.ClockSkew either way.
// A message living longer than Config.MaxMessageLifetime (expires-at − issued-at) is refused,
// because each accepted message is remembered, by a keyed hash, until it expires (plus the
// skew), and the same message is refused again (409) in the meantime: replaying a captured
// message achieves nothing. An agent that retries sends a new signed message; a deletion's
// agent-request-id makes the retry find the same request.
//
// Failures of the key set-up answer 403 with no body, as the specification says. The other
// endpoints answer errors with the specification's error state (section 3.06):
// {"code":"403","message":"…"} (`fatal: true` for an expired message); 403 for anything
// about the token, the signature or the claims of section 3.07, 400 for a malformed request,
// 409 for a replayed message or a revoke that comes too late.
//
// # Requests
//
// An exercise's `exercise` is a right of section 3.01. `deletion` becomes an erasure request:
// the identity claims (schema.org Person: email, phone_number, name…) that the agent's
// configuration maps to identifier types make its subject, each used only when the message
// also says `<claim>_verified: true`, unless the configuration lists the claim as unverified.
// The erasure's idempotency key is the agent's agent-request-id (scoped to the agent), so that
// an agent retrying with a new signed message gets the same request; without one, every
// message is a new request. Other rights are answered `denied` / `claim_not_covered` at once;
// a deletion with no claim to match, `denied` / `no_match`; one whose claims are present but
// unverified, `denied` / `insuf_verification`. These are recorded too (GET answers them) but
// make no erasure and no callback: the response already says all there is.
//
// The request is recorded first (erasure.DRPStore, with the agent's status_callback) and the
// erasure request submitted second, under the same id, so that every audit event of the
// erasure finds its DRP request. A request recorded whose erasure was never submitted (the
// server stopped between the two) answers `open`; the agent's retry submits it.
//
// # Statuses
//
// The Exercise Status of a deletion derives from its erasure request:
//
//	recorded, no erasure request yet                 open
//	pending, running                                 in_progress (received_at, expected_by = the deadline)
//	completed, something was erased or found          fulfilled
//	completed, nothing found                          denied / no_match
//	failed                                            denied / other (processing_details for a person)
//	cancelled by the agent's revoke                   revoked
//	cancelled by the business (an operator)           denied / other
//
// "Nothing found" means: every erase task was skipped (no identifier for its dataset) or erased
// nothing it counts (removed 0, and not an offline dataset, whose sweeps count rows per sweep
// rather than per subject), and no lookup found a further identifier of the subject. Anything
// else is `fulfilled`: erasure cannot tell "nothing was there" from "erased" everywhere, and a
// deletion that removed everything there was is fulfilled. A failed request stays open in
// erasure (an operator may retry it): a retry takes the DRP status back to in_progress, with a
// callback.
//
// # Callbacks
//
// Subscriber turns the audit events of DRP requests (request.submitted and request.retried →
// in_progress; request.completed, request.failed, request.cancelled) into status callbacks to
// the request's status_callback, delivered at least once from the durable outbox (erasure.
// OutboxMessage), in order per request. The body is the Exercise Status. The specification
// asks for no authentication of callbacks, and the pair-wise token is stored only as a hash, so
// it cannot be sent back; instead each callback carries
//
//	X-DRP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(K, t + "." + body)>
//	K = HMAC-SHA256(key: the agent's current token, message: "drp-status-callback/1")
//
// which an agent may check with its token (an extension; agents may ignore it).
package drp
