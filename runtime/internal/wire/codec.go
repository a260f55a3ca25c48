package wire

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Serializer names accepted in Config.
const (
	SerializerMsgpack = "msgpack"
	SerializerJSON    = "json"
)

func ContentTypeOf(serializer string) (ctype, cenc string, err error) {
	switch serializer {
	case "", SerializerMsgpack:
		return ContentTypeMsgpack, ContentEncodingBinary, nil
	case SerializerJSON:
		return ContentTypeJSON, ContentEncodingUTF8, nil
	}
	return "", "", fmt.Errorf("unknown serializer %q (want %q or %q)", serializer, SerializerMsgpack, SerializerJSON)
}

// ArgError is a task argument that could not be decoded. A task whose
// arguments do not decode fails (FAILURE), without retries.
type ArgError struct {
	Index int
	Name  string // Go parameter name, "" when unknown
	Err   error
}

func (e *ArgError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("argument %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("argument %q: %v", e.Name, e.Err)
}

func (e *ArgError) Unwrap() error { return e.Err }

// ---- msgpack writer ----

type mpArgWriter struct {
	b   []byte
	err error
}

func (w *mpArgWriter) String(v string) { w.b = MsgpackAppendString(w.b, v) }
func (w *mpArgWriter) Int(v int64)     { w.b = mpAppendInt(w.b, v) }
func (w *mpArgWriter) Uint(v uint64)   { w.b = mpAppendUint(w.b, v) }
func (w *mpArgWriter) Float(v float64) { w.b = mpAppendFloat(w.b, v) }
func (w *mpArgWriter) Bool(v bool)     { w.b = mpAppendBool(w.b, v) }
func (w *mpArgWriter) Bytes(v []byte)  { w.b = mpAppendBytes(w.b, v) }
func (w *mpArgWriter) Value(v any) error {
	b, err := MsgpackAppendValue(w.b, v)
	if err != nil {
		// Keep the array well-formed; the error fails the whole body.
		w.b = mpAppendNil(w.b)
		if w.err == nil {
			w.err = err
		}
		return err
	}
	w.b = b
	return nil
}

// mpEmbedEmpty is Celery's embed map with every field null, in msgpack.
var mpEmbedEmpty = func() []byte {
	b := MsgpackAppendMapLen(nil, 4)
	for _, k := range []string{"callbacks", "errbacks", "chain", "chord"} {
		b = MsgpackAppendString(b, k)
		b = mpAppendNil(b)
	}
	return b
}()

const jsonEmbedEmpty = `{"callbacks": null, "errbacks": null, "chain": null, "chord": null}`

// Writers are pooled: handing a writer to Args.EncodeArgs (an interface call)
// would otherwise move it to the heap on every call.
var (
	mpWriterPool   = sync.Pool{New: func() any { return new(mpArgWriter) }}
	jsonWriterPool = sync.Pool{New: func() any { return new(jsonArgWriter) }}
)

// AppendBody appends the body [args, {}, embed] of a call to dst, serialized
// with serializer ("msgpack" or "json"): a 3-element array in both, as Celery
// requires. embed is the raw serialized embed map (nil for Celery's empty one,
// {"callbacks": null, "errbacks": null, "chain": null, "chord": null}).
// Arguments are always positional; kwargs is empty. With a dst of enough
// capacity, AppendBody does not allocate for basic argument types.
func AppendBody(dst []byte, serializer string, args Args, embed []byte) ([]byte, error) {
	switch serializer {
	case "", SerializerMsgpack:
		w := mpWriterPool.Get().(*mpArgWriter)
		w.b = append(dst, 0x93)
		w.b = MsgpackAppendArrayLen(w.b, args.NumArgs())
		err := args.EncodeArgs(w)
		if err == nil {
			err = w.err
		}
		out := w.b
		*w = mpArgWriter{}
		mpWriterPool.Put(w)
		if err != nil {
			return dst, err
		}
		out = append(out, 0x80)
		if embed == nil {
			embed = mpEmbedEmpty
		}
		return append(out, embed...), nil
	case SerializerJSON:
		w := jsonWriterPool.Get().(*jsonArgWriter)
		w.b = append(dst, "[["...)
		err := args.EncodeArgs(w)
		if err == nil {
			err = w.err
		}
		out := w.b
		*w = jsonArgWriter{}
		jsonWriterPool.Put(w)
		if err != nil {
			return dst, err
		}
		out = append(out, "], {}, "...)
		if embed == nil {
			out = append(out, jsonEmbedEmpty...)
		} else {
			out = append(out, embed...)
		}
		return append(out, ']'), nil
	}
	_, _, err := ContentTypeOf(serializer)
	return dst, err
}

// ---- JSON writer ----

type jsonArgWriter struct {
	b   []byte
	n   int
	err error
}

func (w *jsonArgWriter) sep() {
	if w.n > 0 {
		w.b = append(w.b, ", "...)
	}
	w.n++
}

func (w *jsonArgWriter) String(v string) { w.sep(); w.b = appendJSONString(w.b, v) }
func (w *jsonArgWriter) Int(v int64)     { w.sep(); w.b = strconv.AppendInt(w.b, v, 10) }
func (w *jsonArgWriter) Uint(v uint64)   { w.sep(); w.b = strconv.AppendUint(w.b, v, 10) }
func (w *jsonArgWriter) Float(v float64) { w.sep(); w.b = appendJSONFloat(w.b, v) }
func (w *jsonArgWriter) Bool(v bool)     { w.sep(); w.b = strconv.AppendBool(w.b, v) }
func (w *jsonArgWriter) Bytes(v []byte) {
	w.sep()
	w.b = appendJSONBytes(w.b, v)
}

// appendJSONBytes appends bytes as Python's json can carry them: UTF-8 text
// as a string (what a kombu 5.2 caller sends for bytes), anything else as
// kombu >= 5.3's {"__type__": "base64", "__value__": ...}, so no byte is
// lost; nil is null.
func appendJSONBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	if utf8.Valid(v) {
		return appendJSONString(b, string(v))
	}
	b = append(b, `{"__type__": "base64", "__value__": "`...)
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, `"}`...)
}
func (w *jsonArgWriter) Value(v any) error {
	w.sep()
	b, err := appendJSONValue(w.b, v)
	if err != nil {
		w.b = append(w.b, "null"...)
		if w.err == nil {
			w.err = err
		}
		return err
	}
	w.b = b
	return nil
}

