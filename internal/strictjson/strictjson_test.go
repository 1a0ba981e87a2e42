package strictjson_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/internal/strictjson"
)

type inner struct {
	Name string `json:"name"`
}

type base struct {
	Promoted string `json:"promoted"`
}

type doc struct {
	base
	Subject  map[string]string `json:"subject"`
	Reason   string            `json:"reason"`
	Inner    *inner            `json:"inner"`
	List     []inner           `json:"list"`
	Raw      json.RawMessage   `json:"raw"`
	When     time.Time         `json:"when"`
	Ignored  string            `json:"-"`
	Untagged int
}

func TestUnmarshal_Accepts(t *testing.T) {
	for name, in := range map[string]string{
		"Plain":              `{"subject":{"user_id":"42"},"reason":"user_request"}`,
		"Nested":             `{"inner":{"name":"x"},"list":[{"name":"a"},{"name":"b"}]}`,
		"Promoted":           `{"promoted":"p"}`,
		"UntaggedByGoName":   `{"Untagged":3}`,
		"RawAnyNames":        `{"raw":{"Any":{"Case":[1,2,{"x":null}]}}}`,
		"SurrogatePair":      `{"reason":"\ud83d\ude00"}`,
		"EscapedNonSurrogat": `{"reason":"caf\u00e9 \u0000"}`,
		"MultibyteUTF8":      `{"reason":"café 日本 😀"}`,
		"Time":               `{"when":"2030-01-01T00:00:00Z"}`,
		"Spaces":             " \t\n{ \"reason\" : \"x\" } \r\n",
		"Numbers":            `{"raw":[0,-1,1.5,1e10,-0.0e-3,12E+2]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var d doc
			if err := strictjson.Unmarshal([]byte(in), &d); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

func TestUnmarshal_Refuses(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"DuplicateTopKey":         {`{"reason":"a","reason":"b"}`, `key "reason" twice`},
		"DuplicateNestedKey":      {`{"subject":{"user_id":"1","user_id":"2"}}`, `key "user_id" twice`},
		"DuplicateAfterUnescape":  {`{"reason":"a","re\u0061son":"b"}`, `twice`},
		"DuplicateInRaw":          {`{"raw":{"a":1,"a":2}}`, `twice`},
		"DuplicateInArray":        {`{"list":[{"name":"a","name":"b"}]}`, `twice`},
		"CaseOfField":             {`{"Reason":"x"}`, `case-sensitive`},
		"UpperCaseField":          {`{"REASON":"x"}`, `case-sensitive`},
		"CaseOfNestedField":       {`{"inner":{"Name":"x"}}`, `case-sensitive`},
		"UnknownField":            {`{"other":1}`, `unknown field "other"`},
		"IgnoredField":            {`{"Ignored":"x"}`, `unknown field`},
		"UnknownInList":           {`{"list":[{"nam":"a"}]}`, `unknown field "nam"`},
		"InvalidUTF8InValue":      {"{\"reason\":\"\xff\xfe\"}", `not valid UTF-8`},
		"InvalidUTF8InKey":        {"{\"\xc3\":1}", `not valid UTF-8`},
		"OverlongUTF8":            {"{\"reason\":\"\xc0\xaf\"}", `not valid UTF-8`},
		"EncodedSurrogateUTF8":    {"{\"reason\":\"\xed\xa0\x80\"}", `not valid UTF-8`},
		"InvalidUTF8OutsideValue": {"{\"reason\":\"x\"}\xff", `data after`},
		"LoneHighSurrogate":       {`{"reason":"\ud800"}`, `lone UTF-16 surrogate`},
		"LoneHighThenChar":        {`{"reason":"\ud800x"}`, `lone UTF-16 surrogate`},
		"LoneLowSurrogate":        {`{"reason":"\udc00"}`, `lone UTF-16 surrogate`},
		"ReversedPair":            {`{"reason":"\udc00\ud800"}`, `lone UTF-16 surrogate`},
		"HighThenHigh":            {`{"reason":"\ud800\ud800"}`, `lone UTF-16 surrogate`},
		"SurrogateInKey":          {`{"\ud800":1}`, `lone UTF-16 surrogate`},
		"SurrogateInRaw":          {`{"raw":["\udfff"]}`, `lone UTF-16 surrogate`},
		"BadEscape":               {`{"reason":"\x"}`, `invalid escape`},
		"ControlChar":             {"{\"reason\":\"a\nb\"}", `control character`},
		"Trailing":                {`{"reason":"x"} {}`, `data after`},
		"Empty":                   {``, `empty`},
		"Spaces":                  {"  ", `empty`},
		"Truncated":               {`{"reason":"x"`, `truncated`},
		"TruncatedString":         {`{"reason":"x`, `truncated`},
		"WrongType":               {`{"reason":3}`, `field "reason" must be a string`},
		"NotAnObject":             {`[1]`, `must be an object`},
		"LeadingZero":             {`{"raw":01}`, `malformed`},
		"BareDot":                 {`{"raw":1.}`, `malformed`},
		"SingleQuotes":            {`{'reason':'x'}`, `malformed`},
		"TrailingComma":           {`{"reason":"x",}`, `malformed`},
		"NaN":                     {`{"raw":NaN}`, `malformed`},
		"TooDeep":                 {`{"raw":` + strings.Repeat("[", strictjson.MaxDepth+1) + strings.Repeat("]", strictjson.MaxDepth+1) + `}`, `deeper`},
	} {
		t.Run(name, func(t *testing.T) {
			var d doc
			err := strictjson.Unmarshal([]byte(c.in), &d)
			if err == nil {
				t.Fatalf("accepted %q", c.in)
			}
			if erasure.ErrorCode(err) != erasure.EINVALID {
				t.Fatalf("error %v has code %q, want EINVALID", err, erasure.ErrorCode(err))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// TestUnmarshal_StandardLibraryWouldAccept shows why the package exists: each of these
// documents decodes without error with encoding/json, into something it does not say.
func TestUnmarshal_StandardLibraryWouldAccept(t *testing.T) {
	for _, in := range []string{
		`{"reason":"a","reason":"b"}`,
		`{"Reason":"x"}`,
		`{"reason":"\ud800"}`,
		"{\"reason\":\"\xff\"}",
	} {
		var lenient, strict doc
		if err := json.Unmarshal([]byte(in), &lenient); err != nil {
			t.Fatalf("encoding/json refused %q: %v", in, err)
		}
		if err := strictjson.Unmarshal([]byte(in), &strict); err == nil {
			t.Fatalf("strictjson accepted %q", in)
		}
	}
}

func TestUnmarshal_ErrorsNeverQuoteValues(t *testing.T) {
	const secret = "alice@example.com"
	for _, in := range []string{
		`{"reason":"` + secret + `","reason":"x"}`,
		`{"` + secret + `":1}`,
		`{"` + secret + `":1,"` + secret + `":2}`,
		`{"reason":"` + secret + `\ud800"}`,
		`{"reason":"` + secret + `"`,
		`{"reason":"` + secret + `"}x`,
	} {
		var d doc
		err := strictjson.Unmarshal([]byte(in), &d)
		if err == nil {
			t.Fatalf("accepted %q", in)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "alice") {
			t.Fatalf("error %q quotes the input", err)
		}
	}
}

func TestDecode_Limit(t *testing.T) {
	var d doc
	err := strictjson.Decode(strings.NewReader(`{"reason":"xxxxxxxxxxxxxxxx"}`), 10, &d)
	if erasure.ErrorCode(err) != erasure.ETOOLARGE {
		t.Fatalf("got %v, want ETOOLARGE", err)
	}
	if err := strictjson.Decode(strings.NewReader(`{"reason":"x"}`), 14, &d); err != nil || d.Reason != "x" {
		t.Fatalf("a body of exactly the limit: %v", err)
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c"}]}`, `"\ud83d\ude00"`, `{"a":1,"a":2}`, "\"\xff\"", `[1e5,-0,true,false,null]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.Valid(data)
		if err == nil && !json.Valid(data) {
			t.Fatalf("accepted what encoding/json finds malformed: %q", data)
		}
		if err != nil && erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("error of code %q: %v", erasure.ErrorCode(err), err)
		}
		if err == nil {
			// What is accepted decodes, and re-encodes to what is accepted again.
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("accepted but encoding/json cannot decode: %v", err)
			}
			b, _ := json.Marshal(v)
			if err := strictjson.Valid(b); err != nil {
				t.Fatalf("refused its own re-encoding %q: %v", b, err)
			}
		}
	})
}
