package wire

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func mpAppendNil(b []byte) []byte { return append(b, 0xc0) }

func mpAppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

func mpAppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return mpAppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func mpAppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func mpAppendFloat(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

func MsgpackAppendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func mpAppendBytes(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

func MsgpackAppendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func MsgpackAppendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// mpAppendValue appends v: basic values directly, a time.Time as an ISO-8601
// string (FormatTime), anything else by reflection (vmihailenco/msgpack, with
// structs as maps keyed by their msgpack/json names and compact integers).
func MsgpackAppendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return mpAppendNil(b), nil
	case string:
		return MsgpackAppendString(b, x), nil
	case []byte:
		return mpAppendBytes(b, x), nil
	case Bytes:
		return mpAppendBytes(b, x), nil
	case bool:
		return mpAppendBool(b, x), nil
	case int:
		return mpAppendInt(b, int64(x)), nil
	case int64:
		return mpAppendInt(b, x), nil
	case float64:
		return mpAppendFloat(b, x), nil
	case float32:
		return mpAppendFloat(b, float64(x)), nil
	case int32:
		return mpAppendInt(b, int64(x)), nil
	case uint64:
		return mpAppendUint(b, x), nil
	case time.Time:
		// A top-level time is sent as Celery's ISO-8601 string, which Python
		// reads as a str (msgpack has no datetime in Python's kombu).
		return MsgpackAppendString(b, FormatTime(x)), nil
	case *time.Time:
		if x == nil {
			return mpAppendNil(b), nil
		}
		return MsgpackAppendString(b, FormatTime(*x)), nil
	}
	raw, err := MsgpackMarshal(v)
	if err != nil {
		return b, err
	}
	return append(b, raw...), nil
}

func MsgpackMarshal(v any) ([]byte, error) {
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	var buf mpBuffer
	enc.Reset(&buf)
	enc.SetCustomStructTag("json")
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.b, nil
}

type mpBuffer struct{ b []byte }

func (w *mpBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func (w *mpBuffer) WriteByte(c byte) error { w.b = append(w.b, c); return nil }

func (w *mpBuffer) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}