// appendJSONValue appends v as JSON: basic values, []any and map[string]any
// directly (floats may be NaN or ±Infinity, as Python writes them; a time.Time
// is Celery's ISO-8601 string), anything else through encoding/json.
func appendJSONValue(b []byte, v any) ([]byte, error) { return AppendJSONValue(b, v) }

// AppendJSONValue appends a decoded header or argument value (nil, bool,
// integers, floats, strings, json.Number, time.Time as Celery's ISO string,
// []any, map[string]any with sorted keys, anything else through
// encoding/json) as JSON, with Python's separators.
func AppendJSONValue(b []byte, v any) ([]byte, error) {
	return appendJSONValueDepth(b, v, 0)
}

func appendJSONValueDepth(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxNesting {
		return b, errNesting
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case float64:
		return appendJSONFloat(b, x), nil
	case float32:
		return appendJSONFloat(b, float64(x)), nil
	case json.Number:
		if !isJSONNumber([]byte(x)) {
			return b, fmt.Errorf("invalid json.Number %q", string(x))
		}
		return append(b, x...), nil
	case time.Time:
		return appendJSONString(b, FormatTime(x)), nil
	case *time.Time:
		if x == nil {
			return append(b, "null"...), nil
		}
		return appendJSONString(b, FormatTime(*x)), nil
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			var err error
			if b, err = appendJSONValueDepth(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(x)) {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendJSONString(b, k)
			b = append(b, ": "...)
			var err error
			if b, err = appendJSONValueDepth(b, x[k], depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, raw...), nil
}

func isJSONNumber(b []byte) bool {
	d := JSONDecoder{b: b}
	_, err := d.number()
	return err == nil && d.i == len(b) && len(b) > 0
}

func appendJSONFloat(b []byte, f float64) []byte { return AppendJSONFloat(b, f) }

// AppendJSONFloat appends f as Python's json.dumps writes a float: NaN,
// Infinity and -Infinity as Python's tokens, integral values with ".0", and
// positional notation between 1e-4 and 1e16, exponent notation outside (repr).
func AppendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	start := len(b)
	if a := math.Abs(f); a == 0 || (a >= 1e-4 && a < 1e16) {
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
	} else {
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	if !bytes.ContainsAny(b[start:], ".eEn") {
		b = append(b, ".0"...)
	}
	return b
}

const HexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte { return AppendJSONString(b, s) }

// AppendJSONString appends s as a JSON string, ASCII-only as Python's
// json.dumps writes it by default; invalid UTF-8 becomes U+FFFD.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', HexDigits[c>>4], HexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		b = append(b, s[start:i]...)
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r >= 0x10000 {
			r -= 0x10000
			hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
			b = appendU4(appendU4(b, hi), lo)
		} else {
			b = appendU4(b, r)
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', HexDigits[r>>12&0xf], HexDigits[r>>8&0xf], HexDigits[r>>4&0xf], HexDigits[r&0xf])
}

// ---- body decoding ----

// DecodeBody decodes a task body [args, kwargs, embed] into args, honouring
// the content type and the compression header. Arguments may be positional,
// keyword (by the Go parameter name or its snake_case form, through
// Args.ArgIndex) or both. It returns the raw embed (serialized as the body
// was; it may alias body), or nil when it is null. Errors from individual
// arguments are *ArgError, naming the parameter.
func DecodeBody(contentType, compression string, body []byte, args Args) (embed []byte, err error) {
	if compression != "" {
		if body, err = decompress(compression, body); err != nil {
			return nil, err
		}
	}
	switch contentType {
	case ContentTypeMsgpack, "application/msgpack", "application/x-msgpack; charset=binary":
		return decodeMsgpackBody(body, args)
	case ContentTypeJSON, "application/json; charset=utf-8":
		return decodeJSONBody(body, args)
	}
	return nil, fmt.Errorf("content type %q not accepted (want %s or %s)", contentType, ContentTypeMsgpack, ContentTypeJSON)
}

// MaxDecompressedSize bounds a decompressed body.
const MaxDecompressedSize = 64 << 20

// Compression types understood in the compression header.
const (
	// CompressionZlib is kombu's "gzip" compressor, which is zlib.compress:
	// RFC 1950 data, despite the name.
	CompressionZlib = "application/x-gzip"
	// CompressionBzip2 is kombu's "bzip2" compressor.
	CompressionBzip2 = "application/x-bz2"
)

func decompress(kind string, body []byte) ([]byte, error) {
	var r io.Reader
	switch kind {
	case CompressionZlib, "zlib", "application/zlib", "gzip":
		// kombu's "gzip" compressor is zlib.compress: RFC 1950 data.
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", kind, err)
		}
		defer zr.Close()
		r = zr
	case CompressionBzip2, "bzip2":
		r = bzip2.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("compression %q not supported (supported: %s, %s)", kind, CompressionZlib, CompressionBzip2)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressedSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", kind, err)
	}
	if len(out) > MaxDecompressedSize {
		return nil, fmt.Errorf("decompress %s: body larger than %d bytes", kind, MaxDecompressedSize)
	}
	return out, nil
}

var errBodyShape = errors.New("body is not a 3-element array [args, kwargs, embed]")

// bodyDecoder holds the per-call decoding state. It is pooled so that the
// readers handed to Args.DecodeArg (an interface call) are not allocated per
// message: decoding basic arguments allocates only strings and byte slices.
type bodyDecoder struct {
	mp   MsgpackDecoder
	mr   mpArgReader
	jd   JSONDecoder
	jr   jsonArgReader
	seen [64]bool
}

var bodyDecoderPool = sync.Pool{New: func() any {
	bd := new(bodyDecoder)
	bd.mr.d = &bd.mp
	return bd
}}

func getBodyDecoder() *bodyDecoder { return bodyDecoderPool.Get().(*bodyDecoder) }

func (bd *bodyDecoder) release() {
	bd.mp = MsgpackDecoder{}
	bd.jd = JSONDecoder{}
	bd.jr.raw = nil
	bd.seen = [64]bool{}
	bodyDecoderPool.Put(bd)
}

// seenSlice returns n cleared flags, on the decoder for up to 64 arguments.
func (bd *bodyDecoder) seenSlice(n int) []bool {
	if n <= len(bd.seen) {
		return bd.seen[:n]
	}
	return make([]bool, n)
}

func tooManyArgs(n int, args Args) error {
	return fmt.Errorf("%d positional arguments given, the task takes %d", n, args.NumArgs())
}

// kwargIndex resolves a keyword argument; npos arguments were positional.
func kwargIndex(key []byte, npos int, args Args) (int, error) {
	i := args.ArgIndex(string(key))
	if i < 0 || i >= args.NumArgs() {
		return -1, fmt.Errorf("unexpected keyword argument %q", key)
	}
	if i < npos {
		return -1, fmt.Errorf("got multiple values for argument %q", args.ArgName(i))
	}
	return i, nil
}

func decodeMsgpackBody(body []byte, args Args) ([]byte, error) {
	bd := getBodyDecoder()
	defer bd.release()
	d := &bd.mp
	d.b = body
	n, err := d.arrayLen()
	if err != nil || n != 3 {
		return nil, errBodyShape
	}
	nargs := args.NumArgs()
	seen := bd.seenSlice(nargs)
	npos, err := d.arrayLen()
	if err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	if npos > nargs {
		return nil, tooManyArgs(npos, args)
	}
	r := &bd.mr
	for i := 0; i < npos; i++ {
		start := d.i
		if err := args.DecodeArg(i, r); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		if err := d.settle(start); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		seen[i] = true
	}
	nkw, err := d.MapLen()
	if err != nil {
		return nil, fmt.Errorf("kwargs: %w", err)
	}
	for j := 0; j < nkw; j++ {
		key, err := d.StrBytes(true)
		if err != nil {
			return nil, fmt.Errorf("kwargs: %w", err)
		}
		i, err := kwargIndex(key, max(npos, 0), args)
		if err != nil {
			return nil, err
		}
		start := d.i
		if err := args.DecodeArg(i, r); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		if err := d.settle(start); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		seen[i] = true
	}
	if err := checkMissing(seen, args); err != nil {
		return nil, err
	}
	var embed []byte
	if c, err := d.peek(); err == nil && c == 0xc0 {
		d.i++
	} else if embed, err = d.Raw(); err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	if d.i != len(d.b) {
		return nil, errors.New("extra data after the body")
	}
	return embed, nil
}

// settle makes sure the value that started at start was consumed exactly once:
// an Args implementation that read nothing (or whose reader failed midway
// without an error) must not desynchronize the stream.
func (d *MsgpackDecoder) settle(start int) error {
	if d.i > start {
		return nil
	}
	d.i = start
	return d.Skip()
}

// ArgDefaults may be implemented by an Args whose trailing parameters are
// optional, like Python parameters with defaults: a call may omit the
// arguments at index NumRequired() and above, which then keep the values the
// Args held before decoding (set them in TaskDef.NewArgs).
type ArgDefaults interface {
	NumRequired() int
}

func checkMissing(seen []bool, args Args) error {
	required := len(seen)
	if ad, ok := args.(ArgDefaults); ok {
		required = max(0, min(required, ad.NumRequired()))
	}
	for i, ok := range seen[:required] {
		if !ok {
			return fmt.Errorf("missing argument %q", args.ArgName(i))
		}
	}
	return nil
}

type mpArgReader struct{ d *MsgpackDecoder }

func (r *mpArgReader) String() (string, error) {
	s, err := r.d.StrBytes(true)
	return string(s), err
}

func (r *mpArgReader) Bytes() ([]byte, error) {
	c, err := r.d.peek()
	if err != nil {
		return nil, err
	}
	if c == 0xc0 {
		r.d.i++
		return nil, nil
	}
	s, err := r.d.StrBytes(true)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(s), nil
}

func (r *mpArgReader) Bool() (bool, error) {
	c, err := r.d.byte1()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	r.d.i--
	return false, fmt.Errorf("want a bool, got a %s", mpTypeName(c))
}

func (r *mpArgReader) Int(bits int) (int64, error) {
	i, u, f, kind, err := r.d.number()
	if err != nil {
		return 0, err
	}
	return intFrom(i, u, f, kind, bits)
}

func (r *mpArgReader) Uint(bits int) (uint64, error) {
	i, u, f, kind, err := r.d.number()
	if err != nil {
		return 0, err
	}
	return uintFrom(i, u, f, kind, bits)
}

func (r *mpArgReader) Float(bits int) (float64, error) {
	i, u, f, kind, err := r.d.number()
	if err != nil {
		return 0, err
	}
	return floatFrom(i, u, f, kind, bits)
}

func (r *mpArgReader) Value(ptr any) error {
	raw, err := r.d.Raw()
	if err != nil {
		return err
	}
	return MsgpackDecodeInto(raw, ptr)
}

// normBits maps a bit size to 8, 16, 32 or 64 (anything else is 64).
func normBits(bits int) int {
	switch bits {
	case 8, 16, 32:
		return bits
	}
	return 64
}

// intFrom converts a decoded number to a signed integer of the given bit
// size: integers when in range, floats only when integral and in range
// (1.0 is 1; 1.5 and 2^63 fail).
func intFrom(i int64, u uint64, f float64, kind byte, bits int) (int64, error) {
	bits = normBits(bits)
	switch kind {
	case 'u':
		return 0, fmt.Errorf("%d overflows int%d", u, bits)
	case 'f':
		if f != math.Trunc(f) || math.IsInf(f, 0) || f < -(1<<63) || f >= 1<<63 {
			return 0, fmt.Errorf("%v is not an int%d", f, bits)
		}
		i = int64(f)
	}
	if bits < 64 {
		lim := int64(1) << (bits - 1)
		if i < -lim || i >= lim {
			return 0, fmt.Errorf("%d overflows int%d", i, bits)
		}
	}
	return i, nil
}

// uintFrom is intFrom for unsigned integers.
func uintFrom(i int64, u uint64, f float64, kind byte, bits int) (uint64, error) {
	bits = normBits(bits)
	switch kind {
	case 'i':
		if i < 0 {
			return 0, fmt.Errorf("%d is negative, want uint%d", i, bits)
		}
		u = uint64(i)
	case 'f':
		if f != math.Trunc(f) || f < 0 || f >= 1<<64 {
			return 0, fmt.Errorf("%v is not a uint%d", f, bits)
		}
		u = uint64(f)
	}
	if bits < 64 && u >= uint64(1)<<bits {
		return 0, fmt.Errorf("%d overflows uint%d", u, bits)
	}
	return u, nil
}

// floatFrom converts a decoded number to a float; integers are accepted
// (Python's 1 for a float parameter).
func floatFrom(i int64, u uint64, f float64, kind byte, bits int) (float64, error) {
	switch kind {
	case 'i':
		f = float64(i)
	case 'u':
		f = float64(u)
	}
	if bits == 32 && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
		return 0, fmt.Errorf("%v overflows float32", f)
	}
	return f, nil
}

