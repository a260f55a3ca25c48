package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fuzzSeedFiles(f *testing.F, pattern string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("..", "..", "..", "testdata", "celery", pattern))
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
		ctype := ContentTypeMsgpack
		if isJSON {
			ctype = ContentTypeJSON
		}
		for _, a := range []Args{&mixedArgs{}, &addArgs{}, &emailArgs{}, &pairArgs{}, &oneIntArgs{}} {
			embed, err := DecodeBody(ctype, "", body, a)
			if err != nil || embed == nil {
				continue
			}
			if isJSON {
				if _, err := ParseJSON(embed, UntagGo); err != nil && !strings.Contains(err.Error(), "kombu") {
					t.Fatalf("embed %q: %v", embed, err)
				}
			} else {
				d := MsgpackDecoder{b: embed}
				if err := d.Skip(); err != nil || d.i != len(embed) {
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
func FuzzMsgpackSkip(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "*msgpack*.bin") {
		f.Add(b)
	}
	f.Add([]byte{0xc7, 0x0c, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{0xdf, 0, 0, 0, 1, 0x01, 0xc4, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := MsgpackDecoder{b: data}
		skipErr := d.Skip()
		end := d.i
		d2 := MsgpackDecoder{b: data}
		raw, rawErr := d2.Raw()
		if (skipErr == nil) != (rawErr == nil) || (rawErr == nil && len(raw) != end) {
			t.Fatalf("skip and raw disagree")
		}
		d3 := MsgpackDecoder{b: data}
		_, err := d3.AnyValue(0)
		if err == nil && (skipErr != nil || d3.i != end) {
			t.Fatalf("anyValue ended at %d, skip at %d (%v)", d3.i, end, skipErr)
		}
		if skipErr == nil {
			var v any
			_ = MsgpackUnmarshal(raw, &v)
			var it item
			_ = MsgpackDecodeInto(raw, &it)
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
		d := JSONDecoder{b: data}
		err := d.Skip(0)
		ok := err == nil && d.Peek() == 0 && d.i == len(data)
		if bytes.Contains(data, []byte("NaN")) || bytes.Contains(data, []byte("Infinity")) {
			_, _ = ParseJSON(data, UntagGo)
			return
		}
		if ok != json.Valid(data) {
			t.Fatalf("scanner ok=%v, encoding/json valid=%v for %q", ok, json.Valid(data), data)
		}
		if ok {
			v, err := ParseJSON(data, untagText)
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

// TestJSONStringScanEveryPosition: the string scan, which skips eight bytes
// at a time, finds a quote, a backslash or a control character at every
// offset of a word and of the tail, and agrees with encoding/json.
func TestJSONStringScanEveryPosition(t *testing.T) {
	specials := []string{`"`, `\"`, `\\`, `\u00e9`, `\x`, "\x1f", "\x00", "\x7f", "é", "\xff"}
	for n := range 26 {
		for p := 0; p <= n; p++ {
			for _, sp := range specials {
				s := `"` + strings.Repeat("a", p) + sp + strings.Repeat("b", n-p) + `"`
				for _, doc := range []string{s, "[" + s + ", 1]"} {
					d := JSONDecoder{b: []byte(doc)}
					err := d.Skip(0)
					ok := err == nil && d.Peek() == 0 && d.i == len(doc)
					if want := json.Valid([]byte(doc)); ok != want {
						t.Fatalf("%q: scanner ok=%v (err %v), encoding/json valid=%v", doc, ok, err, want)
					}
				}
			}
		}
	}
}
