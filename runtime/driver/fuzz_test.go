package driver

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func fuzzSeedFiles(f *testing.F, pattern string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("..", "..", "testdata", "celery", pattern))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzParseHeaders: headers from any JSON object parse without panicking, and
// what parses is re-produced (Map) and parses again to the same headers.
func FuzzParseHeaders(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "*.meta.json") {
		var m struct{ Headers json.RawMessage }
		_ = json.Unmarshal(b, &m)
		f.Add([]byte(m.Headers))
	}
	for _, b := range fuzzSeedFiles(f, "redis_task_*.bin") {
		var env struct{ Headers json.RawMessage }
		if json.Unmarshal(b, &env) == nil && env.Headers != nil {
			f.Add([]byte(env.Headers))
		}
	}
	f.Add([]byte(`{"task": "t", "id": "i", "eta": "9999-12-31T23:59:59.999999-23:59", "timelimit": [1e308, 0.5], "retries": 1e18}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, useNumber := range []bool{false, true} {
			dec := json.NewDecoder(bytes.NewReader(data))
			if useNumber {
				dec.UseNumber()
			}
			var m map[string]any
			if dec.Decode(&m) != nil {
				return
			}
			h, err := ParseHeaders(m)
			if err != nil {
				continue
			}
			h.Range(func(string, any) {})
			h2, err := ParseHeaders(h.Map())
			if err != nil {
				t.Fatalf("re-parse of %v: %v", h.Map(), err)
			}
			h.ETA, h.Expires = h.ETA.Truncate(time.Microsecond), h.Expires.Truncate(time.Microsecond)
			if !h.ETA.Equal(h2.ETA) || !h.Expires.Equal(h2.Expires) || h.Task != h2.Task || h.ID != h2.ID ||
				h.Retries != h2.Retries || h.TimeLimit != h2.TimeLimit || len(h.Extra) != len(h2.Extra) {
				t.Fatalf("round trip changed headers:\n%+v\n%+v", h, h2)
			}
		}
	})
}
