package wire

import (
	"bytes"
	"compress/gzip"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Hand-written Args, exactly as taskgen generates them.

// addArgs is tasks.add(x, y, z=0) of the fixtures' Python app.
type addArgs struct{ x, y, z int64 }

var addArgsNames = ArgNames{{"x"}, {"y"}, {"z"}}

func (*addArgs) ArgNames() ArgNames { return addArgsNames }
func (a *addArgs) NumRequired() int { return 2 }
func (a *addArgs) EncodeArgs(w ArgWriter) error {
	w.Int(a.x)
	w.Int(a.y)
	w.Int(a.z)
	return nil
}
func (a *addArgs) DecodeArg(i int, r ArgReader) (err error) {
	switch i {
	case 0:
		a.x, err = r.Int(64)
	case 1:
		a.y, err = r.Int(64)
	case 2:
		a.z, err = r.Int(64)
	}
	return err
}

// pairArgs is a Go task func(ctx, x, y int) (tasks.add called with 2 args).
type pairArgs struct{ x, y int }

var pairArgsNames = ArgNames{{"x"}, {"y"}}

func (*pairArgs) ArgNames() ArgNames { return pairArgsNames }
func (a *pairArgs) EncodeArgs(w ArgWriter) error {
	w.Int(int64(a.x))
	w.Int(int64(a.y))
	return nil
}
func (a *pairArgs) DecodeArg(i int, r ArgReader) error {
	v, err := r.Int(64)
	if i == 0 {
		a.x = int(v)
	} else {
		a.y = int(v)
	}
	return err
}

// oneIntArgs is tasks.flaky(n).
type oneIntArgs struct{ n int }

var oneIntArgsNames = ArgNames{{"n"}}

func (*oneIntArgs) ArgNames() ArgNames             { return oneIntArgsNames }
func (a *oneIntArgs) EncodeArgs(w ArgWriter) error { w.Int(int64(a.n)); return nil }
func (a *oneIntArgs) DecodeArg(i int, r ArgReader) error {
	v, err := r.Int(strconvIntSize)
	a.n = int(v)
	return err
}

const strconvIntSize = 32 << (^uint(0) >> 63)

// emailArgs is func(ctx, email string): the benchmark's one-string task.
type emailArgs struct{ email string }

var emailArgsNames = ArgNames{{"email"}}

func (*emailArgs) ArgNames() ArgNames             { return emailArgsNames }
func (a *emailArgs) EncodeArgs(w ArgWriter) error { w.String(a.email); return nil }
func (a *emailArgs) DecodeArg(i int, r ArgReader) (err error) {
	a.email, err = r.String()
	return err
}

type item struct {
	SKU   string         `json:"sku"`
	Qty   int64          `json:"qty"`
	Price float64        `json:"price"`
	Meta  map[string]any `json:"meta,omitempty"`
}

// mixedArgs is func(ctx, userID int64, name string, small int8, port uint16,
// ratio float32, ok bool, data []byte, when time.Time, items []item, extra any).
type mixedArgs struct {
	UserID int64
	Name   string
	Small  int8
	Port   uint16
	Ratio  float32
	OK     bool
	Data   []byte
	When   time.Time
	Items  []item
	Extra  any
}

var mixedArgsNames = ArgNames{{"UserID", "user_id"}, {"Name", "name"}, {"Small", "small"}, {"Port", "port"}, {"Ratio", "ratio"}, {"OK", "ok"}, {"Data", "data"}, {"When", "when"}, {"Items", "items"}, {"Extra", "extra"}}

func (*mixedArgs) ArgNames() ArgNames { return mixedArgsNames }
func (a *mixedArgs) EncodeArgs(w ArgWriter) error {
	w.Int(a.UserID)
	w.String(a.Name)
	w.Int(int64(a.Small))
	w.Uint(uint64(a.Port))
	w.Float(float64(a.Ratio))
	w.Bool(a.OK)
	w.Bytes(a.Data)
	if err := w.Value(a.When); err != nil {
		return err
	}
	if err := w.Value(a.Items); err != nil {
		return err
	}
	return w.Value(a.Extra)
}
func (a *mixedArgs) DecodeArg(i int, r ArgReader) error {
	var err error
	switch i {
	case 0:
		a.UserID, err = r.Int(64)
	case 1:
		a.Name, err = r.String()
	case 2:
		var v int64
		v, err = r.Int(8)
		a.Small = int8(v)
	case 3:
		var v uint64
		v, err = r.Uint(16)
		a.Port = uint16(v)
	case 4:
		var v float64
		v, err = r.Float(32)
		a.Ratio = float32(v)
	case 5:
		a.OK, err = r.Bool()
	case 6:
		a.Data, err = r.Bytes()
	case 7:
		err = r.Value(&a.When)
	case 8:
		err = r.Value(&a.Items)
	case 9:
		err = r.Value(&a.Extra)
	}
	return err
}

// ---- fixtures ----

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "celery", name))
	require.NoError(t, err)
	return b
}

