package erasure

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalize says how the values of an identifier type are put in canonical form before they
// are compared or hashed.
type Normalize string

const (
	// NormalizeNone keeps values as they are (the default).
	NormalizeNone Normalize = "none"
	// NormalizeLower maps values to Unicode lower case (strings.ToLower: simple case mapping,
	// no locale), for types compared without case such as e-mail addresses.
	NormalizeLower Normalize = "lower"
	// NormalizeDigits keeps only the decimal digits 0-9 of a value, and a leading "+", for
	// types written with free punctuation such as phone numbers ("+44 (20) 7946-0000" →
	// "+442079460000").
	NormalizeDigits Normalize = "digits"
)

// Normalizations lists the known normalizations, for messages.
var Normalizations = []Normalize{NormalizeNone, NormalizeLower, NormalizeDigits}

// Valid reports whether n is a known normalization; the empty value means none.
func (n Normalize) Valid() bool {
	return n == "" || n == NormalizeNone || n == NormalizeLower || n == NormalizeDigits
}

// IdentifierType is an identifier type declared in the registry with how its values are
// compared and where a scan of the estate recognizes them.
type IdentifierType struct {
	// Name is the type, as identifiers carry it ("email").
	Name string `json:"name"`
	// Normalize is applied by Canonical after Trim ("" means none).
	Normalize Normalize `json:"normalize"`
	// Trim strips white space (Unicode) around values.
	Trim bool `json:"trim"`
	// ScanNames are regular expressions (RE2) matched without case, anywhere in the name, to
	// column, field and key names that may hold values of this type. Empty: none.
	ScanNames []string `json:"scan_names,omitempty"`
	// ScanValues is one regular expression (RE2, as written: add (?i) for no case) that values
	// of this type match. Empty: values are not recognized.
	ScanValues string `json:"scan_values,omitempty"`
}

// Validate returns an EINVALID error when the name is malformed, the normalization unknown or
// a scan pattern not a valid regular expression.
func (t IdentifierType) Validate() error {
	if !ValidIdentifierType(t.Name) {
		return Errorf(EINVALID, "identifier type %q is not valid: use lower case letters, digits and _", truncate(t.Name, 64))
	}
	if !t.Normalize.Valid() {
		return Errorf(EINVALID, "identifier type %s: normalize %q is not known (none, lower, digits)", t.Name, truncate(string(t.Normalize), 40))
	}
	for _, p := range t.ScanNames {
		if _, err := regexp.Compile("(?i)" + p); err != nil {
			return Errorf(EINVALID, "identifier type %s: scan name pattern %q: %v", t.Name, truncate(p, 64), err)
		}
	}
	if t.ScanValues != "" {
		if _, err := regexp.Compile(t.ScanValues); err != nil {
			return Errorf(EINVALID, "identifier type %s: scan value pattern %q: %v", t.Name, truncate(t.ScanValues, 64), err)
		}
	}
	return nil
}

// Canonical returns value in the type's canonical form: trimmed when Trim is set, then
// normalized. It returns an EINVALID error when value is not valid UTF-8 or nothing is left of
// it. The error never quotes the value.
func (t IdentifierType) Canonical(value string) (string, error) {
	if !utf8.ValidString(value) {
		return "", Errorf(EINVALID, "identifier %s is not valid UTF-8", t.Name)
	}
	v := value
	if t.Trim {
		v = strings.TrimSpace(v)
	}
	switch t.Normalize {
	case NormalizeLower:
		v = strings.ToLower(v)
	case NormalizeDigits:
		v = digitsOf(v)
	case "", NormalizeNone:
	default:
		return "", Errorf(EINVALID, "identifier type %s: normalize %q is not known (none, lower, digits)", t.Name, truncate(string(t.Normalize), 40))
	}
	if v == "" || v == "+" {
		return "", Errorf(EINVALID, "identifier %s has an empty value once normalized", t.Name)
	}
	return v, nil
}