// ---- JSON reader ----

func decodeJSONBody(body []byte, args Args) ([]byte, error) {
	bd := getBodyDecoder()
	defer bd.release()
	d := &bd.jd
	d.b = body
	if d.Peek() != '[' {
		return nil, errBodyShape
	}
	d.i++
	nargs := args.NumArgs()
	seen := bd.seenSlice(nargs)
	r := &bd.jr
	npos := 0
	switch d.Peek() {
	case 'n':
		if !d.lit("null") {
			return nil, errBodyShape
		}
	case '[':
		d.i++
		first := true
		for {
			more, err := d.More(']', &first)
			if err != nil {
				return nil, fmt.Errorf("args: %w", err)
			}
			if !more {
				break
			}
			if npos >= nargs {
				return nil, fmt.Errorf("more than %d positional arguments given, the task takes %d", nargs, nargs)
			}
			if r.raw, err = d.Raw(); err != nil {
				return nil, fmt.Errorf("args: %w", err)
			}
			if err := args.DecodeArg(npos, r); err != nil {
				return nil, &ArgError{Index: npos, Name: args.ArgName(npos), Err: err}
			}
			seen[npos] = true
			npos++
		}
	default:
		return nil, errors.New("args: want an array")
	}
	if !d.Expect(',') {
		return nil, errBodyShape
	}
	switch d.Peek() {
	case 'n':
		if !d.lit("null") {
			return nil, errBodyShape
		}
	case '{':
		d.i++
		first := true
		for {
			more, err := d.More('}', &first)
			if err != nil {
				return nil, fmt.Errorf("kwargs: %w", err)
			}
			if !more {
				break
			}
			key, err := d.Key()
			if err != nil {
				return nil, fmt.Errorf("kwargs: %w", err)
			}
			i, err := kwargIndex(key, npos, args)
			if err != nil {
				return nil, err
			}
			if r.raw, err = d.Raw(); err != nil {
				return nil, fmt.Errorf("kwargs: %w", err)
			}
			if err := args.DecodeArg(i, r); err != nil {
				return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
			}
			seen[i] = true
		}
	default:
		return nil, errors.New("kwargs: want an object")
	}
	if err := checkMissing(seen, args); err != nil {
		return nil, err
	}
	if !d.Expect(',') {
		return nil, errBodyShape
	}
	var embed []byte
	if d.Peek() == 'n' && d.lit("null") {
		embed = nil
	} else {
		var err error
		if embed, err = d.Raw(); err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
	}
	if !d.Expect(']') {
		return nil, errBodyShape
	}
	if d.Peek() != 0 || d.i != len(d.b) {
		return nil, errors.New("extra data after the body")
	}
	return embed, nil
}

