// Package testenv gives tests the addresses of the real services they need and fresh, private
// places on them (a database, a key prefix) that are dropped after the test.
//
// A test that needs a service skips with a reason when its ERASURE_TEST_* variable is unset,
// and fails instead when ERASURE_TEST_REQUIRE_SERVICES=1 (as in .ci/run).
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// Address returns the value of the environment variable name (such as ERASURE_TEST_POSTGRES),
// skipping the test when it is unset, or failing it when ERASURE_TEST_REQUIRE_SERVICES=1.
func Address(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("ERASURE_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is not set and ERASURE_TEST_REQUIRE_SERVICES=1", name)
		}
		t.Skipf("%s is not set: skipping a test that needs this service", name)
	}
	return v
}

// Unavailable reports a service that is configured but cannot be reached: always a failure
// when ERASURE_TEST_REQUIRE_SERVICES=1, a skip otherwise.
func Unavailable(t testing.TB, name string, err error) {
	t.Helper()
	if os.Getenv("ERASURE_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s unreachable: %v", name, err)
	}
	t.Skipf("%s unreachable: %v", name, err)
}

// Name returns a random name with prefix, usable as a database, schema, stream or key prefix.
func Name(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}
