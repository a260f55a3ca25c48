package wire

import (
	"bytes"
	"errors"
	"fmt"
)

// Bytes is a []byte argument collected by [CollectArgs]: the generic
// encoders write it as the generated codec does (msgpack bin; JSON text as
// a string, anything else base64), not as encoding/json's base64 of a
// []byte value.
type Bytes []byte

// collector is an ArgWriter that keeps the values written to it.
type collector struct {
	skip int
	vals []any
}

func (c *collector) add(v any) {
	if c.skip > 0 {
		c.skip--
		return
	}
	c.vals = append(c.vals, v)
}

func (c *collector) String(v string)   { c.add(v) }
func (c *collector) Int(v int64)       { c.add(v) }
func (c *collector) Uint(v uint64)     { c.add(v) }
func (c *collector) Float(v float64)   { c.add(v) }
func (c *collector) Bool(v bool)       { c.add(v) }
func (c *collector) Bytes(v []byte)    { c.add(Bytes(v)) }
func (c *collector) Value(v any) error { c.add(v); return nil }

// CollectArgs returns the arguments of args as values the generic encoders
// write as the generated codec would, leaving out the first skip of them
// (a partial call: the previous step's result fills the first).
func CollectArgs(args Args, skip int) ([]any, error) {
	c := &collector{skip: skip, vals: make([]any, 0, max(len(args.ArgNames())-skip, 0))}
	if err := args.EncodeArgs(c); err != nil {
		return nil, err
	}
	return c.vals, nil
}

// AppendGenericBody appends the body [args, kwargs, embed] of a call given
// as generic values (workflow steps, whose arguments come from signatures
// and results rather than a generated codec), serialized with serializer.
// A nil kwargs is written as {}; a nil embed as Celery's empty one.
func AppendGenericBody(dst []byte, serializer string, args []any, kwargs, embed map[string]any) ([]byte, error) {
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	var e any = embed
	if embed == nil {
		e = map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}
	}
	return AppendGeneric(dst, serializer, []any{args, kwargs, e})
}

// AppendGeneric appends v, a generic value, serialized with serializer.
func AppendGeneric(dst []byte, serializer string, v any) ([]byte, error) {
	switch serializer {
	case "", SerializerMsgpack:
		return MsgpackAppendValue(dst, v)
	case SerializerJSON:
		return AppendJSONValue(dst, v)
	}
	_, _, err := ContentTypeOf(serializer)
	return dst, err
}

// DecodeGeneric decodes raw, serialized with serializer, into generic values:
// maps as map[string]any, arrays as []any.
func DecodeGeneric(serializer string, raw []byte) (any, error) {
	switch serializer {
	case "", SerializerMsgpack:
		var v any
		if err := MsgpackUnmarshal(raw, &v); err != nil {
			return nil, err
		}
		return normalizeMsgpack(v), nil
	case SerializerJSON:
		return ParseJSON(raw, UntagGo)
	}
	_, _, err := ContentTypeOf(serializer)
	return nil, err
}

// SerializerOf returns the serializer of a content type.
func SerializerOf(contentType string) (string, error) {
	switch contentType {
	case ContentTypeMsgpack, "application/msgpack", "application/x-msgpack; charset=binary":
		return SerializerMsgpack, nil
	case ContentTypeJSON, "application/json; charset=utf-8":
		return SerializerJSON, nil
	}
	return "", fmt.Errorf("content type %q not accepted (want %s or %s)", contentType, ContentTypeMsgpack, ContentTypeJSON)
}

// normalizeMsgpack turns the maps vmihailenco/msgpack decodes with
// non-string keys into map[string]any where every key is a string, and the
// sized integers into int64/uint64, so workflow code sees one shape.
func normalizeMsgpack(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeMsgpack(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalizeMsgpack(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalizeMsgpack(e)
		}
		return x
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		return uint64(x)
	}
	return v
}

// GenericArgs is an Args of generic values: what a worker applies for a
// signature it decoded (a callback, the next step of a chain).
type GenericArgs []any

// ArgNames returns one unnamed entry per argument.
func (a GenericArgs) ArgNames() ArgNames { return make(ArgNames, len(a)) }

// EncodeArgs writes every argument as a generic value.
func (a GenericArgs) EncodeArgs(w ArgWriter) error {
	for _, v := range a {
		if err := w.Value(v); err != nil {
			return err
		}
	}
	return nil
}

// DecodeArg is not supported: GenericArgs only encodes.
func (a GenericArgs) DecodeArg(int, ArgReader) error {
	return errors.New("wire: GenericArgs does not decode")
}

// BodyEmbed returns the embed of a task body, re-encoded with the body's
// serializer, without decoding its arguments into a task's Args (for a
// message that is not run: revoked, expired).
func BodyEmbed(contentType, compression string, body []byte) ([]byte, error) {
	ser, err := SerializerOf(contentType)
	if err != nil {
		return nil, err
	}
	if compression != "" {
		if body, err = decompress(compression, body); err != nil {
			return nil, err
		}
	}
	v, err := DecodeGeneric(ser, body)
	if err != nil {
		return nil, err
	}
	t, ok := v.([]any)
	if !ok || len(t) != 3 {
		return nil, errBodyShape
	}
	return AppendGeneric(nil, ser, t[2])
}

// IsEmptyEmbed reports whether raw is Celery's empty embed, every field
// null, as Celery and AppendBody write it (JSON or msgpack, in Celery's
// key order), or null: a message that is no workflow step.
func IsEmptyEmbed(raw []byte) bool {
	return len(raw) == 0 || string(raw) == jsonEmbedEmpty || bytes.Equal(raw, mpEmbedEmpty) || string(raw) == "null" || (len(raw) == 1 && raw[0] == 0xc0)
}
