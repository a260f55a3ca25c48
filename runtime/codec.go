package runtime

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// Serializer names accepted in Config.
const (
	SerializerMsgpack = "msgpack"
	SerializerJSON    = "json"
)

func contentTypeOf(serializer string) (ctype, cenc string, err error) {
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

func (w *mpArgWriter) String(v string) { w.b = mpAppendString(w.b, v) }
func (w *mpArgWriter) Int(v int64)     { w.b = mpAppendInt(w.b, v) }
func (w *mpArgWriter) Uint(v uint64)   { w.b = mpAppendUint(w.b, v) }
func (w *mpArgWriter) Float(v float64) { w.b = mpAppendFloat(w.b, v) }
func (w *mpArgWriter) Bool(v bool)     { w.b = mpAppendBool(w.b, v) }
func (w *mpArgWriter) Bytes(v []byte)  { w.b = mpAppendBytes(w.b, v) }
func (w *mpArgWriter) Value(v any) error {
	b, err := mpAppendValue(w.b, v)
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return err
	}
	w.b = b
	return nil
}

// embedEmpty is Celery's embed map with every field null, in msgpack.
var mpEmbedEmpty = func() []byte {
	b := mpAppendMapLen(nil, 4)
	for _, k := range []string{"callbacks", "errbacks", "chain", "chord"} {
		b = mpAppendString(b, k)
		b = mpAppendNil(b)
	}
	return b
}()

const jsonEmbedEmpty = `{"callbacks": null, "errbacks": null, "chain": null, "chord": null}`

// AppendBody appends the body [args, {}, embed] of a call to dst, serialized
// with serializer ("msgpack" or "json"). embed is the raw serialized embed map
// (nil for none).
func AppendBody(dst []byte, serializer string, args Args, embed []byte) ([]byte, error) {
	switch serializer {
	case "", SerializerMsgpack:
		w := mpArgWriter{b: dst}
		w.b = append(w.b, 0x93)
		w.b = mpAppendArrayLen(w.b, args.NumArgs())
		if err := args.EncodeArgs(&w); err != nil {
			return dst, err
		}
		if w.err != nil {
			return dst, w.err
		}
		w.b = append(w.b, 0x80)
		if embed == nil {
			embed = mpEmbedEmpty
		}
		return append(w.b, embed...), nil
	case SerializerJSON:
		w := jsonArgWriter{b: append(dst, "[["...)}
		if err := args.EncodeArgs(&w); err != nil {
			return dst, err
		}
		if w.err != nil {
			return dst, w.err
		}
		w.b = append(w.b, "], {}, "...)
		if embed == nil {
			w.b = append(w.b, jsonEmbedEmpty...)
		} else {
			w.b = append(w.b, embed...)
		}
		return append(w.b, ']'), nil
	}
	_, _, err := contentTypeOf(serializer)
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
	// Python's json has no bytes: send them as text, as kombu 5.2 does for
	// utf-8 bytes.
	w.sep()
	w.b = appendJSONString(w.b, string(v))
}
func (w *jsonArgWriter) Value(v any) error {
	w.sep()
	raw, err := json.Marshal(v)
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		w.b = append(w.b, "null"...)
		return err
	}
	w.b = append(w.b, raw...)
	return nil
}

