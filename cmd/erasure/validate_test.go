package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
	"erasure/registry"
)

// validateTestDriver is a connector kind only these tests use, so that they do not depend on
// the block formats of the real connectors.
type validateTestDriver struct{}

type validateTestConn struct{}

func (validateTestConn) Close() error { return nil }

func (validateTestDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (validateTestDriver) Build(b *registry.Build) erasure.Connector {
	var blk struct {
		Key string `yaml:"key"`
	}
	if !b.Decode(b.Block, &blk) {
		return nil
	}
	b.Dataset.Keys = []string{blk.Key}
	return validateTestConn{}
}

func init() { registry.Register("validatetest", validateTestDriver{}) }

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "erasure.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDatasetsValidate(t *testing.T) {
	valid := `version: 1
identifiers: [user_id, email]
auth:
  tokens:
    - { name: ops, secret: "${VALIDATE_TEST_SECRET}", roles: [operate] }
datasets:
  - name: a
    owner: team
    connector: validatetest
    validatetest: { key: user_id }
  - name: b
    owner: team
    connector: validatetest
    validatetest: { key: email }
    after: [a]
`
	t.Setenv("VALIDATE_TEST_SECRET", "a-secret-of-some-length")
	t.Run("ValidFile", func(t *testing.T) {
		path := writeConfig(t, valid)
		for _, args := range [][]string{{path}, {"--config", path}, {path, "--config", path}} {
			code, stdout, stderr := run(t, append([]string{"datasets", "validate"}, args...)...)
			if code != 0 || stdout != path+": 2 datasets, 2 identifiers, ok\n" || stderr != "" {
				t.Errorf("%q: code %d, stdout %q, stderr %q", args, code, stdout, stderr)
			}
		}
	})
	t.Run("EveryErrorWithItsLine", func(t *testing.T) {
		src := strings.NewReplacer("[user_id, email]", "[user_id]", "after: [a]", "after: [c]", "operate]", "admin]").Replace(valid)
		path := writeConfig(t, src)
		code, stdout, stderr := run(t, "datasets", "validate", path)
		want := "erasure datasets validate: 3 errors in " + path + "\n" +
			"  " + path + ":5: auth.tokens: token ops: role \"admin\" is not known (submit, operate, read, write, check, ack:DATASET, ack:*)\n" +
			"  " + path + ":14: dataset b: the validatetest block uses identifier email, which identifiers does not declare\n" +
			"  " + path + ":15: dataset b: after: no dataset is named \"c\"\n"
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("code %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
		}
	})
	t.Run("MissingEnvironmentVariable", func(t *testing.T) {
		path := writeConfig(t, strings.ReplaceAll(valid, "VALIDATE_TEST_SECRET", "VALIDATE_TEST_UNSET"))
		code, _, stderr := run(t, "datasets", "validate", path)
		if code != 2 || !strings.Contains(stderr, path+":5: environment variable VALIDATE_TEST_UNSET is not set\n") {
			t.Errorf("code %d, stderr %q", code, stderr)
		}
	})
	t.Run("MissingFile", func(t *testing.T) {
		code, _, stderr := run(t, "datasets", "validate", filepath.Join(t.TempDir(), "nope.yaml"))
		if code != 3 || !strings.Contains(stderr, "does not exist") {
			t.Errorf("code %d, stderr %q", code, stderr)
		}
	})
	t.Run("TwoFiles", func(t *testing.T) {
		code, _, stderr := run(t, "datasets", "validate", "a.yaml", "b.yaml")
		if code != 2 || !strings.Contains(stderr, "give one configuration file") {
			t.Errorf("code %d, stderr %q", code, stderr)
		}
	})
}