// ---- task messages ----

func TestWire_DecodeCompressedFixtures(t *testing.T) {
	for _, ser := range []string{"json", "msgpack"} {
		ctype, _, _ := ContentTypeOf(ser)
		for _, c := range []struct{ ext, header string }{{"zlib", CompressionZlib}, {"bz2", CompressionBzip2}} {
			t.Run(ser+"/"+c.ext, func(t *testing.T) {
				data := fixture(t, "redis_task_"+ser+"_basic.body."+c.ext)
				var a addArgs
				_, err := DecodeBody(ctype, c.header, data, &a)
				require.NoError(t, err)
				require.Equal(t, addArgs{2, 3, 1}, a)
			})
		}
		t.Run(ser+"/gzip-is-not-zlib", func(t *testing.T) {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(fixture(t, "redis_task_"+ser+"_basic.body.bin"))
			require.NoError(t, zw.Close())
			_, err := DecodeBody(ctype, CompressionZlib, buf.Bytes(), &addArgs{})
			require.Error(t, err, "application/x-gzip carries zlib (RFC 1950) data, not gzip")
		})
	}
	_, err := DecodeBody(ContentTypeJSON, "application/x-lzma", []byte("x"), &addArgs{})
	require.ErrorContains(t, err, "not supported")
}

// ---- arguments ----

func encodeBody(t testing.TB, ser string, a Args) []byte {
	t.Helper()
	b, err := AppendBody(nil, ser, a, nil)
	require.NoError(t, err)
	return b
}

func TestWire_ArgsRoundTrip(t *testing.T) {
	when := time.Date(2026, 11, 23, 19, 42, 38, 281413000, time.UTC)
	in := &mixedArgs{UserID: 1<<62 + 1, Name: "Zoë \"quoted\" \n 🚀", Small: -128, Port: 65535, Ratio: 0.5, OK: true,
		Data: []byte("raw"), When: when,
		Items: []item{{SKU: "a", Qty: 1 << 60, Price: 1.5, Meta: map[string]any{"big": int64(1<<53 + 1), "f": 2.5, "l": []any{int64(1), "x"}}}},
		Extra: map[string]any{"n": int64(9007199254740993), "neg": int64(-3), "s": "t", "nil": nil, "ok": true}}
	for _, ser := range []string{SerializerMsgpack, SerializerJSON} {
		t.Run(ser, func(t *testing.T) {
			body := encodeBody(t, ser, in)
			ctype, _, _ := ContentTypeOf(ser)
			var out mixedArgs
			_, err := DecodeBody(ctype, "", body, &out)
			require.NoError(t, err)
			require.Equal(t, in.When, out.When.UTC())
			out.When = in.When
			require.Equal(t, *in, out)
		})
	}
}

func TestWire_JSONBodyText(t *testing.T) {
	when := time.Date(2026, 11, 23, 19, 42, 38, 281413999, time.UTC)
	b := encodeBody(t, SerializerJSON, &mixedArgs{UserID: 7, Name: "é", Small: 1, Ratio: 1, Data: nil, When: when, Extra: math.NaN()})
	require.Equal(t, `[[7, "\u00e9", 1, 0, 1.0, false, null, "2026-11-23T19:42:38.281413+00:00", null, NaN], {}, `+
		`{"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`, string(b))
	var out mixedArgs
	_, err := DecodeBody(ContentTypeJSON, "", b, &out)
	require.NoError(t, err)
	require.True(t, math.IsNaN(out.Extra.(float64)))
}

