package erasure

import (
	"crypto/subtle"
	"slices"
	"strconv"
	"strings"
)

// DispatchIDLen is the length of a dispatch id: 32 lowercase hex digits (128 bits).
const DispatchIDLen = 32

// DispatchID returns the wire identity of one dispatch: attempt `attempt` of async task taskID
// in the deployment whose id is deployment (Store.Deployment). It is the keyed hash (h.Sum) of
// ("dispatch/1", deployment, task, attempt), cut to DispatchIDLen hex digits.
//
// Task ids are small integers that every deployment starts at 1, so they cannot name a command
// on a transport that several deployments share; a dispatch id can: it differs between
// deployments (their ids are random, and usually so are their keys) and between the attempts of
// one task. It is the message id a transport de-duplicates on, it travels in the command, and
// every acknowledgement must carry it back. Nobody without the key can compute one, so an
// acknowledgement that carries a valid dispatch id was written by someone who read that
// command.
func DispatchID(h Hasher, deployment string, taskID int64, attempt int) string {
	b := make([]byte, 0, 64)
	b = append(b, "dispatch/1\x00"...)
	b = append(b, deployment...)
	b = append(b, 0)
	b = strconv.AppendInt(b, taskID, 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(attempt), 10)
	return h.Sum(b)[:DispatchIDLen]
}

// DispatchAttempt returns the attempt of task t whose DispatchID is id: one of the attempts
// this deployment may have published, 1 to t.Attempts. It returns false when id names no
// dispatch of t in this deployment (another deployment's command, a forged or mangled id, an
// attempt not made yet).
func DispatchAttempt(h Hasher, deployment string, t *Task, id string) (int, bool) {
	if !ValidDispatchID(id) {
		return 0, false
	}
	// The newest attempt first: it is the one most acknowledgements answer.
	for a := t.Attempts; a >= 1; a-- {
		if subtle.ConstantTimeCompare([]byte(DispatchID(h, deployment, t.ID, a)), []byte(id)) == 1 {
			return a, true
		}
	}
	return 0, false
}

// ValidDispatchID reports whether s has the form of a dispatch id (DispatchIDLen lowercase hex
// digits). It says nothing of whether s names a dispatch: DispatchAttempt does.
func ValidDispatchID(s string) bool {
	if len(s) != DispatchIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// SubjectKey returns the keyed hash of subject s (h.Sum of its identifiers' keyed hashes in
// order), DispatchIDLen hex digits: the same for the same identifiers, whatever their order.
func SubjectKey(h Hasher, s Subject) string {
	ids := make([]string, len(s))
	for i, id := range s {
		ids[i] = h.Identifier(id)
	}
	slices.Sort(ids)
	return h.Sum([]byte("subject/1\x00" + strings.Join(ids, "\x00")))[:DispatchIDLen]
}
