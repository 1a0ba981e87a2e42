// Package httpconn is the `http` connector: it erases a subject by calling the owning service
// over HTTP, inside the task (method realtime). It registers itself as "http" with the registry;
// import it for its side effect:
//
//	import _ "erasure/connector/http"
//
// # The block
//
//	datasets:
//	- name: profile-service
//	  owner: profile-team
//	  connector: http
//	  http:
//	    erase:                                   # required
//	      method: DELETE                         # default DELETE; GET HEAD POST PUT PATCH DELETE
//	      url: "http://profile.internal/users/{user_id}"
//	      body: '{{"user_id": "{user_id}"}}'     # optional template ({{ and }} are literal braces)
//	      headers: { X-Reason: gdpr }            # optional, added to the common headers
//	      removed: deleted                       # optional: the JSON field of a 2xx response counting what it erased
//	    hide:                                    # optional: the hide action of the grace window
//	      method: POST                           # default POST; placeholders among erase's
//	      url: "http://profile.internal/users/{user_id}/hide"
//	    verify:                                  # optional: makes the connector an erasure.Verifier
//	      method: GET                            # default GET
//	      url: "http://profile.internal/users/{user_id}"
//	      gone: [404, 410]                       # statuses meaning "absent" (default 404, 410)
//	    lookup:                                  # optional: makes the connector an erasure.Resolver
//	      method: GET
//	      url: "http://profile.internal/users?email={email}"
//	      field: data                            # optional root of the provided fields
//	    headers: { Authorization: "Bearer ${PROFILE_TOKEN}" }   # sent with every request
//	    timeout: 10s                             # per HTTP exchange, default 10s, at most 10m
//	  provides: [ { identifier: user_id, field: id } ]          # read by lookup
//
// Unknown keys are errors. Build performs no I/O.
//
// # Templates and escaping
//
// {name} placeholders name declared identifier types. Each value is escaped where it stands:
// url.PathEscape in the path (so "/", "?", "#" and "%" are encoded, and values made only of dots
// become %2E so they cannot be "." or ".." segments), url.QueryEscape in the query. A
// placeholder in the scheme, host or fragment is refused, so an identifier value can never
// choose where a request goes nor add path segments or parameters. A body is escaped for its
// Content-Type (default application/json): inside a JSON string for JSON (the template supplies
// the quotes), form encoding for application/x-www-form-urlencoded; other types may not hold
// placeholders. Headers are literal. Put secrets in headers, not in URLs: error messages name a
// request by its URL template.
//
// The dataset's keys are the identifiers the erase and lookup requests use (the pipeline runs a
// task when the subject has any of them, and passes only those). A subject with several values
// gets one request per combination of values. A subject lacking an erase identifier that the
// lookup provides, while having the lookup's own, was looked up here and not found: Erase
// succeeds with nothing removed (without a request) and Holds is false. Any other missing or
// empty value is a permanent error.
//
// # Semantics
//
// Erase: 2xx is success and counts one removed per request; 404 and 410 are success with
// nothing removed (already gone). 429 and 5xx are transient, honouring Retry-After (seconds or
// an HTTP date); refused connections, resets and timeouts are transient; certificate errors
// and every other status, redirects included (they are never followed: a 302 would turn a
// DELETE into a GET), are permanent. Erase stops at the first failing request; a retry sends
// them all again, which the service must accept (idempotent endpoints).
//
// Removed counts one per 2xx response, or, with erase.removed, the whole number the response
// holds at that dotted JSON path (a 204 or an empty body counts one; a body without the number
// is a permanent error). The guard (erasure.GuardFrom, max_removed) can only judge what the
// service reports: over the limit the task fails with a permanent *erasure.GuardError saying
// that the service has already erased, for a person to look at the service.
//
// Verify (Holds): a status listed in gone means absent; 2xx means the subject is still there;
// 429/5xx are transient, anything else permanent. Several values: true as soon as one is found.
//
// Lookup (Resolve): for each combination of the lookup URL's identifiers the response must be
// JSON (at most 1 MiB); each provides entry's field is a dotted path ("user.id", "items.0.id")
// read under the lookup's field when set. A path through an array applies to each element, and
// an array of values gives each value; null and missing fields give nothing. 404/410 give
// nothing. A subject without the lookup's identifiers has nothing to look up (no request).
//
// Messages never contain an expanded URL, a response body or a server's reason phrase, so no
// identifier value leaks into task errors: "DELETE http://profile.internal/users/{user_id}:
// 403 Forbidden".
//
// A canary needs a plant block (the service's create endpoint) and a way to read the canary
// back, plant.check or the dataset's verify:
//
//	canary:
//	  plant:
//	    method: POST                             # default POST
//	    url: "http://profile.internal/users"
//	    body: '{{"id": "{user_id}"}}'
//	    check: { url: "http://profile.internal/users/{user_id}", gone: [404] }   # default: verify
//
// Plant sends the plant request (2xx expected); Remains sends the check request: 2xx means the
// canary subject is still there. With a check of its own the canary catches a DELETE that
// answers 204 and deletes nothing even when the dataset has no verify.
//
// Check sends HEAD / to the host of each configured request and succeeds on any answer: it
// proves DNS, routing and TLS, not that the endpoints or credentials work (that cannot be
// known without erasing).
//
// One *http.Client with its own pooled transport (64 idle connections, 16 per host, 64 at most
// per host) serves the connector; Close releases idle connections.
package httpconn
