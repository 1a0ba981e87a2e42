package registry_test

import (
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"erasure/registry"
)

func TestParse_DRP(t *testing.T) {
	cfg, err := parseFile(t, "testdata/drp.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	d := cfg.DRP
	if d == nil {
		t.Fatal("no drp section")
	}
	if d.BusinessID != "ACME_CORP" || d.Deadline != 30*24*time.Hour || d.ClockSkew != 30*time.Second ||
		d.MaxMessageLifetime != 15*time.Minute || !d.AllowHTTPCallbacks {
		t.Errorf("drp = %+v", d)
	}
	key := func(b64 string) []byte {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := []registry.DRPAgent{
		{ID: "CR_AGENT", VerifyKey: key("d+q2R7p2F/0vv3UHmonqaIxJYHpD8KgOcbaFeiZmCQs="),
			Identifiers: map[string]string{"email": "email", "phone_number": "phone"}, Unverified: []string{"phone_number"}, Line: 13},
		{ID: "other-agent", VerifyKey: key("hLthrOcRSkr/PvXlW4hU0VQVi9YG+wTO6Ly9tYgoxGE="),
			Identifiers: map[string]string{"email": "email"}, Line: 17},
	}
	if len(d.Agents) != len(want) {
		t.Fatalf("%d agents, want %d", len(d.Agents), len(want))
	}
	for i := range want {
		got := d.Agents[i]
		if string(got.VerifyKey) != string(want[i].VerifyKey) {
			t.Errorf("agent %d: verify key %x, want %x", i, got.VerifyKey, want[i].VerifyKey)
		}
		got.VerifyKey, want[i].VerifyKey = nil, nil
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("agent %d = %+v\nwant %+v", i, got, want[i])
		}
	}
}

func TestParse_DRPDefaults(t *testing.T) {
	cfg := mustParse(t, "drp.yaml", minimal+`drp:
  business_id: ACME
  agents: [ { id: a, verify_key: "d+q2R7p2F/0vv3UHmonqaIxJYHpD8KgOcbaFeiZmCQs=", identifiers: { uid: user_id } } ]
`)
	d := cfg.DRP
	if registry.DefaultDRPDeadline != 45*24*time.Hour || d.Deadline != registry.DefaultDRPDeadline || d.ClockSkew != time.Minute ||
		d.MaxMessageLifetime != time.Hour || d.AllowHTTPCallbacks {
		t.Errorf("drp = %+v", d)
	}
	if got := mustParse(t, "minimal.yaml", minimal); got.DRP != nil {
		t.Errorf("a file without drp has drp %+v", got.DRP)
	}
}
