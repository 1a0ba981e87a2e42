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

// TestDatasetsValidate_LiteralSecrets: with the real connectors, a credential written in the
// file is an error at its line; the same credential from the environment is fine.
func TestDatasetsValidate_LiteralSecrets(t *testing.T) {
	t.Setenv("V_PASSWORD", "from-env")
	t.Setenv("V_TOKEN", "from-env")
	t.Setenv("V_DSN", "redis://:p@cache:6379/0")
	src := `version: 1
identifiers: [user_id]
datasets:
  - name: mysql-literal
    owner: team
    connector: sql
    sql: { driver: mysql, dsn: "erasure:hunter2@tcp(db:3306)/app", table: users, key: { column: id, identifier: user_id } }
  - name: postgres-literal
    owner: team
    connector: sql
    sql: { driver: postgres, dsn: "postgres://erasure:hunter2@db:5432/app", table: users, key: { column: id, identifier: user_id } }
  - name: redis-literal
    owner: team
    connector: redis
    redis: { url: "redis://:hunter2@cache:6379/0", keys: ["s:{user_id}"] }
  - name: http-literal
    owner: team
    connector: http
    http:
      erase: { method: DELETE, url: "http://profile.internal/users/{user_id}" }
      headers: { Authorization: "Bearer abcdef0123456789" }
  - name: http-api-key
    owner: team
    connector: http
    http:
      erase: { method: DELETE, url: "http://profile.internal/users/{user_id}", headers: { X-Api-Key: "abcdef0123456789" } }
  - name: from-env
    owner: team
    connector: sql
    sql: { driver: mysql, dsn: "erasure:${V_PASSWORD}@tcp(db:3306)/app", table: users, key: { column: id, identifier: user_id } }
  - name: from-env-2
    owner: team
    connector: redis
    redis: { url: "${V_DSN}", keys: ["s:{user_id}"] }
  - name: from-env-3
    owner: team
    connector: http
    http:
      erase: { method: DELETE, url: "http://profile.internal/users/{user_id}" }
      headers: { Authorization: "Bearer ${V_TOKEN}", Accept: "application/json" }
`
	path := writeConfig(t, src)
	code, stdout, stderr := run(t, "datasets", "validate", path)
	if code != 2 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, want := range []string{
		path + ":7: dataset mysql-literal: sql.dsn: the DSN holds a password",
		path + ":11: dataset postgres-literal: sql.dsn: the URL holds a password",
		path + ":15: dataset redis-literal: redis.url: the URL holds a password",
		path + ":21: dataset http-literal: http.headers.Authorization: header Authorization carries a credential",
		path + ":26: dataset http-api-key: http.erase.headers.X-Api-Key: header X-Api-Key carries a credential",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no error %q in:\n%s", want, stderr)
		}
	}
	if n := strings.Count(stderr, "\n  "); n != 5 || strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "abcdef") || strings.Contains(stderr, "from-env") {
		t.Errorf("want exactly the 5 errors, quoting no secret:\n%s", stderr)
	}
}