func TestWire_MsgpackBodyBytes(t *testing.T) {
	// Python: msgpack.packb([["a@b.c"], {}, {"callbacks": None, ...}], use_bin_type=True)
	b := encodeBody(t, SerializerMsgpack, &emailArgs{"a@b.c"})
	want := append([]byte{0x93, 0x91, 0xa5}, "a@b.c"...)
	want = append(want, 0x80)
	want = append(want, fixture(t, "redis_task_msgpack_basic.body.bin")[8:]...)
	require.Equal(t, want, b)
}

func decodeJSONArgs(t *testing.T, body string, a Args) error {
	t.Helper()
	_, err := DecodeBody(ContentTypeJSON, "", []byte(body), a)
	return err
}

func decodeMsgpackArgs(t *testing.T, parts []any, a Args) error {
	t.Helper()
	body, err := MsgpackMarshal(parts)
	require.NoError(t, err)
	_, err = DecodeBody(ContentTypeMsgpack, "", body, a)
	return err
}

func TestWire_KwargsAndErrors(t *testing.T) {
	const embed = `{"callbacks": null, "errbacks": null, "chain": null, "chord": null}`
	var m mixedArgs
	base := `"UserID": 1, "name": "n", "small": 1, "port": 2, "ratio": 0.5, "ok": true, "data": "d", "when": "2026-11-23T19:42:38Z", "items": [], "extra": null`
	require.NoError(t, decodeJSONArgs(t, `[[], {`+base+`}, `+embed+`]`, &m))
	require.Equal(t, int64(1), m.UserID)
	require.Equal(t, "n", m.Name)

	// Mixed: positional then keywords by snake_case.
	a := addArgs{}
	require.NoError(t, decodeJSONArgs(t, `[[4], {"y": 5, "z": 6}, null]`, &a))
	require.Equal(t, addArgs{4, 5, 6}, a)
	require.NoError(t, decodeMsgpackArgs(t, []any{[]any{4}, map[string]any{"y": 5}, nil}, &a))
	require.Equal(t, addArgs{4, 5, 6}, a)
	require.NoError(t, decodeJSONArgs(t, `[null, {"x": 1, "y": 2}, null]`, &a))

	cases := []struct{ body, err string }{
		{`[[1], {"x": 2}, null]`, `multiple values for argument "x"`},
		{`[[1, 2], {"w": 2}, null]`, `unexpected keyword argument "w"`},
		{`[[1], {}, null]`, `missing argument "y"`},
		{`[[1, 2, 3, 4], {}, null]`, `positional arguments given`},
		{`[[1, "2"], {}, null]`, `argument "y": want a number`},
		{`[[1, 2], {"z": 1.5}, null]`, `argument "z": 1.5 is not an int64`},
		{`[[1, 9223372036854775808], {}, null]`, `argument "y": 9223372036854775808 overflows int64`},
		{`[[1, 9.3e18], {}, null]`, `argument "y"`},
		{`[[1, 2], {}]`, `3-element`},
		{`[[1, 2], {}, null, null]`, `3-element`},
		{`{"args": [1, 2]}`, `3-element`},
		{`[[1, 2], {}, null] x`, `extra data`},
		{`[[1, 2], [], null]`, `kwargs`},
	}
	for _, c := range cases {
		err := decodeJSONArgs(t, c.body, &addArgs{})
		require.ErrorContains(t, err, c.err, c.body)
	}
	var ae *ArgError
	require.ErrorAs(t, decodeJSONArgs(t, `[[1, "x"], {}, null]`, &addArgs{}), &ae)
	require.Equal(t, "y", ae.Name)
	require.Equal(t, 1, ae.Index)
	require.ErrorAs(t, decodeMsgpackArgs(t, []any{[]any{1, 2}, map[string]any{"z": "s"}, nil}, &addArgs{}), &ae)
	require.Equal(t, "z", ae.Name)
	require.ErrorContains(t, decodeMsgpackArgs(t, []any{[]any{1}, map[string]any{"x": 2}, nil}, &addArgs{}), "multiple values")
	require.ErrorContains(t, decodeMsgpackArgs(t, []any{[]any{1, 2}, map[string]any{}}, &addArgs{}), "3-element")
}

