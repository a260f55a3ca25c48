package wire

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"
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
		w.b = MsgpackAppendArrayLen(w.b, len(args.ArgNames()))
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
