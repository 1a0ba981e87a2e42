package registry_test

import (
	"fmt"

	"erasure/registry"
)

func ExampleParse() {
	env := map[string]string{"PROFILE_HOST": "profile.internal"}
	cfg, err := registry.Parse("erasure.yaml", []byte(`version: 1
identifiers: [user_id, email]
defaults: { deadline: 30d }
datasets:
  - name: profile-service
    owner: profile-team
    connector: fake          # a test connector; real ones are http, sql, redis, nats, files, records
    max_attempts: 5
    fake: { url: "http://${PROFILE_HOST}/users/{user_id}" }
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		fmt.Println(err)
		return
	}
	ds := cfg.Dataset("profile-service")
	fmt.Println(ds.Method, ds.Keys, ds.Policy.Deadline, ds.Policy.MaxAttempts, ds.Policy.Backoff.Max)
	fmt.Println(ds.Conn.(*fakeConn).Block.URL)
	// Output:
	// realtime [user_id] 720h0m0s 5 1h0m0s
	// http://profile.internal/users/{user_id}
}

func ExampleErrors() {
	_, err := registry.Parse("erasure.yaml", []byte(`version: 1
identifiers: [user_id]
datasets:
  - name: profile-service
    owner: profile-team
    connector: fake
    sweep: { every: 1h }
    fake: { url: "http://${PROFILE_HOST}/users/{email}" }
    after: [accounts]
`), func(string) (string, bool) { return "", false })
	fmt.Println(err)
	// Output:
	// 4 errors:
	// erasure.yaml:7: dataset profile-service: sweep only applies to offline datasets (this one is realtime)
	// erasure.yaml:8: environment variable PROFILE_HOST is not set
	// erasure.yaml:8: dataset profile-service: the fake block uses identifier email, which identifiers does not declare
	// erasure.yaml:9: dataset profile-service: after: no dataset is named "accounts"
}
