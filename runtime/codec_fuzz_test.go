package runtime

import (
	"bytes"
	"encoding/json"
	"github.com/taskgen/taskgen/runtime/driver"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func fuzzSeedFiles(f *testing.F, pattern string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("..", "testdata", "celery", pattern))
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

func seedBodies(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "*.body.bin") {
		f.Add(b, b[0] == '[')
	}
	when := time.Date(2026, 11, 23, 19, 42, 38, 281413000, time.UTC)
	m := &mixedArgs{UserID: -5, Name: "é", Small: 3, Port: 80, Ratio: 1.5, OK: true, Data: []byte{0, 1}, When: when,
		Items: []item{{SKU: "a", Qty: 2, Price: 0.5, Meta: map[string]any{"k": []any{1, "x"}}}}, Extra: map[string]any{"n": 1}}
	for _, ser := range []string{SerializerMsgpack, SerializerJSON} {
		b, err := AppendBody(nil, ser, m, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, ser == SerializerJSON)
	}
	f.Add([]byte(`[[], {"user_id": 1, "name": "n", "small": 1, "port": 2, "ratio": NaN, "ok": true, "data": {"__type__": "base64", "__value__": "AA=="}, "when": {"__type__": "datetime", "__value__": "2026-11-23T19:42:38"}, "items": [], "extra": [1e400, -Infinity, "\ud83d\ude80"]}, null]`), true)
	f.Add([]byte{0x93, 0x91, 0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0xc0}, false)
}

// FuzzDecodeBody: body decoding never panics, whatever the Args, and a
// returned embed is one complete value.
func FuzzDecodeBody(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ctype := driver.ContentTypeMsgpack
		if isJSON {
			ctype = driver.ContentTypeJSON
		}
		for _, a := range []Args{&mixedArgs{}, &addArgs{}, &emailArgs{}, &pairArgs{}, &oneIntArgs{}} {
			embed, err := DecodeBody(ctype, "", body, a)
			if err != nil || embed == nil {
				continue
			}
			if isJSON {
				if _, err := jsonValueOf(embed, untagGo); err != nil && !strings.Contains(err.Error(), "kombu") {
					t.Fatalf("embed %q: %v", embed, err)
				}
			} else {
				d := mpDec{b: embed}
				if err := d.skip(); err != nil || d.i != len(embed) {
					t.Fatalf("embed %x: %v", embed, err)
				}
			}
			// What decoded re-encodes.
			if m, ok := a.(*mixedArgs); ok {
				ser := SerializerMsgpack
				if isJSON {
					ser = SerializerJSON
				}
				if out, err := AppendBody(nil, ser, m, nil); err == nil {
					var back mixedArgs
					if _, err := DecodeBody(ctype, "", out, &back); err != nil {
						t.Fatalf("re-encoded body %x does not decode: %v", out, err)
					}
				}
			}
		}
	})
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
			h, err := driver.ParseHeaders(m)
			if err != nil {
				continue
			}
			h.Range(func(string, any) {})
			h2, err := driver.ParseHeaders(h.Map())
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

// FuzzDecodeResultDoc: result documents in either serializer decode without
// panicking; what decodes re-encodes and decodes again.
func FuzzDecodeResultDoc(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "redis_result_*.bin") {
		f.Add(b, b[0] == '{')
	}
	f.Add([]byte(`{"status": "SUCCESS", "result": {"__type__": "datetime", "__value__": "2026-11-23T19:42:38"}, "children": [[["a", null], null]], "date_done": "2026-11-23T19:42:39.917492+01:00"}`), true)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		ser := SerializerMsgpack
		if isJSON {
			ser = SerializerJSON
		}
		doc, err := DecodeResultDoc(ser, data)
		if err != nil {
			return
		}
		_ = doc.Exception()
		var v any
		if doc.DecodeResult(&v) != nil {
			return
		}
		var n int64
		_ = doc.DecodeResult(&n)
		var tm time.Time
		_ = doc.DecodeResult(&tm)
		doc.Result = v
		raw, err := EncodeResultDoc(ser, doc)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := DecodeResultDoc(ser, raw)
		if err != nil {
			t.Fatalf("re-decode %q: %v", raw, err)
		}
		if utf8.ValidString(string(doc.Status)) && utf8.ValidString(doc.TaskID) && (back.Status != doc.Status || back.TaskID != doc.TaskID) {
			t.Fatalf("round trip: %q %q → %q %q", doc.Status, doc.TaskID, back.Status, back.TaskID)
		}
	})
}

// FuzzMsgpackSkip: skip, raw and anyValue agree on where a value ends and
// never panic.
func FuzzMsgpackSkip(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "*msgpack*.bin") {
		f.Add(b)
	}
	f.Add([]byte{0xc7, 0x0c, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{0xdf, 0, 0, 0, 1, 0x01, 0xc4, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := mpDec{b: data}
		skipErr := d.skip()
		end := d.i
		d2 := mpDec{b: data}
		raw, rawErr := d2.raw()
		if (skipErr == nil) != (rawErr == nil) || (rawErr == nil && len(raw) != end) {
			t.Fatalf("skip and raw disagree")
		}
		d3 := mpDec{b: data}
		_, err := d3.anyValue(0)
		if err == nil && (skipErr != nil || d3.i != end) {
			t.Fatalf("anyValue ended at %d, skip at %d (%v)", d3.i, end, skipErr)
		}
		if skipErr == nil {
			var v any
			_ = mpUnmarshal(raw, &v)
			var it item
			_ = mpDecodeInto(raw, &it)
			_, _ = mpTime(raw)
		}
	})
}

// FuzzJSONSkip: the JSON scanner accepts exactly what encoding/json does,
// plus Python's NaN and Infinity literals.
func FuzzJSONSkip(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "*json*.bin") {
		f.Add(b)
	}
	f.Add([]byte(`[NaN, -Infinity, "\ud800", 1e5, -0.0, {"a": []}]`))
	f.Add([]byte("2" + strings.Repeat("0", 320))) // beyond float64: +Inf, not an error
	f.Fuzz(func(t *testing.T, data []byte) {
		d := jsonDec{b: data}
		err := d.skip(0)
		ok := err == nil && d.peek() == 0 && d.i == len(data)
		if bytes.Contains(data, []byte("NaN")) || bytes.Contains(data, []byte("Infinity")) {
			_, _ = jsonValueOf(data, untagGo)
			return
		}
		if ok != json.Valid(data) {
			t.Fatalf("scanner ok=%v, encoding/json valid=%v for %q", ok, json.Valid(data), data)
		}
		if ok {
			v, err := jsonValueOf(data, untagText)
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var w any
			if werr := dec.Decode(&w); (err == nil) != (werr == nil) {
				t.Fatalf("value: %v, encoding/json: %v", err, werr)
			}
			_ = v
		}
	})
}
