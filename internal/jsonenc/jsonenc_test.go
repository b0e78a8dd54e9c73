package jsonenc

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendString(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"", `""`},
		{"plain", `"plain"`},
		{`quote " and \ backslash`, `"quote \" and \\ backslash"`},
		{"tab\tnewline\n cr\r bs\b ff\f", `"tab\tnewline\n cr\r bs\b ff\f"`},
		{"bell\a nul\x00 vt\v esc\x1b del\x7f", "\"bell\\u0007 nul\\u0000 vt\\u000b esc\\u001b del\x7f\""},
		{"bad \xff byte", `"bad \ufffd byte"`},
		{"cut \xe2\x82 euro", `"cut \ufffd\ufffd euro"`},
		{"euro € tag \U000e0001 line\u2028", "\"euro € tag \U000e0001 line\u2028\""},
		{"<b>&amp;", `"<b>&amp;"`},
	}
	for _, tc := range cases {
		got := string(AppendString([]byte("x"), tc.in))
		require.Equal(t, "x"+tc.want, got, "input %q", tc.in)
		require.True(t, json.Valid([]byte(tc.want)))
	}
}

// FuzzAppendString checks the encoder against encoding/json: any string
// gives valid JSON that decodes to the string, each invalid byte replaced
// by U+FFFD, in the bytes encoding/json writes (with HTML escaping off;
// strings holding U+2028 or U+2029, which encoding/json escapes, are
// compared as decoded text only).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "ok", "a\"b\\c", "\a\x00\v\x7f", "\xff\xfe", "\U000e0001\u2028", "é€𝄞"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		if !json.Valid(b) {
			t.Fatalf("%q encodes to invalid JSON %s", s, b)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if want := string([]rune(s)); got != want {
			t.Fatalf("%q decodes to %q, want %q", s, got, want)
		}
		if strings.ContainsAny(s, "\u2028\u2029") {
			return
		}
		var ref bytes.Buffer
		enc := json.NewEncoder(&ref)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if want := bytes.TrimSuffix(ref.Bytes(), []byte("\n")); !bytes.Equal(b, want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, b, want)
		}
	})
}

func TestAppendFloat(t *testing.T) {
	cases := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "-0"}, {1.5, "1.5"}, {-273.15, "-273.15"}, {100, "100"},
		{1e-6, "0.000001"}, {9.99e-7, "9.99e-7"}, {1e-7, "1e-7"}, {1e20, "100000000000000000000"},
		{1e21, "1e+21"}, {-1.5e300, "-1.5e+300"}, {5e-324, "5e-324"}, {0.30000000000000004, "0.30000000000000004"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, string(AppendFloat(nil, tc.in)), "%v", tc.in)
	}
}

func TestAppendNumber(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		require.Equal(t, "null", string(AppendNumber(nil, v)), "%v", v)
	}
	require.Equal(t, "1e-7", string(AppendNumber(nil, 1e-7)))
	require.Equal(t, "-273.15", string(AppendNumber(nil, -273.15)))
}

// FuzzAppendFloat checks the float encoder byte for byte against
// encoding/json.
func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 1.5, 1e-7, 1e21, -2.5e-300, 123456789.125} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return // not JSON; the callers write null or leave the member out
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendFloat(nil, v); string(got) != string(want) {
			t.Fatalf("%v: got %s, encoding/json %s", v, got, want)
		}
	})
}

// TestMarshal: encoding/json's reflection, with strings written as
// AppendString writes them: no HTML escaping, U+2028/U+2029 as they are,
// and no trailing newline.
func TestMarshal(t *testing.T) {
	v := struct {
		ID      string `json:"id"`
		OK      bool   `json:"ok"`
		Comment string `json:"comment,omitempty"`
	}{ID: "a<b&c>", Comment: "line\u2028sep\u2029 \\u2028 \\\u2028 \"q\" \xff"}
	got, err := Marshal(v)
	require.NoError(t, err)
	want := `{"id":"a<b&c>","ok":false,"comment":` + string(AppendString(nil, v.Comment)) + `}`
	require.Equal(t, want, string(got))
	require.True(t, json.Valid(got))
	var back struct{ ID, Comment string }
	require.NoError(t, json.Unmarshal(got, &back))
	require.Equal(t, "a<b&c>", back.ID)
	require.Equal(t, string([]rune(v.Comment)), back.Comment)

	_, err = Marshal(math.NaN())
	require.Error(t, err)
}

// FuzzMarshal: a string marshals to the bytes AppendString writes.
func FuzzMarshal(f *testing.F) {
	for _, s := range []string{"", "a<b&c>", "\\u2028", "\\\u2028", "\u2028\u2029", "\xff\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: Marshal %s, AppendString %s", s, got, want)
		}
	})
}