func TestWire_IntegerConversions(t *testing.T) {
	type tc struct {
		tok  string
		bits int
		want int64
		ok   bool
	}
	for _, c := range []tc{
		{"1.0", 64, 1, true}, {"1e2", 64, 100, true}, {"-0", 64, 0, true}, {"1.5", 64, 0, false},
		{"9223372036854775807", 64, math.MaxInt64, true}, {"-9223372036854775808", 64, math.MinInt64, true},
		{"9223372036854775808", 64, 0, false}, {"9.223372036854775807e18", 64, 0, false}, // 2^63 as a float
		{"127", 8, 127, true}, {"128", 8, 0, false}, {"-129", 8, 0, false}, {"NaN", 64, 0, false},
		{"Infinity", 64, 0, false}, {"1e400", 64, 0, false}, {"true", 64, 0, false}, {`"1"`, 64, 0, false},
		{"9007199254740993", 64, 9007199254740993, true},
	} {
		r := &jsonArgReader{raw: []byte(c.tok)}
		got, err := r.Int(c.bits)
		if c.ok {
			require.NoError(t, err, c.tok)
			require.Equal(t, c.want, got, c.tok)
		} else {
			require.Error(t, err, c.tok)
		}
	}
	for _, c := range []struct {
		tok  string
		bits int
		want uint64
		ok   bool
	}{
		{"18446744073709551615", 64, math.MaxUint64, true}, {"18446744073709551616", 64, 0, false},
		{"-1", 64, 0, false}, {"255", 8, 255, true}, {"256", 8, 0, false}, {"2.0", 16, 2, true}, {"2.5", 16, 0, false},
	} {
		r := &jsonArgReader{raw: []byte(c.tok)}
		got, err := r.Uint(c.bits)
		if c.ok {
			require.NoError(t, err, c.tok)
			require.Equal(t, c.want, got, c.tok)
		} else {
			require.Error(t, err, c.tok)
		}
	}
	// msgpack: every integer width, floats only when integral.
	for _, c := range []struct {
		v    any
		bits int
		want int64
		ok   bool
	}{
		{int8(-5), 64, -5, true}, {uint8(200), 8, 0, false}, {uint8(200), 16, 200, true}, {uint64(math.MaxUint64), 64, 0, false},
		{int64(math.MinInt64), 64, math.MinInt64, true}, {float64(3), 32, 3, true}, {float32(2.5), 32, 0, false},
		{math.Pow(2, 63), 64, 0, false}, {-math.Pow(2, 63), 64, math.MinInt64, true}, {"1", 64, 0, false},
	} {
		raw, err := MsgpackMarshal(c.v)
		require.NoError(t, err)
		r := &mpArgReader{d: &MsgpackDecoder{b: raw}}
		got, err := r.Int(c.bits)
		if c.ok {
			require.NoError(t, err, "%T %v", c.v, c.v)
			require.Equal(t, c.want, got)
		} else {
			require.Error(t, err, "%T %v", c.v, c.v)
		}
	}
}