// digitsOf keeps the ASCII digits of s and a "+" before the first of them, when the first
// character that is not white space is that "+".
func digitsOf(s string) string {
	var b strings.Builder
	if t := strings.TrimLeftFunc(s, unicode.IsSpace); strings.HasPrefix(t, "+") {
		b.WriteByte('+')
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Built-in scan patterns, used for a declared type whose scan block leaves them out.
const (
	// ScanEmailValues matches an e-mail address.
	ScanEmailValues = `(?i)^[^@\s]+@[^@\s]+\.[a-z]{2,}$`
	// ScanPhoneValues matches a phone number written as phone numbers are: an international
	// "+" then digits and punctuation, or groups of digits separated by spaces or dashes, the
	// last of at least 3 digits ("(555) 123-4567", "020 7946 0000"). A bare run of digits (an
	// id, an amount), a date (2024-01-15) or a dotted address does not match.
	ScanPhoneValues = `^(\+[0-9][0-9 ().-]{5,22}[0-9]|\(?[0-9]{1,5}\)?([ -][0-9]{2,5}){1,3}[ -][0-9]{3,5})$`
	// ScanIPValues matches an IPv4 address, or an IPv6 address written in full or with "::"
	// (a time such as 12:30:00 does not match).
	ScanIPValues = `(?i)^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$` +
		`|^([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$|^(([0-9a-f]{1,4}:){1,6}|:)(:[0-9a-f]{1,4}){1,6}$|^([0-9a-f]{1,4}:){1,7}:$|^::$`
)

// DefaultIdentifierType returns the declaration of type name when the registry says nothing
// but its name: no normalization, no trimming, and built-in scan patterns chosen by the name.
//
//   - email, e_mail, email_address, …: names e?_?mail, values ScanEmailValues;
//   - phone, phone_number, mobile, msisdn, …: names phone, mobile, msisdn, ^tel(ephone)?$,
//     values ScanPhoneValues;
//   - ip, ip_address, client_ip, …: names ^ip$, ip_?addr, _ip$, ^ip_, values ScanIPValues;
//   - X_id (user_id, account_id, …): names ^X_?id$ and ^Xs?$ (a key segment "user:" before a
//     number), and ^uid$ for user_id; no value pattern (ids look like any number);
//   - any other name: the name itself, with its underscores optional.
func DefaultIdentifierType(name string) IdentifierType {
	t := IdentifierType{Name: name, Normalize: NormalizeNone}
	t.ScanNames, t.ScanValues = DefaultScan(name)
	return t
}

// DefaultScan returns the built-in scan patterns of a type called name (see
// DefaultIdentifierType).
func DefaultScan(name string) (names []string, values string) {
	switch {
	case strings.Contains(name, "email") || name == "mail" || name == "e_mail":
		return []string{`e?_?mail`}, ScanEmailValues
	case strings.Contains(name, "phone") || name == "mobile" || name == "msisdn" || name == "tel" || name == "telephone":
		return []string{`phone`, `mobile`, `msisdn`, `^tel(ephone)?$`}, ScanPhoneValues
	case name == "ip" || strings.HasPrefix(name, "ip_") || strings.HasSuffix(name, "_ip"):
		return []string{`^ip$`, `ip_?addr`, `_ip$`, `^ip_`}, ScanIPValues
	case strings.HasSuffix(name, "_id") && len(name) > 3:
		base := regexp.QuoteMeta(strings.TrimSuffix(name, "_id"))
		base = strings.ReplaceAll(base, "_", "_?")
		names = []string{`^` + base + `_?id$`, `^` + base + `s?$`}
		if name == "user_id" {
			names = append(names, `^uid$`)
		}
		return names, ""
	}
	return []string{`^` + strings.ReplaceAll(regexp.QuoteMeta(name), "_", "_?") + `$`}, ""
}
