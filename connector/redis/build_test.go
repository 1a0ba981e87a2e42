package redisconn_test

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
			line  int
			want  string
		}{
			{"UnknownKey", "url: redis://127.0.0.1:6379/0\nkeys: [\"t:{user_id}\"]\npattern: x\n", 10, `unknown key "pattern"`},
			{"UnknownKeyInMember", "url: redis://127.0.0.1:6379/0\nmembers:\n  - { key: f, member: \"{user_id}\", kind: set }\n", 10, `unknown key "kind"`},
			{"MissingURL", "keys: [\"t:{user_id}\"]\n", 8, "url is required"},
			{"BadScheme", "url: http://127.0.0.1:6379/0\nkeys: [\"t:{user_id}\"]\n", 8, `scheme "http"`},
			{"BadDatabase", "url: redis://127.0.0.1:6379/nine\nkeys: [\"t:{user_id}\"]\n", 8, "database"},
			{"NothingToErase", "url: redis://127.0.0.1:6379/0\n", 8, "nothing to erase"},
			{"UnclosedPlaceholder", "url: redis://127.0.0.1:6379/0\nkeys:\n  - \"t:{user_id}\"\n  - \"s:{user_id\"\n", 11, "unclosed {"},
			{"UndeclaredIdentifier", "url: redis://127.0.0.1:6379/0\nkeys:\n  - \"t:{phone}\"\n", 10, "{phone} is not a declared identifier"},
			{"UndeclaredIdentifierInField", "url: redis://127.0.0.1:6379/0\nhash_fields:\n  - key: profiles\n    field: \"{phone}\"\n", 11, "{phone} is not a declared identifier"},
			{"KeyWithoutPlaceholder", "url: redis://127.0.0.1:6379/0\nkeys: [\"timeline:all\"]\n", 9, "no identifier placeholder"},
			{"WildcardTouchingPlaceholder", "url: redis://127.0.0.1:6379/0\nkeys: [\"session:{user_id}*\"]\n", 9, "wildcard right next to {user_id}"},
			{"WildcardBeforePlaceholder", "url: redis://127.0.0.1:6379/0\nkeys: [\"session:*{user_id}:x\"]\n", 9, "wildcard right next to {user_id}"},
			{"GlobInHashKey", "url: redis://127.0.0.1:6379/0\nhash_fields: [{ key: \"profiles:*\", field: \"{user_id}\" }]\n", 9, "only supported in keys"},
			{"HashFieldWithoutPlaceholder", "url: redis://127.0.0.1:6379/0\nhash_fields: [{ key: profiles, field: name }]\n", 9, "neither key nor field"},
			{"HashFieldMissingField", "url: redis://127.0.0.1:6379/0\nhash_fields: [{ key: \"p:{user_id}\" }]\n", 9, "key and field are both required"},
			{"MemberType", "url: redis://127.0.0.1:6379/0\nmembers:\n  - key: followers\n    member: \"{user_id}\"\n    type: list\n", 12, "type must be set or zset"},
			{"ScanCount", "url: redis://127.0.0.1:6379/0\nkeys: [\"t:{user_id}\"]\nscan_count: -5\n", 10, "scan_count must be"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := registry.Parse("erasure.yaml", []byte(registryYAML(tc.block)), func(string) (string, bool) { return "", false })
				var le *registry.LineError
				if !errors.As(err, &le) {
					t.Fatalf("Parse error = %v, want a line error", err)
				}
				for _, e := range err.(registry.Errors) {
					if strings.Contains(e.Msg, tc.want) && e.Line == tc.line {
						return
					}
				}
				t.Errorf("no error on line %d containing %q in:\n%v", tc.line, tc.want, err)
			})
		}
	})

	t.Run("URLErrorsDoNotQuoteThePassword", func(t *testing.T) {
		for _, u := range []string{"redis://:hunter2@127.0.0.1:6379/nine", "redis://u:hunter2@127.0.0.1:6379/0?dial_timeout=hunter2", "redis://u:hunter2@[::1/0"} {
			_, err := registry.Parse("erasure.yaml", []byte(registryYAML("url: \""+u+"\"\nkeys: [\"t:{user_id}\"]\n")), func(string) (string, bool) { return "", false })
			if err == nil || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: error %v quotes the password", u, err)
			}
		}
	})

	t.Run("SetsKeysAndPerformsNoIO", func(t *testing.T) {
		block := "url: redis://127.0.0.1:1/3\nkeys: [\"t:{user_id}\", \"s:{user_id}:*\"]\nhash_fields: [{ key: \"e:{email}\", field: f }]\n"
		cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML(block)), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.Dataset("cache")
		defer d.Conn.Close()
		if !slices.Equal(d.Keys, []string{"user_id", "email"}) {
			t.Errorf("Keys = %q, want [user_id email]", d.Keys)
		}
		if d.Method != erasure.MethodRealtime {
			t.Errorf("Method = %q, want realtime", d.Method)
		}
	})
}
