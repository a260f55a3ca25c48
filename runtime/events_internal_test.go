package runtime

import (
	"encoding/json"
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