func TestWire_JSONValuePath(t *testing.T) {
	// Big integers keep their precision in generic and typed destinations.
	var v any
	require.NoError(t, JSONDecodeInto([]byte(`{"a": 9007199254740993, "b": [18446744073709551615, -1, 1.0, 1e3]}`), &v))
	require.Equal(t, map[string]any{"a": int64(9007199254740993), "b": []any{uint64(math.MaxUint64), int64(-1), 1.0, 1000.0}}, v)
	var it item
	require.NoError(t, JSONDecodeInto([]byte(`{"sku": "x", "qty": 9007199254740993, "price": 2, "meta": {"n": 9007199254740993, "l": [1, 2.5]}}`), &it))
	require.Equal(t, item{SKU: "x", Qty: 9007199254740993, Price: 2, Meta: map[string]any{"n": int64(9007199254740993), "l": []any{int64(1), 2.5}}}, it)

	// Datetimes: kombu 5.2 strings (Z, offset, naive) and kombu >= 5.3 tags.
	want := time.Date(2026, 11, 23, 19, 42, 38, 281413000, time.UTC)
	for _, s := range []string{`"2026-11-23T19:42:38.281413Z"`, `"2026-11-23T19:42:38.281413+00:00"`, `"2026-11-23T20:42:38.281413+01:00"`,
		`"2026-11-23T19:42:38.281413"`, `{"__type__": "datetime", "__value__": "2026-11-23T19:42:38.281413+00:00"}`,
		`{"__value__": "2026-11-23T19:42:38.281413", "__type__": "datetime"}`} {
		var tm time.Time
		require.NoError(t, JSONDecodeInto([]byte(s), &tm), s)
		require.True(t, want.Equal(tm), "%s → %v", s, tm)
	}
	var tm time.Time
	require.Error(t, JSONDecodeInto([]byte(`{"__type__": "nope", "__value__": 1}`), &tm))
	require.Error(t, JSONDecodeInto([]byte(`12`), &tm))
	// Tags inside generic values and typed structs.
	require.NoError(t, JSONDecodeInto([]byte(`[{"__type__": "datetime", "__value__": "2026-11-23T19:42:38.281413+00:00"},
		{"__type__": "uuid", "__value__": {"hex": "11111111111141118111111111111111", "version": 4}},
		{"__type__": "decimal", "__value__": "1.10"}, {"__type__": "bytes", "__value__": "hi"},
		{"__type__": "base64", "__value__": "/w=="}]`), &v))
	require.Equal(t, []any{want, "11111111-1111-4111-8111-111111111111", "1.10", []byte("hi"), []byte{0xff}}, v)
	var st struct {
		At   time.Time `json:"at"`
		Blob []byte    `json:"blob"`
	}
	require.NoError(t, JSONDecodeInto([]byte(`{"at": {"__type__": "datetime", "__value__": "2026-11-23T19:42:38.281413+00:00"}, "blob": {"__type__": "base64", "__value__": "/w=="}}`), &st))
	require.True(t, want.Equal(st.At))
	require.Equal(t, []byte{0xff}, st.Blob)

	// Python's json escapes: \uXXXX, surrogate pairs, lone surrogates.
	r := &jsonArgReader{raw: []byte(`"caf\u00e9 \ud83d\ude80 \ud800 \/\"\\\n"`)}
	s, err := r.String()
	require.NoError(t, err)
	require.Equal(t, "café 🚀 \ufffd /\"\\\n", s)
	// Strings from kombu >= 5.3 tags (uuid.UUID, Decimal, bytes).
	for raw, want := range map[string]string{`{"__type__": "uuid", "__value__": {"hex": "11111111111141118111111111111111", "version": 4}}`: "11111111-1111-4111-8111-111111111111",
		`{"__type__": "decimal", "__value__": "1.10"}`: "1.10", `{"__type__": "bytes", "__value__": "ab"}`: "ab"} {
		s, err := (&jsonArgReader{raw: []byte(raw)}).String()
		require.NoError(t, err, raw)
		require.Equal(t, want, s)
	}
	_, err = (&jsonArgReader{raw: []byte(`{"a": "b"}`)}).String()
	require.Error(t, err)
	// Bytes: text, null, kombu >= 5.3 tags.
	for raw, want := range map[string][]byte{`"ab"`: []byte("ab"), `null`: nil, `{"__type__": "bytes", "__value__": "ab"}`: []byte("ab"),
		`{"__type__": "base64", "__value__": "/w=="}`: {0xff}} {
		b, err := (&jsonArgReader{raw: []byte(raw)}).Bytes()
		require.NoError(t, err, raw)
		require.Equal(t, want, b, raw)
	}
	// Non-finite floats, as Python writes them.
	for raw, want := range map[string]float64{"NaN": math.NaN(), "Infinity": math.Inf(1), "-Infinity": math.Inf(-1), "1": 1, "1e400": math.Inf(1)} {
		f, err := (&jsonArgReader{raw: []byte(raw)}).Float(64)
		require.NoError(t, err, raw)
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(f))
		} else {
			require.Equal(t, want, f, raw)
		}
	}
	_, err = (&jsonArgReader{raw: []byte("1e39")}).Float(32)
	require.Error(t, err)
}