func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	if !bytes.ContainsAny(b[start:], ".eEn") {
		b = append(b, ".0"...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, ASCII-only as Python's json.dumps
// writes it by default.
func appendJSONString(b []byte, s string) []byte {
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
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
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
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// ---- body decoding ----

// DecodeBody decodes a task body [args, kwargs, embed] into args, honouring
// the content type and the compression header. It returns the raw embed
// (serialized as the body was), or nil when it is null. Errors from individual
// arguments are *ArgError.
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

func decompress(kind string, body []byte) ([]byte, error) {
	var r io.Reader
	switch kind {
	case "application/x-gzip", "zlib", "application/zlib":
		// kombu's "gzip" compressor is zlib.compress: RFC 1950 data.
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", kind, err)
		}
		defer zr.Close()
		r = zr
	case "application/x-bz2", "bzip2":
		r = bzip2.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("compression %q not supported (supported: application/x-gzip, application/x-bz2)", kind)
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

func decodeMsgpackBody(body []byte, args Args) ([]byte, error) {
	d := mpDec{b: body}
	n, err := d.arrayLen()
	if err != nil || n != 3 {
		return nil, errBodyShape
	}
	seen := make([]bool, args.NumArgs())
	npos, err := d.arrayLen()
	if err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	if npos > args.NumArgs() {
		return nil, fmt.Errorf("%d positional arguments given, the task takes %d", npos, args.NumArgs())
	}
	r := mpArgReader{d: &d}
	for i := 0; i < npos; i++ {
		if err := args.DecodeArg(i, &r); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		seen[i] = true
	}
	nkw, err := d.mapLen()
	if err != nil {
		return nil, fmt.Errorf("kwargs: %w", err)
	}
	for j := 0; j < nkw; j++ {
		key, err := d.strBytes(false)
		if err != nil {
			return nil, fmt.Errorf("kwargs: %w", err)
		}
		i := args.ArgIndex(string(key))
		if i < 0 {
			return nil, fmt.Errorf("unexpected keyword argument %q", key)
		}
		if seen[i] {
			return nil, fmt.Errorf("argument %q given twice", args.ArgName(i))
		}
		if err := args.DecodeArg(i, &r); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		seen[i] = true
	}
	if err := checkMissing(seen, args); err != nil {
		return nil, err
	}
	if c, err := d.peek(); err == nil && c == 0xc0 {
		return nil, nil
	}
	embed, err := d.raw()
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	return embed, nil
}

func checkMissing(seen []bool, args Args) error {
	for i, ok := range seen {
		if !ok {
			return fmt.Errorf("missing argument %q", args.ArgName(i))
		}
	}
	return nil
}

type mpArgReader struct{ d *mpDec }

func (r *mpArgReader) String() (string, error) {
	s, err := r.d.strBytes(false)
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
	s, err := r.d.strBytes(true)
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

func (r *mpArgReader) Value(ptr any) error {
	raw, err := r.d.raw()
	if err != nil {
		return err
	}
	return mpUnmarshal(raw, ptr)
}

func intFrom(i int64, u uint64, f float64, kind byte, bits int) (int64, error) {
	switch kind {
	case 'u':
		return 0, fmt.Errorf("%d overflows int%d", u, bits)
	case 'f':
		if f != math.Trunc(f) || math.IsInf(f, 0) || f < -(1<<63) || f >= 1<<63 {
			return 0, fmt.Errorf("%v is not an integer", f)
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

func uintFrom(i int64, u uint64, f float64, kind byte, bits int) (uint64, error) {
	switch kind {
	case 'i':
		if i < 0 {
			return 0, fmt.Errorf("%d is negative, want uint%d", i, bits)
		}
		u = uint64(i)
	case 'f':
		if f != math.Trunc(f) || f < 0 || f >= 1<<64 {
			return 0, fmt.Errorf("%v is not a non-negative integer", f)
		}
		u = uint64(f)
	}
	if bits < 64 && u >= uint64(1)<<bits {
		return 0, fmt.Errorf("%d overflows uint%d", u, bits)
	}
	return u, nil
}

// ---- JSON reader ----

func decodeJSONBody(body []byte, args Args) ([]byte, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(body, &parts); err != nil || len(parts) != 3 {
		return nil, errBodyShape
	}
	var pos []json.RawMessage
	if !isJSONNull(parts[0]) {
		if err := json.Unmarshal(parts[0], &pos); err != nil {
			return nil, fmt.Errorf("args: want an array: %w", err)
		}
	}
	if len(pos) > args.NumArgs() {
		return nil, fmt.Errorf("%d positional arguments given, the task takes %d", len(pos), args.NumArgs())
	}
	seen := make([]bool, args.NumArgs())
	for i, raw := range pos {
		if err := args.DecodeArg(i, &jsonArgReader{raw: raw}); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		seen[i] = true
	}
	var kw map[string]json.RawMessage
	if !isJSONNull(parts[1]) {
		if err := json.Unmarshal(parts[1], &kw); err != nil {
			return nil, fmt.Errorf("kwargs: want an object: %w", err)
		}
	}
	for _, key := range sortedKeys(kw) {
		i := args.ArgIndex(key)
		if i < 0 {
			return nil, fmt.Errorf("unexpected keyword argument %q", key)
		}
		if seen[i] {
			return nil, fmt.Errorf("argument %q given twice", args.ArgName(i))
		}
		if err := args.DecodeArg(i, &jsonArgReader{raw: kw[key]}); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgName(i), Err: err}
		}
		seen[i] = true
	}
	if err := checkMissing(seen, args); err != nil {
		return nil, err
	}
	if isJSONNull(parts[2]) {
		return nil, nil
	}
	return parts[2], nil
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

type jsonArgReader struct{ raw json.RawMessage }

func (r *jsonArgReader) String() (string, error) {
	var s string
	if err := json.Unmarshal(r.raw, &s); err != nil {
		return "", fmt.Errorf("want a string, got %s", abbrev(r.raw))
	}
	return s, nil
}

func (r *jsonArgReader) Bytes() ([]byte, error) {
	if isJSONNull(r.raw) {
		return nil, nil
	}
	s, err := r.String()
	return []byte(s), err
}

func (r *jsonArgReader) Bool() (bool, error) {
	switch string(bytes.TrimSpace(r.raw)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want a bool, got %s", abbrev(r.raw))
}

func (r *jsonArgReader) number() (i int64, u uint64, f float64, kind byte, err error) {
	tok := string(bytes.TrimSpace(r.raw))
	if tok == "" || (tok[0] != '-' && (tok[0] < '0' || tok[0] > '9') && tok != "NaN" && tok != "Infinity") {
		return 0, 0, 0, 0, fmt.Errorf("want a number, got %s", abbrev(r.raw))
	}
	if i, err := strconv.ParseInt(tok, 10, 64); err == nil {
		return i, 0, 0, 'i', nil
	}
	if u, err := strconv.ParseUint(tok, 10, 64); err == nil {
		return 0, u, 0, 'u', nil
	}
	switch tok {
	case "NaN":
		return 0, 0, math.NaN(), 'f', nil
	case "Infinity":
		return 0, 0, math.Inf(1), 'f', nil
	case "-Infinity":
		return 0, 0, math.Inf(-1), 'f', nil
	}
	f, err = strconv.ParseFloat(tok, 64)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("want a number, got %s", abbrev(r.raw))
	}
	return 0, 0, f, 'f', nil
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

func (r *jsonArgReader) Value(ptr any) error {
	return json.Unmarshal(r.raw, ptr)
}

func abbrev(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
