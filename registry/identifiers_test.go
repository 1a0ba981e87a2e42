package registry_test

import (
	"reflect"
	"strings"
	"testing"

	"erasure"
)

func TestParse_IdentifierTypes(t *testing.T) {
	cfg, err := parseFile(t, "testdata/identifier_types.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := cfg.Identifiers, []string{"user_id", "email", "phone", "ip", "device_id"}; !reflect.DeepEqual(got, want) {
		t.Errorf("identifiers = %v, want %v", got, want)
	}
	userNames, _ := erasure.DefaultScan("user_id")
	ipNames, ipValues := erasure.DefaultScan("ip")
	phoneNames, _ := erasure.DefaultScan("phone")
	want := []erasure.IdentifierType{
		{Name: "user_id", Normalize: erasure.NormalizeNone, ScanNames: userNames},
		{Name: "email", Normalize: erasure.NormalizeLower, Trim: true, ScanNames: []string{"e?mail", "contact"}, ScanValues: `^[^@\s]+@[^@\s]+\.[a-z]{2,}$`},
		// scan.names left out: the built-in names of a phone type.
		{Name: "phone", Normalize: erasure.NormalizeDigits, ScanNames: phoneNames, ScanValues: `^\+?[0-9 ().-]{7,20}$`},
		{Name: "ip", Normalize: erasure.NormalizeNone, ScanNames: ipNames, ScanValues: ipValues},
		// An empty list and an empty string turn scanning off.
		{Name: "device_id", Normalize: erasure.NormalizeNone},
	}
	if !reflect.DeepEqual(cfg.IdentifierTypes, want) {
		t.Errorf("identifier types =\n%+v\nwant\n%+v", cfg.IdentifierTypes, want)
	}
	for _, typ := range cfg.IdentifierTypes {
		if err := typ.Validate(); err != nil {
			t.Errorf("%s: %v", typ.Name, err)
		}
	}
	email, ok := cfg.IdentifierType("email")
	if !ok {
		t.Fatal("IdentifierType(email) not found")
	}
	if got, err := email.Canonical(" Ana@Example.COM "); err != nil || got != "ana@example.com" {
		t.Errorf("Canonical = %q, %v", got, err)
	}
	if _, ok := cfg.IdentifierType("fax"); ok {
		t.Error("IdentifierType(fax) found")
	}
}

func TestParse_IdentifierTypesPlainListKeepsDefaults(t *testing.T) {
	cfg := mustParse(t, "minimal.yaml", minimal)
	names, values := erasure.DefaultScan("user_id")
	want := []erasure.IdentifierType{{Name: "user_id", Normalize: erasure.NormalizeNone, ScanNames: names, ScanValues: values}}
	if !reflect.DeepEqual(cfg.IdentifierTypes, want) {
		t.Errorf("identifier types = %+v, want %+v", cfg.IdentifierTypes, want)
	}
}

func TestParse_IdentifierTypesFromEnvironment(t *testing.T) {
	testEnv["EMAIL_PATTERN"] = `^[^@]+@example\.com$`
	t.Cleanup(func() { delete(testEnv, "EMAIL_PATTERN") })
	src := strings.Replace(minimal, "identifiers: [user_id]", "identifiers: [user_id, { name: email, scan: { values: \"${EMAIL_PATTERN}\" } }]", 1)
	cfg := mustParse(t, "x.yaml", src)
	if got := cfg.IdentifierTypes[1].ScanValues; got != `^[^@]+@example\.com$` {
		t.Errorf("values = %q", got)
	}
}