func TestWire_MsgpackValuePath(t *testing.T) {
	want := time.Date(2026, 11, 23, 19, 42, 38, 281413000, time.UTC)
	for _, v := range []any{want, "2026-11-23T19:42:38.281413+00:00", "2026-11-23T19:42:38.281413"} {
		raw, err := MsgpackMarshal(v)
		require.NoError(t, err)
		var tm time.Time
		require.NoError(t, MsgpackDecodeInto(raw, &tm), "%v", v)
		require.True(t, want.Equal(tm))
	}
	// Every integer width normalized to int64 inside interfaces.
	raw, err := MsgpackMarshal(map[string]any{"a": int8(-1), "b": uint8(200), "c": uint64(math.MaxUint64), "d": float32(0.5), "e": []byte{1}, "f": []any{uint16(7)}})
	require.NoError(t, err)
	var v any
	require.NoError(t, MsgpackDecodeInto(raw, &v))
	require.Equal(t, map[string]any{"a": int64(-1), "b": int64(200), "c": uint64(math.MaxUint64), "d": 0.5, "e": []byte{1}, "f": []any{int64(7)}}, v)
	var it item
	raw, err = MsgpackMarshal(map[string]any{"sku": "x", "qty": 5, "meta": map[string]any{"n": uint8(200), "m": map[string]any{"k": int16(-300)}}})
	require.NoError(t, err)
	require.NoError(t, MsgpackDecodeInto(raw, &it))
	require.Equal(t, item{SKU: "x", Qty: 5, Meta: map[string]any{"n": int64(200), "m": map[string]any{"k": int64(-300)}}}, it)
	// Python int keys.
	d := MsgpackDecoder{b: []byte{0x81, 0x01, 0xa1, 'x'}}
	v, err = d.AnyValue(0)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"1": "x"}, v)
}

func TestWire_HostileBodies(t *testing.T) {
	good := [][]byte{
		fixture(t, "redis_task_msgpack_basic.body.bin"),
		fixture(t, "redis_task_json_basic.body.bin"),
		encodeBody(t, SerializerMsgpack, &mixedArgs{Name: "x", Items: []item{{SKU: "s"}}, Extra: []any{1, "a", map[string]any{"k": nil}}}),
		encodeBody(t, SerializerJSON, &mixedArgs{Name: "x", Items: []item{{SKU: "s"}}, Extra: []any{1, "a", map[string]any{"k": nil}}}),
	}
	for _, body := range good {
		ctype := ContentTypeMsgpack
		if body[0] == '[' {
			ctype = ContentTypeJSON
		}
		// Every truncation fails cleanly.
		for n := 0; n < len(body); n++ {
			_, err := DecodeBody(ctype, "", body[:n], &mixedArgs{})
			require.Error(t, err)
			_, _ = DecodeBody(ctype, "", body[:n], &addArgs{})
		}
	}
	// Huge declared lengths and deep nesting.
	for _, body := range [][]byte{
		{0x93, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x93, 0x91, 0xdb, 0xff, 0xff, 0xff, 0xff},
		{0x93, 0x90, 0xdf, 0xff, 0xff, 0xff, 0xff},
		append([]byte{0x93, 0x90, 0x80}, bytes.Repeat([]byte{0x91}, 20000)...),
		{0x93, 0x91, 0xc7, 0xff, 0xff},
	} {
		_, err := DecodeBody(ContentTypeMsgpack, "", body, &mixedArgs{})
		require.Error(t, err)
	}
	deep := "[[], {}, " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "]"
	_, err := DecodeBody(ContentTypeJSON, "", []byte(deep), &addArgs{})
	require.Error(t, err)
	// The Value path is protected by the validating skip.
	body := append([]byte{0x93, 0x9a}, bytes.Repeat([]byte{0xc0}, 9)...)
	body = append(body, bytes.Repeat([]byte{0x91}, 20000)...)
	_, err = DecodeBody(ContentTypeMsgpack, "", body, &mixedArgs{})
	require.Error(t, err)
}

func TestWire_AppendBodyErrors(t *testing.T) {
	bad := &mixedArgs{Extra: func() {}}
	for _, ser := range []string{SerializerJSON, SerializerMsgpack} {
		dst := []byte("keep")
		out, err := AppendBody(dst, ser, bad, nil)
		require.Error(t, err)
		require.Equal(t, "keep", string(out))
	}
	_, err := AppendBody(nil, "pickle", &addArgs{}, nil)
	require.ErrorContains(t, err, "unknown serializer")
	_, err = DecodeBody("application/x-python-serialize", "", nil, &addArgs{})
	require.ErrorContains(t, err, "not accepted")
}

