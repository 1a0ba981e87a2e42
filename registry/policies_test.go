package registry_test

import (
	"context"
	"testing"
	"time"

	"erasure"
	"erasure/registry"
)

// retainer is a fake connector that can apply a retention policy.
type retainer struct{ fakeConn }

func (*retainer) Expire(context.Context, time.Time, func(int64) error) (erasure.RetentionResult, error) {
	return erasure.RetentionResult{}, nil
}

type retainDriver struct{}

func (retainDriver) Method() erasure.Method { return erasure.MethodRealtime }
func (retainDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	return &retainer{}
}

func init() { registry.Register("fakeretain", retainDriver{}) }

func TestParse_Policies(t *testing.T) {
	cfg := mustParse(t, "p.yaml", `version: 1
identifiers: [user_id, email]
defaults: { grace: 72h }
suppression: { types: [email], key: "${ERASURE_AUDIT_KEY}" }
datasets:
  - name: events
    owner: team
    connector: fakeretain
    fakeretain: {}
    retention: { older_than: 400d, column: created_at }
  - name: profiles
    owner: team
    connector: fake
    fake: { keys: ["{user_id}"] }
    replay: { escrow: 180d }
`)
	if cfg.Defaults.Grace != 72*time.Hour {
		t.Errorf("grace %s", cfg.Defaults.Grace)
	}
	ev := cfg.Dataset("events")
	if ev.Retention == nil || ev.Retention.OlderThan != 400*24*time.Hour || ev.Retention.Column != "created_at" || ev.Retention.Every != registry.DefaultRetentionEvery || ev.Retention.Format != "auto" {
		t.Errorf("retention %+v", ev.Retention)
	}
	if ev.Policy.Grace != 0 {
		t.Errorf("a dataset's policy carries the request grace %s", ev.Policy.Grace)
	}
	if p := cfg.Dataset("profiles"); p.Escrow != 180*24*time.Hour || p.Retention != nil {
		t.Errorf("profiles escrow %s retention %+v", p.Escrow, p.Retention)
	}
	if !cfg.Suppression.On() || len(cfg.Suppression.Types) != 1 || cfg.Suppression.Key == "" {
		t.Errorf("suppression %+v", cfg.Suppression)
	}
	off := mustParse(t, "p.yaml", "version: 1\nidentifiers: [user_id]\nsuppression: { enabled: false }\ndefaults: { grace: 0 }\ndatasets: []\n")
	if off.Suppression.On() || off.Defaults.Grace != 0 {
		t.Errorf("suppression %+v grace %s", off.Suppression, off.Defaults.Grace)
	}
	none := mustParse(t, "p.yaml", "version: 1\nidentifiers: [user_id]\nsuppression: { types: [] }\ndatasets: []\n")
	if none.Suppression.Types == nil || len(none.Suppression.Types) != 0 {
		t.Errorf("types: [] should suppress no type: %#v", none.Suppression.Types)
	}
}
