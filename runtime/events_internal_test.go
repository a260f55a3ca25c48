package runtime

import (
	"encoding/json"
	"strconv"
	"testing"
)

// FuzzEvAppendString checks the event JSON string encoder against
// encoding/json.
func FuzzEvAppendString(f *testing.F) {
	f.Add("a\"b\\c<>&\u2028\xff\x01é😀")
	f.Fuzz(func(t *testing.T, s string) {
		b := evAppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var w string
		json.Unmarshal(want, &w)
		if got != w {
			t.Fatalf("%q: got %q want %q", s, got, w)
		}
	})
}

// FuzzEvAppendSeconds: the fixed-point seconds of event timestamps and
// runtimes read back (as Python's json and Go's strconv read them) as the
// float nearest to n/per, the value of the float formatting they replace,
// in a form that stays a float (a dot, or an exponent).
func FuzzEvAppendSeconds(f *testing.F) {
	for _, n := range []int64{0, 1, 999_999, 1_000_000, 12_345, 1_765_099_999_123_456, 1<<53 - 1, -1_500_000} {
		f.Add(n, true)
		f.Add(n, false)
	}
	f.Fuzz(func(t *testing.T, n int64, micro bool) {
		per := int64(1e9)
		if micro {
			per = 1e6
		}
		if n >= 1<<53 || n <= -(1<<53) {
			return // beyond exact float64 integers: the formats may differ in the last place
		}
		b := evAppendSeconds(nil, n, per)
		got, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			t.Fatalf("%d/%d -> %s: %v", n, per, b, err)
		}
		if want := float64(n) / float64(per); got != want {
			t.Fatalf("%d/%d -> %s reads %v, want %v", n, per, b, got, want)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%d/%d -> %s: not JSON: %v", n, per, b, err)
		}
		if !isFloatLiteral(b) {
			t.Fatalf("%d/%d -> %s: not a float literal", n, per, b)
		}
	})
}

func isFloatLiteral(b []byte) bool {
	for _, c := range b {
		if c == '.' || c == 'e' {
			return true
		}
	}
	return false
}

func TestEvAppendSeconds(t *testing.T) {
	for _, tc := range []struct {
		n, per int64
		want   string
	}{
		{1_765_099_999_123_456, 1e6, "1765099999.123456"},
		{1_765_099_999_000_000, 1e6, "1765099999.0"},
		{1_765_099_999_120_000, 1e6, "1765099999.12"},
		{12_345, 1e9, "0.000012345"},
		{1_500_000_000, 1e9, "1.5"},
		{0, 1e9, "0.0"},
	} {
		if got := string(evAppendSeconds(nil, tc.n, tc.per)); got != tc.want {
			t.Errorf("evAppendSeconds(%d, %d) = %s, want %s", tc.n, tc.per, got, tc.want)
		}
	}
}
