package natsconn_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/connector/nats"
	"erasure/registry"
)

func parse(src string) (*registry.Config, error) {
	return registry.Parse("erasure.yaml", []byte(src), func(string) (string, bool) { return "", false })
}

const head = `version: 1
identifiers: [user_id, email]
defaults: { ack_timeout: 2h }
datasets:
  - name: notifications
    owner: messaging-team
    connector: nats
`

func TestDriver_Build(t *testing.T) {
	t.Run("BlockSetsKeysSubjectAndAckTimeout", func(t *testing.T) {
		cfg, err := parse(head + `    nats: { subject: erasure.notifications.v2, ack_timeout: 1h, identifiers: [user_id] }
`)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		d := cfg.Dataset("notifications")
		c, ok := d.Conn.(*natsconn.Connector)
		if !ok {
			t.Fatalf("connector is a %T", d.Conn)
		}
		if d.Method != erasure.MethodAsync || d.Policy.AckTimeout != time.Hour || c.Subject() != "erasure.notifications.v2" ||
			len(d.Keys) != 1 || d.Keys[0] != "user_id" {
			t.Errorf("dataset method %s, ack timeout %s, subject %s, keys %v", d.Method, d.Policy.AckTimeout, c.Subject(), d.Keys)
		}
	})
	t.Run("DefaultsSubjectAndAckTimeout", func(t *testing.T) {
		cfg, err := parse(head + `    nats: { identifiers: [email, user_id] }
`)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		d := cfg.Dataset("notifications")
		if s := d.Conn.(*natsconn.Connector).Subject(); s != "erasure.notifications" || d.Policy.AckTimeout != 2*time.Hour {
			t.Errorf("subject %s, ack timeout %s; want erasure.notifications, 2h", s, d.Policy.AckTimeout)
		}
	})
	for _, tc := range []struct{ name, block, want string }{
		{"Wildcard", `{ subject: erasure.*, identifiers: [user_id] }`, "wildcard"},
		{"TailWildcard", `{ subject: "erasure.>", identifiers: [user_id] }`, "wildcard"},
		{"EmptyToken", `{ subject: erasure..x, identifiers: [user_id] }`, "empty token"},
		{"System", `{ subject: $JS.API.STREAM.DELETE.ERASURE, identifiers: [user_id] }`, "system subject"},
		{"AckSubjects", `{ subject: erasure.ack.notifications, identifiers: [user_id] }`, "where acknowledgements go"},
		{"NoIdentifiers", `{ subject: erasure.n }`, "nats.identifiers is required"},
		{"Undeclared", `{ identifiers: [phone] }`, `"phone" is not a declared identifier`},
		{"Twice", `{ identifiers: [user_id, user_id] }`, "listed twice"},
		{"BadAckTimeout", `{ identifiers: [user_id], ack_timeout: soon }`, "not a duration"},
		{"ShortAckTimeout", `{ identifiers: [user_id], ack_timeout: 10ms }`, "shorter than a second"},
		{"UnknownKey", `{ identifiers: [user_id], subjet: erasure.n }`, `unknown key "subjet"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(head + "    nats: " + tc.block + "\n")
			var errs registry.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want registry.Errors", err)
			}
			lines := strings.Join(errs.Lines(), "\n")
			if !strings.Contains(lines, "erasure.yaml:8:") || !strings.Contains(lines, tc.want) {
				t.Errorf("errors\n%s\nwant one at erasure.yaml:8 saying %q", lines, tc.want)
			}
		})
	}
	t.Run("SubjectUnderTheConfiguredAckPrefix", func(t *testing.T) {
		src := strings.Replace(head, "datasets:", "nats: { ack_prefix: prod.ack, consumer: prod-acks }\ndatasets:", 1) + "    nats: { subject: prod.ack.notifications, identifiers: [user_id] }\n"
		_, err := parse(src)
		if err == nil || !strings.Contains(err.Error(), "is under prod.ack, where acknowledgements go") {
			t.Errorf("Parse = %v, want an error about the ack prefix", err)
		}
		cfg, err := parse(strings.Replace(src, "subject: prod.ack.notifications", "subject: erasure.ack.notifications", 1))
		if err != nil {
			t.Errorf("Parse = %v", err)
		} else if cfg.NATS.AckPrefix != "prod.ack" || cfg.NATS.Consumer != "prod-acks" {
			t.Errorf("ack prefix %q, consumer %q", cfg.NATS.AckPrefix, cfg.NATS.Consumer)
		}
		for _, bad := range []string{"ack_prefix: \"prod..ack\"", "ack_prefix: \"$SYS\"", "consumer: \"a.b\""} {
			if _, err := parse(strings.Replace(head, "datasets:", "nats: { "+bad+" }\ndatasets:", 1) + "    nats: { identifiers: [user_id] }\n"); err == nil {
				t.Errorf("nats: { %s } accepted", bad)
			}
		}
	})
	t.Run("NotAsync", func(t *testing.T) {
		_, err := parse(strings.Replace(head, "connector: nats", "connector: nats\n    method: realtime", 1) + "    nats: { identifiers: [user_id] }\n")
		if err == nil || !strings.Contains(err.Error(), "async") {
			t.Errorf("Parse = %v, want an error about the method", err)
		}
	})
}
