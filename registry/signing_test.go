package registry_test

import (
	"strings"
	"testing"
)

func TestParse_SigningKey(t *testing.T) {
	t.Run("FromTheEnvironment", func(t *testing.T) {
		cfg := mustParse(t, "x.yaml", "audit:\n  signing_key: ${ERASURE_AUDIT_KEY}\n"+minimal)
		if cfg.Audit.SigningKey != testEnv["ERASURE_AUDIT_KEY"] {
			t.Fatalf("signing_key %q", cfg.Audit.SigningKey)
		}
	})
	for name, src := range map[string]string{
		"InTheFile": "audit:\n  signing_key: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
		"NotAKey":   "audit:\n  signing_key: ${INTAKE_TOKEN}\n",
	} {
		t.Run(name, func(t *testing.T) {
			got := parseErrors(t, "x.yaml", src+minimal)
			if len(got) != 1 || !strings.HasPrefix(got[0], "x.yaml:2: audit.signing_key") {
				t.Fatalf("errors %q", got)
			}
		})
	}
}
