package httpconn_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"erasure"
	"erasure/registry"
)

func TestDriver_Build(t *testing.T) {
	t.Run("RefusesBadBlocksWithLines", func(t *testing.T) {
		// Lines: the block starts on line 8 of the file (see registryYAML).
		for _, tc := range []struct {
			name  string
			block string
			extra []string
			line  int
			want  string
		}{
			{"UnknownKey", "erase: { url: \"http://svc/users/{user_id}\" }\nretries: 3\n", nil, 9, `unknown key "retries"`},
			{"UnknownKeyInErase", "erase:\n  url: \"http://svc/users/{user_id}\"\n  verb: DELETE\n", nil, 10, `unknown key "verb"`},
			{"MissingErase", "timeout: 5s\n", nil, 8, "erase is required"},
			{"UnclosedPlaceholder", "erase:\n  url: \"http://svc/users/{user_id\"\n", nil, 9, "unclosed {"},
			{"MalformedPlaceholder", "erase:\n  url: \"http://svc/users/{User-Id}\"\n", nil, 9, "not an identifier name"},
			{"UndeclaredIdentifier", "erase:\n  method: DELETE\n  url: \"http://svc/users/{phone}\"\n", nil, 10, "{phone} is not a declared identifier"},
			{"UndeclaredIdentifierInBody", "erase:\n  method: POST\n  url: \"http://svc/erase\"\n  body: '{{\"p\": \"{phone}\"}}'\n", nil, 11, "{phone} is not a declared identifier"},
			{"PlaceholderInHost", "erase:\n  url: \"http://{user_id}.svc/users\"\n", nil, 9, "in its scheme or host"},
			{"PlaceholderInFragment", "erase:\n  url: \"http://svc/users#{user_id}\"\n", nil, 9, "in its fragment"},
			{"NotHTTP", "erase:\n  url: \"ftp://svc/users/{user_id}\"\n", nil, 9, "http:// or https://"},
			{"RelativeURL", "erase:\n  url: \"/users/{user_id}\"\n", nil, 9, "http:// or https://"},
			{"NoPlaceholder", "erase:\n  url: \"http://svc/users/all\"\n", nil, 9, "must contain an identifier placeholder"},
			{"UnknownMethod", "erase:\n  method: PURGE\n  url: \"http://svc/users/{user_id}\"\n", nil, 9, `method "PURGE"`},
			{"BodyOnGet", "erase:\n  method: GET\n  url: \"http://svc/users/{user_id}\"\n  body: x\n", nil, 11, "cannot have a body"},
			{"BodyOfUnknownType", "erase:\n  method: POST\n  url: \"http://svc/erase\"\n  body: \"id={user_id}\"\n  headers: { Content-Type: text/plain }\n", nil, 11, "cannot escape identifiers"},
			{"HeaderValueWithLineBreak", "erase: { url: \"http://svc/users/{user_id}\" }\nheaders:\n  X-Token: \"a\\r\\nX-Evil: 1\"\n", nil, 10, "line break"},
			{"HeaderName", "erase: { url: \"http://svc/users/{user_id}\" }\nheaders:\n  \"Bad Name\": x\n", nil, 10, "not a valid header name"},
			{"NegativeTimeout", "erase: { url: \"http://svc/users/{user_id}\" }\ntimeout: -1s\n", nil, 9, "timeout must be"},
			{"TimeoutNotDuration", "erase: { url: \"http://svc/users/{user_id}\" }\ntimeout: soon\n", nil, 9, "expected a duration"},
			{"VerifyNeedsAnIdentifierEraseDoesNotUse", "erase: { url: \"http://svc/users/{user_id}\" }\nverify:\n  url: \"http://svc/emails/{email}\"\n", nil, 10, "{email} is not used by erase"},
			{"GoneNotAStatus", "erase: { url: \"http://svc/users/{user_id}\" }\nverify:\n  url: \"http://svc/users/{user_id}\"\n  gone: [404, 1000]\n", nil, 11, "1000 is not an HTTP status"},
			{"LookupWithoutProvides", "erase: { url: \"http://svc/users/{user_id}\" }\nlookup:\n  url: \"http://svc/users?email={email}\"\n", nil, 10, "provides no identifier"},
			{"LookupFieldNotAPath", "erase: { url: \"http://svc/users/{user_id}\" }\nlookup:\n  url: \"http://svc/users?email={email}\"\n  field: \"data..x\"\n", []string{"provides: [{identifier: user_id, field: id}]"}, 11, "empty path segment"},
			{"ProvidesWithoutLookup", "erase: { url: \"http://svc/users/{user_id}\" }\n", []string{"provides: [{identifier: email, field: email}]"}, 8, "no lookup"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := registry.Parse("erasure.yaml", []byte(registryYAML(tc.block, tc.extra...)), func(string) (string, bool) { return "", false })
				var le *registry.LineError
				if !errors.As(err, &le) {
					t.Fatalf("Parse error = %v, want a line error", err)
				}
				for _, e := range err.(registry.Errors) {
					if strings.Contains(e.Msg, tc.want) && (tc.line == 0 || e.Line == tc.line) {
						return
					}
				}
				t.Errorf("no error on line %d containing %q in:\n%v", tc.line, tc.want, err)
			})
		}
	})

	t.Run("SetsKeysToTheIdentifiersOfEraseAndLookup", func(t *testing.T) {
		block := "erase:\n  method: POST\n  url: \"http://svc/accounts/{account_id}/erase\"\n  body: '{{\"user\": \"{user_id}\"}}'\n" +
			"lookup: { url: \"http://svc/users?email={email}\" }\n"
		cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML(block, "provides: [{identifier: user_id, field: id}]")), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.Dataset("profile")
		defer d.Conn.Close()
		if !slices.Equal(d.Keys, []string{"account_id", "user_id", "email"}) {
			t.Errorf("Keys = %q, want [account_id user_id email]", d.Keys)
		}
		if d.Method != erasure.MethodRealtime {
			t.Errorf("Method = %q, want realtime", d.Method)
		}
		if _, ok := d.Conn.(erasure.Resolver); !ok {
			t.Error("connector with lookup does not implement erasure.Resolver")
		}
	})

	t.Run("HeaderValuesStayOutOfMessages", func(t *testing.T) {
		block := "erase: { url: \"http://svc/users/{user_id}\" }\nheaders:\n  Authorization: \"Bearer s3cr3t\\nX: y\"\n"
		_, err := registry.Parse("erasure.yaml", []byte(registryYAML(block)), func(string) (string, bool) { return "", false })
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %v quotes the header value", err)
		}
	})
}