type jsonArgReader struct{ raw []byte }

func (r *jsonArgReader) String() (string, error) {
	if len(r.raw) > 0 && r.raw[0] == '"' {
		return jsonUnquote(r.raw), nil
	}
	if len(r.raw) > 0 && r.raw[0] == '{' {
		// kombu >= 5.3 sends uuid.UUID, Decimal, dates and bytes as tagged
		// objects where kombu 5.2 sent strings.
		v, err := jsonValueOf(r.raw, UntagGo)
		switch x := v.(type) {
		case string:
			if err == nil {
				return x, nil
			}
		case []byte:
			return string(x), nil
		case time.Time:
			return FormatTime(x), nil
		}
	}
	return "", fmt.Errorf("want a string, got %s", abbrev(r.raw))
}

func (r *jsonArgReader) Bytes() ([]byte, error) {
	if len(r.raw) > 0 {
		switch r.raw[0] {
		case 'n':
			return nil, nil
		case '"':
			return []byte(jsonUnquote(r.raw)), nil
		case '{':
			// kombu >= 5.3: {"__type__": "bytes"|"base64", "__value__": ...}
			v, err := jsonValueOf(r.raw, UntagGo)
			if b, ok := v.([]byte); ok && err == nil {
				return b, nil
			}
		}
	}
	return nil, fmt.Errorf("want bytes (a string), got %s", abbrev(r.raw))
}

