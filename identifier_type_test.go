package erasure_test

import (
	"regexp"
	"strings"
	"testing"

	"erasure"
)

func TestIdentifierType_Canonical(t *testing.T) {
	email := erasure.IdentifierType{Name: "email", Normalize: erasure.NormalizeLower, Trim: true}
	phone := erasure.IdentifierType{Name: "phone", Normalize: erasure.NormalizeDigits}
	plain := erasure.IdentifierType{Name: "user_id"}
	tests := []struct {
		name  string
		typ   erasure.IdentifierType
		in    string
		want  string
		valid bool
	}{
		{"LowerAndTrim", email, "  Ana.Lopez@Example.COM\t", "ana.lopez@example.com", true},
		{"UnicodeLower", email, "ÉMILE@EXAMPLE.FR", "émile@example.fr", true},
		{"TrimOnlyWhenAsked", plain, " 42 ", " 42 ", true},
		{"NoneKeepsCase", plain, "AbC", "AbC", true},
		{"DigitsKeepLeadingPlus", phone, " +44 (20) 7946-0000", "+442079460000", true},
		{"DigitsWithoutPlus", phone, "020 7946 0000", "02079460000", true},
		{"DigitsPlusOnlyAtStart", phone, "0 + 1", "01", true},
		{"InvalidUTF8", email, "a\xffb@example.com", "", false},
		{"EmptyAfterTrim", email, " \t ", "", false},
		{"NoDigits", phone, "call me", "", false},
		{"OnlyPlus", phone, "+", "", false},
		{"UnknownNormalize", erasure.IdentifierType{Name: "x", Normalize: "upper"}, "a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.typ.Canonical(tt.in)
			if !tt.valid {
				if erasure.ErrorCode(err) != erasure.EINVALID {
					t.Fatalf("Canonical(%q) = %q, %v; want an EINVALID error", tt.in, got, err)
				}
				if len(strings.TrimSpace(tt.in)) > 3 && strings.Contains(err.Error(), tt.in) {
					t.Errorf("the error quotes the value: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Canonical(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			again, err := tt.typ.Canonical(got)
			if err != nil || again != got {
				t.Errorf("Canonical is not idempotent: %q → %q, %v", got, again, err)
			}
		})
	}
}

func TestIdentifierType_Validate(t *testing.T) {
	for _, ok := range []erasure.IdentifierType{
		{Name: "email"},
		{Name: "email", Normalize: erasure.NormalizeLower, ScanNames: []string{"e?mail"}, ScanValues: erasure.ScanEmailValues},
		erasure.DefaultIdentifierType("phone"),
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []erasure.IdentifierType{
		{Name: "Email"},
		{Name: "email", Normalize: "upper"},
		{Name: "email", ScanNames: []string{"("}},
		{Name: "email", ScanValues: "[a-"},
	} {
		if erasure.ErrorCode(bad.Validate()) != erasure.EINVALID {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestDefaultScan checks the built-in patterns against values and names they must and must
// not recognize: a scan that takes every number for a phone number is useless.
func TestDefaultScan(t *testing.T) {
	tests := []struct {
		typ            string
		names, notName []string
		values, not    []string
	}{
		{"email", []string{"email", "Email_Address", "contact_e_mail", "MAIL"}, []string{"name", "domain"},
			[]string{"a@example.com", "Ana.Lopez+tag@sub.example.co.uk"}, []string{"a@b", "not an email@example.com", "@example.com", "example.com"}},
		{"phone", []string{"phone", "contact_phone", "mobile", "tel", "MSISDN"}, []string{"title", "hotel"},
			[]string{"+44 20 7946 0000", "+4915112345678", "(555) 123-4567", "555-123-4567", "020 7946 0000"},
			[]string{"12345678", "2024-01-15", "192.168.10.20", "12:30:00", "1.5", "42", "978-3-16-148410-0"}},
		{"ip", []string{"ip", "ip_address", "client_ip", "remote_addr_ip", "IpAddr"}, []string{"zip", "ship_to", "tip"},
			[]string{"10.1.2.3", "255.255.255.0", "::1", "fe80::1", "2001:db8::8a2e:370:7334", "2001:0db8:0000:0000:0000:ff00:0042:8329"},
			[]string{"256.1.1.1", "1.2.3", "12:30:00", "10.1.2.3.4", "a@example.com"}},
		{"user_id", []string{"user_id", "userid", "UserId", "uid", "user", "users"}, []string{"id", "user_name", "usage", "product_id"}, nil, nil},
		{"account_id", []string{"account_id", "accountid", "account"}, []string{"id", "user_id"}, nil, nil},
		{"record_no", []string{"record_no", "recordno"}, []string{"record"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			it := erasure.DefaultIdentifierType(tt.typ)
			if err := it.Validate(); err != nil {
				t.Fatal(err)
			}
			if it.Normalize != erasure.NormalizeNone || it.Trim {
				t.Errorf("defaults normalize: %+v", it)
			}
			nameMatch := func(n string) bool {
				for _, p := range it.ScanNames {
					if regexp.MustCompile("(?i)" + p).MatchString(n) {
						return true
					}
				}
				return false
			}
			for _, n := range tt.names {
				if !nameMatch(n) {
					t.Errorf("name %q not recognized by %q", n, it.ScanNames)
				}
			}
			for _, n := range tt.notName {
				if nameMatch(n) {
					t.Errorf("name %q recognized by %q", n, it.ScanNames)
				}
			}
			if len(tt.values) == 0 && it.ScanValues != "" {
				t.Errorf("%s has a value pattern %q: ids look like any number", tt.typ, it.ScanValues)
			}
			if it.ScanValues == "" {
				return
			}
			re := regexp.MustCompile(it.ScanValues)
			for _, v := range tt.values {
				if !re.MatchString(v) {
					t.Errorf("value %q not recognized", v)
				}
			}
			for _, v := range tt.not {
				if re.MatchString(v) {
					t.Errorf("value %q recognized", v)
				}
			}
		})
	}
}