func TestWire_FormatTime(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	tm := time.Date(2026, 11, 23, 20, 42, 38, 281413999, loc)
	require.Equal(t, "2026-11-23T19:42:38.281413+00:00", FormatTime(tm), "UTC, 6 digits truncated, +00:00")
	require.Equal(t, "2026-11-23T19:42:38.000000+00:00", FormatTime(time.Date(2026, 11, 23, 19, 42, 38, 0, time.UTC)))
	require.Equal(t, "x2026-11-23T19:42:38.281413+00:00", string(AppendTime([]byte("x"), tm)))
	for _, s := range []string{"2026-11-23T19:42:38.281413+00:00", "2026-11-23T19:42:38.281413Z", "2026-11-23T19:42:38.281413",
		"2026-11-23 19:42:38.281413", "2026-11-23T20:42:38.281413+01:00", "2026-11-23T20:42:38.281413+0100"} {
		p, err := ParseTime(s)
		require.NoError(t, err, s)
		require.Equal(t, "2026-11-23T19:42:38.281413+00:00", FormatTime(p), s)
	}
	_, err := ParseTime("2026-11-23T19:42:38.281413+00:00junk")
	require.Error(t, err)
}

func TestWire_BinaryBytesJSON(t *testing.T) {
	for _, data := range [][]byte{{0xff, 0x00, 0x80}, []byte("text"), {}, nil} {
		b := encodeBody(t, SerializerJSON, &mixedArgs{Data: data})
		if len(data) > 0 && !utf8Valid(data) {
			require.Contains(t, string(b), `{"__type__": "base64", "__value__": "/wCA"}`)
		}
		var out mixedArgs
		_, err := DecodeBody(ContentTypeJSON, "", b, &out)
		require.NoError(t, err)
		require.Equal(t, data, out.Data)
	}
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\x00x") == string(b) }

func TestWire_Repr(t *testing.T) {
	require.Equal(t, "(2, 3, 1)", ArgsRepr(&addArgs{2, 3, 1}))
	require.Equal(t, "(21,)", ArgsRepr(&oneIntArgs{21}))
	require.Equal(t, `("it's",)`, ArgsRepr(&emailArgs{"it's"}))
	when := time.Date(2026, 11, 23, 19, 42, 38, 281413000, time.UTC)
	require.Equal(t, `(1, 'n', -2, 3, 0.5, True, b'\x00', '2026-11-23T19:42:38.281413+00:00', [{'price': 1, 'qty': 2, 'sku': 'a'}], {'a': [1, None]})`,
		ArgsRepr(&mixedArgs{UserID: 1, Name: "n", Small: -2, Port: 3, Ratio: 0.5, OK: true, Data: []byte{0}, When: when,
			Items: []item{{SKU: "a", Qty: 2, Price: 1}}, Extra: map[string]any{"a": []any{int8(1), nil}}}))
	require.Equal(t, "1.0", Repr(float32(1)))
}

func TestWire_TimePointer(t *testing.T) {
	want := time.Date(2026, 11, 23, 19, 42, 38, 281413000, time.UTC)
	var p *time.Time
	require.NoError(t, JSONDecodeInto([]byte(`"2026-11-23T19:42:38.281413"`), &p))
	require.True(t, want.Equal(*p))
	require.NoError(t, JSONDecodeInto([]byte(`null`), &p))
	require.Nil(t, p)
	raw, _ := MsgpackMarshal("2026-11-23T19:42:38.281413")
	require.NoError(t, MsgpackDecodeInto(raw, &p))
	require.True(t, want.Equal(*p))
	require.NoError(t, MsgpackDecodeInto([]byte{0xc0}, &p))
	require.Nil(t, p)
	// Sent as Celery's ISO string.
	b, err := MsgpackAppendValue(nil, &want)
	require.NoError(t, err)
	require.Equal(t, MsgpackAppendString(nil, "2026-11-23T19:42:38.281413+00:00"), b)
}