func (r *jsonArgReader) Bool() (bool, error) {
	switch string(r.raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want a bool, got %s", abbrev(r.raw))
}

func (r *jsonArgReader) number() (i int64, u uint64, f float64, kind byte, err error) {
	tok := r.raw
	if len(tok) == 0 || (tok[0] != '-' && (tok[0] < '0' || tok[0] > '9') && tok[0] != 'N' && tok[0] != 'I') {
		return 0, 0, 0, 0, fmt.Errorf("want a number, got %s", abbrev(r.raw))
	}
	switch v := jsonNumber(tok).(type) {
	case int64:
		return v, 0, 0, 'i', nil
	case uint64:
		return 0, v, 0, 'u', nil
	case float64:
		return 0, 0, v, 'f', nil
	}
	return 0, 0, 0, 0, fmt.Errorf("want a number, got %s", abbrev(r.raw))
}

func (r *jsonArgReader) Int(bits int) (int64, error) {
	i, u, f, kind, err := r.number()
	if err != nil {
		return 0, err
	}
	return intFrom(i, u, f, kind, bits)
}

func (r *jsonArgReader) Uint(bits int) (uint64, error) {
	i, u, f, kind, err := r.number()
	if err != nil {
		return 0, err
	}
	return uintFrom(i, u, f, kind, bits)
}

func (r *jsonArgReader) Float(bits int) (float64, error) {
	i, u, f, kind, err := r.number()
	if err != nil {
		return 0, err
	}
	return floatFrom(i, u, f, kind, bits)
}

func (r *jsonArgReader) Value(ptr any) error { return JSONDecodeInto(r.raw, ptr) }

func abbrev(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// jsonNumber converts a validated JSON number token (or NaN, Infinity,
// -Infinity) to int64 when it is an integer literal that fits, uint64 when
// it fits only there, float64 otherwise.
func jsonNumber(tok []byte) any {
	switch string(tok) {
	case "NaN":
		return math.NaN()
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if bytes.IndexAny(tok, ".eE") < 0 {
		if i, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(tok), 10, 64); err == nil {
			return u
		}
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil
	}
	return f
}

// jsonDecodeInto decodes one JSON value into ptr. Generic destinations (*any,
// *[]any, *map[string]any) get int64/uint64/float64 numbers, so integers above
// 2^53 survive, and kombu >= 5.3 type tags decoded (datetime as time.Time);
// *time.Time accepts an ISO-8601 string or a tagged datetime; other types go
// through encoding/json with UseNumber, interface values inside them
// normalized the same way.
func JSONDecodeInto(raw []byte, ptr any) error {
	switch p := ptr.(type) {
	case **time.Time:
		if string(bytes.TrimSpace(raw)) == "null" {
			*p = nil
			return nil
		}
		var t time.Time
		if err := JSONDecodeInto(raw, &t); err != nil {
			return err
		}
		*p = &t
		return nil
	case *time.Time:
		v, err := jsonValueOf(raw, UntagGo)
		if err != nil {
			return err
		}
		switch x := v.(type) {
		case nil:
			*p = time.Time{}
		case time.Time:
			*p = x
		case string:
			t, err := ParseTime(x)
			if err != nil {
				return err
			}
			*p = t
		default:
			return fmt.Errorf("want a time, got %s", abbrev(raw))
		}
		return nil
	case *any, *[]any, *map[string]any:
		v, err := jsonValueOf(raw, UntagGo)
		if err != nil {
			return err
		}
		return assignGeneric(ptr, v)
	case *float64:
		// NaN and ±Infinity, which encoding/json rejects.
		f, err := (&jsonArgReader{raw: bytes.TrimSpace(raw)}).Float(64)
		if err == nil {
			*p = f
		}
		return err
	}
	if bytes.Contains(raw, []byte(`"__type__"`)) || bytes.Contains(raw, []byte("NaN")) || bytes.Contains(raw, []byte("Infinity")) {
		// Tags and non-finite floats are not encoding/json's: rewrite.
		v, err := jsonValueOf(raw, untagText)
		if err != nil {
			return err
		}
		if raw, err = json.Marshal(v); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(ptr); err != nil {
		return err
	}
	normalizeInterfaces(ptr)
	return nil
}

func assignGeneric(ptr, v any) error {
	switch p := ptr.(type) {
	case *any:
		*p = v
	case *[]any:
		switch x := v.(type) {
		case nil:
			*p = nil
		case []any:
			*p = x
		default:
			return fmt.Errorf("want an array, got %T", v)
		}
	case *map[string]any:
		switch x := v.(type) {
		case nil:
			*p = nil
		case map[string]any:
			*p = x
		default:
			return fmt.Errorf("want an object, got %T", v)
		}
	}
	return nil
}

// ---- JSON scanner ----

// jsonDec scans JSON as Python's json module writes it: standard JSON plus
// the NaN, Infinity and -Infinity literals.
type JSONDecoder struct {
	b []byte
	i int
}

func (d *JSONDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *JSONDecoder) Peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *JSONDecoder) Expect(c byte) bool {
	if d.Peek() != c {
		return false
	}
	d.i++
	return true
}

func (d *JSONDecoder) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *JSONDecoder) syntax(what string) error {
	if d.i >= len(d.b) {
		return errors.New("invalid JSON: unexpected end of data")
	}
	return fmt.Errorf("invalid JSON at offset %d: %s", d.i, what)
}

// more steps through an array or object whose opening bracket was read: it
// reports whether another element follows, consuming the separator.
func (d *JSONDecoder) More(closing byte, first *bool) (bool, error) {
	c := d.Peek()
	if c == closing {
		d.i++
		return false, nil
	}
	if !*first {
		if c != ',' {
			return false, d.syntax("want ',' or '" + string(closing) + "'")
		}
		d.i++
	}
	*first = false
	return true, nil
}

// key reads an object key and its colon. The result may alias the input.
func (d *JSONDecoder) Key() ([]byte, error) {
	if d.Peek() != '"' {
		return nil, d.syntax("want an object key")
	}
	start := d.i
	esc, err := d.skipString()
	if err != nil {
		return nil, err
	}
	k := d.b[start+1 : d.i-1]
	if esc {
		k = []byte(jsonUnquote(d.b[start:d.i]))
	}
	if !d.Expect(':') {
		return nil, d.syntax("want ':'")
	}
	return k, nil
}

// raw returns the bytes of the next value and advances past it.
func (d *JSONDecoder) Raw() ([]byte, error) {
	d.ws()
	start := d.i
	if err := d.Skip(0); err != nil {
		return nil, err
	}
	return d.b[start:d.i], nil
}

// skip advances past one value, validating it.
func (d *JSONDecoder) Skip(depth int) error {
	if depth > maxNesting {
		return errNesting
	}
	switch c := d.Peek(); {
	case c == '"':
		_, err := d.skipString()
		return err
	case c == '{':
		d.i++
		first := true
		for {
			more, err := d.More('}', &first)
			if err != nil || !more {
				return err
			}
			if _, err := d.Key(); err != nil {
				return err
			}
			if err := d.Skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '[':
		d.i++
		first := true
		for {
			more, err := d.More(']', &first)
			if err != nil || !more {
				return err
			}
			if err := d.Skip(depth + 1); err != nil {
				return err
			}
		}
	case c == 't':
		if d.lit("true") {
			return nil
		}
	case c == 'f':
		if d.lit("false") {
			return nil
		}
	case c == 'n':
		if d.lit("null") {
			return nil
		}
	case c == 'N':
		if d.lit("NaN") {
			return nil
		}
	case c == 'I':
		if d.lit("Infinity") {
			return nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number()
		return err
	}
	return d.syntax("want a value")
}

// number scans a number (or -Infinity) and returns its text.
func (d *JSONDecoder) number() ([]byte, error) {
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
		if d.lit("Infinity") {
			return d.b[start:d.i], nil
		}
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	intStart := d.i
	n := digits()
	if n == 0 {
		return nil, d.syntax("want a digit")
	}
	if n > 1 && d.b[intStart] == '0' {
		return nil, d.syntax("leading zero")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.syntax("want a digit")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.syntax("want a digit")
		}
	}
	return d.b[start:d.i], nil
}

// skipString advances past a string (at its opening quote) and reports
// whether it holds escapes.
func (d *JSONDecoder) skipString() (escaped bool, err error) {
	d.i++
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if d.i+1 >= len(d.b) {
				return false, d.syntax("unterminated string")
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.b) || hex4(d.b[d.i+2:d.i+6]) < 0 {
					return false, d.syntax("bad \\u escape")
				}
				d.i += 6
			default:
				return false, d.syntax("bad escape")
			}
		case c < 0x20:
			return false, d.syntax("control character in string")
		default:
			d.i++
		}
	}
	return false, d.syntax("unterminated string")
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// jsonUnquote decodes a string token validated by skipString (quotes
// included). Lone surrogates become U+FFFD, as in encoding/json.
func jsonUnquote(raw []byte) string {
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s)
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		e := s[i+1]
		i += 2
		switch e {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(s[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hex4(s[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b = append(b, e)
		}
	}
	return string(b)
}

// untagMode says what kombu >= 5.3 type tags ({"__type__": t, "__value__": v})
// become in generic values.
type untagMode int

const (
	UntagGo   untagMode = iota // datetime → time.Time, bytes/base64 → []byte
	untagText                  // every tag → its text, for re-encoding for encoding/json
)

// jsonValueOf decodes one JSON value (the whole of raw) into generic values.
func jsonValueOf(raw []byte, mode untagMode) (any, error) {
	d := JSONDecoder{b: raw}
	v, err := d.Value(0, mode)
	if err != nil {
		return nil, err
	}
	if d.Peek() != 0 || d.i != len(d.b) {
		return nil, errors.New("invalid JSON: extra data after the value")
	}
	return v, nil
}

// value decodes the next value: objects as map[string]any, arrays as []any,
// numbers as jsonNumber does, kombu type tags per mode.
func (d *JSONDecoder) Value(depth int, mode untagMode) (any, error) {
	if depth > maxNesting {
		return nil, errNesting
	}
	switch c := d.Peek(); {
	case c == '"':
		start := d.i
		if _, err := d.skipString(); err != nil {
			return nil, err
		}
		return jsonUnquote(d.b[start:d.i]), nil
	case c == '{':
		d.i++
		m := map[string]any{}
		first := true
		for {
			more, err := d.More('}', &first)
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
			k, err := d.Key()
			if err != nil {
				return nil, err
			}
			if m[string(k)], err = d.Value(depth+1, mode); err != nil {
				return nil, err
			}
		}
		if len(m) == 2 {
			t, ok1 := m["__type__"]
			v, ok2 := m["__value__"]
			if ok1 && ok2 {
				return untag(t, v, mode)
			}
		}
		return m, nil
	case c == '[':
		d.i++
		l := []any{}
		first := true
		for {
			more, err := d.More(']', &first)
			if err != nil {
				return nil, err
			}
			if !more {
				return l, nil
			}
			v, err := d.Value(depth+1, mode)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
	case c == 't' && d.lit("true"):
		return true, nil
	case c == 'f' && d.lit("false"):
		return false, nil
	case c == 'n' && d.lit("null"):
		return nil, nil
	case c == 'N' && d.lit("NaN"):
		return math.NaN(), nil
	case c == 'I' && d.lit("Infinity"):
		return math.Inf(1), nil
	case c == '-' || (c >= '0' && c <= '9'):
		tok, err := d.number()
		if err != nil {
			return nil, err
		}
		if v := jsonNumber(tok); v != nil {
			return v, nil
		}
	}
	return nil, d.syntax("want a value")
}

// untag decodes a kombu >= 5.3 tagged value.
func untag(typ, val any, mode untagMode) (any, error) {
	t, _ := typ.(string)
	s, isStr := val.(string)
	switch t {
	case "datetime":
		if !isStr {
			break
		}
		if mode == untagText {
			return s, nil
		}
		tm, err := ParseTime(s)
		if err != nil {
			return nil, fmt.Errorf("kombu datetime %q: %w", s, err)
		}
		return tm, nil
	case "date", "time", "decimal":
		if isStr {
			return s, nil
		}
	case "uuid":
		m, _ := val.(map[string]any)
		h, _ := m["hex"].(string)
		if len(h) == 32 {
			if _, err := hex.DecodeString(h); err == nil {
				return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
			}
		}
	case "bytes":
		if isStr {
			if mode == untagText {
				return s, nil
			}
			return []byte(s), nil
		}
	case "base64":
		if isStr {
			if mode == untagText {
				return s, nil // encoding/json decodes []byte from base64
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("kombu base64 value: %w", err)
			}
			return b, nil
		}
	default:
		return nil, fmt.Errorf("unsupported kombu JSON type tag %q", t)
	}
	return nil, fmt.Errorf("bad kombu JSON %q value %v", t, val)
}

// ---- normalization of decoded interface values ----

var ifaceTypes sync.Map // reflect.Type → bool

// mayHoldInterface reports whether values of t can contain interface values.
func mayHoldInterface(t reflect.Type) bool {
	if v, ok := ifaceTypes.Load(t); ok {
		return v.(bool)
	}
	r := mayHoldInterfaceRec(t, map[reflect.Type]bool{})
	ifaceTypes.Store(t, r)
	return r
}

func mayHoldInterfaceRec(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return mayHoldInterfaceRec(t.Elem(), seen)
	case reflect.Map:
		return mayHoldInterfaceRec(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && mayHoldInterfaceRec(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// normalizeInterfaces rewrites the numbers held in empty-interface values
// reachable from ptr to the generic decoders' types: json.Number and every
// integer width to int64 (uint64 above MaxInt64), float32 to float64.
func normalizeInterfaces(ptr any) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	normalizeValue(v.Elem(), 0)
}

func normalizeValue(v reflect.Value, depth int) {
	if depth > maxNesting || !mayHoldInterface(v.Type()) {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() || v.NumMethod() != 0 || !v.CanSet() {
			return
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer || e.Kind() == reflect.Struct {
			return
		}
		v.Set(reflect.ValueOf(normalizeAny(e.Interface(), depth+1)))
	case reflect.Pointer:
		if !v.IsNil() {
			normalizeValue(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				normalizeValue(f, depth+1)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			normalizeValue(v.Index(i), depth+1)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		et := v.Type().Elem()
		iter := v.MapRange()
		for iter.Next() {
			nv := reflect.New(et).Elem()
			nv.Set(iter.Value())
			normalizeValue(nv, depth+1)
			v.SetMapIndex(iter.Key(), nv)
		}
	}
}

func normalizeAny(x any, depth int) any {
	if depth > maxNesting {
		return x
	}
	switch v := x.(type) {
	case json.Number:
		if n := jsonNumber([]byte(v)); n != nil {
			return n
		}
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint:
		return normalizeAny(uint64(v), depth)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case float32:
		return float64(v)
	case []any:
		for i := range v {
			v[i] = normalizeAny(v[i], depth+1)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeAny(e, depth+1)
		}
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			ks, err := mapKeyString(normalizeAny(k, depth+1))
			if err != nil {
				ks = fmt.Sprint(k)
			}
			m[ks] = normalizeAny(e, depth+1)
		}
		return m
	}
	return x
}
