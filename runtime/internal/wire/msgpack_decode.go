package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func MsgpackUnmarshal(data []byte, ptr any) error {
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(&mpReader{b: data})
	dec.SetCustomStructTag("json")
	return dec.Decode(ptr)
}

type mpReader struct {
	b []byte
	i int
}

func (r *mpReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, errEOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func (r *mpReader) ReadByte() (byte, error) {
	if r.i >= len(r.b) {
		return 0, errEOF
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

func (r *mpReader) UnreadByte() error {
	if r.i == 0 {
		return errors.New("msgpack: UnreadByte at start")
	}
	r.i--
	return nil
}

var errEOF = errors.New("msgpack: unexpected end of data")

// mpDec reads msgpack from a byte slice without allocating for basic values.
type MsgpackDecoder struct {
	b []byte
	i int
}

func (d *MsgpackDecoder) need(n int) error {
	if n < 0 || len(d.b)-d.i < n {
		return errEOF
	}
	return nil
}

func (d *MsgpackDecoder) peek() (byte, error) {
	if d.i >= len(d.b) {
		return 0, errEOF
	}
	return d.b[d.i], nil
}

func (d *MsgpackDecoder) byte1() (byte, error) {
	if d.i >= len(d.b) {
		return 0, errEOF
	}
	c := d.b[d.i]
	d.i++
	return c, nil
}

func (d *MsgpackDecoder) uintN(n int) (uint64, error) {
	if err := d.need(n); err != nil {
		return 0, err
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(d.b[d.i])
	case 2:
		v = uint64(binary.BigEndian.Uint16(d.b[d.i:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(d.b[d.i:]))
	case 8:
		v = binary.BigEndian.Uint64(d.b[d.i:])
	}
	d.i += n
	return v, nil
}

func mpTypeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		return "integer"
	case c >= 0x80 && c <= 0x8f, c == 0xde, c == 0xdf:
		return "map"
	case c >= 0x90 && c <= 0x9f, c == 0xdc, c == 0xdd:
		return "array"
	case c >= 0xa0 && c <= 0xbf, c == 0xd9, c == 0xda, c == 0xdb:
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2, c == 0xc3:
		return "bool"
	case c == 0xc4, c == 0xc5, c == 0xc6:
		return "bytes"
	case c == 0xca, c == 0xcb:
		return "float"
	}
	return "extension"
}

func (d *MsgpackDecoder) arrayLen() (int, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), nil
	case c == 0xdc:
		n, err = d.uintN(2)
	case c == 0xdd:
		n, err = d.uintN(4)
	case c == 0xc0:
		return -1, nil
	default:
		return 0, fmt.Errorf("want an array, got a %s", mpTypeName(c))
	}
	if err == nil && n > uint64(len(d.b)-d.i) {
		return 0, errEOF
	}
	return int(n), err
}

func (d *MsgpackDecoder) MapLen() (int, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), nil
	case c == 0xde:
		n, err = d.uintN(2)
	case c == 0xdf:
		n, err = d.uintN(4)
	case c == 0xc0:
		return -1, nil
	default:
		return 0, fmt.Errorf("want a map, got a %s", mpTypeName(c))
	}
	if err == nil && n > uint64(len(d.b)-d.i)/2 {
		return 0, errEOF
	}
	return int(n), err
}

// strBytes reads a str or bin and returns a slice aliasing the input.
func (d *MsgpackDecoder) StrBytes(allowBin bool) ([]byte, error) {
	c, err := d.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9 || (allowBin && c == 0xc4):
		n, err = d.uintN(1)
	case c == 0xda || (allowBin && c == 0xc5):
		n, err = d.uintN(2)
	case c == 0xdb || (allowBin && c == 0xc6):
		n, err = d.uintN(4)
	default:
		return nil, fmt.Errorf("want a string, got a %s", mpTypeName(c))
	}
	if err != nil {
		return nil, err
	}
	if err := d.need(int(n)); err != nil || n > math.MaxInt32 {
		return nil, errEOF
	}
	s := d.b[d.i : d.i+int(n)]
	d.i += int(n)
	return s, nil
}

// number reads any msgpack number: integers as int64/uint64, floats as float64.
// kind is 'i', 'u' or 'f'.
func (d *MsgpackDecoder) number() (i int64, u uint64, f float64, kind byte, err error) {
	c, err := d.byte1()
	if err != nil {
		return
	}
	switch {
	case c <= 0x7f:
		return int64(c), 0, 0, 'i', nil
	case c >= 0xe0:
		return int64(int8(c)), 0, 0, 'i', nil
	}
	var v uint64
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err = d.uintN(1 << (c - 0xcc))
		if err != nil {
			return
		}
		if v > math.MaxInt64 {
			return 0, v, 0, 'u', nil
		}
		return int64(v), 0, 0, 'i', nil
	case 0xd0:
		v, err = d.uintN(1)
		return int64(int8(v)), 0, 0, 'i', err
	case 0xd1:
		v, err = d.uintN(2)
		return int64(int16(v)), 0, 0, 'i', err
	case 0xd2:
		v, err = d.uintN(4)
		return int64(int32(v)), 0, 0, 'i', err
	case 0xd3:
		v, err = d.uintN(8)
		return int64(v), 0, 0, 'i', err
	case 0xca:
		v, err = d.uintN(4)
		return 0, 0, float64(math.Float32frombits(uint32(v))), 'f', err
	case 0xcb:
		v, err = d.uintN(8)
		return 0, 0, math.Float64frombits(v), 'f', err
	}
	return 0, 0, 0, 0, fmt.Errorf("want a number, got a %s", mpTypeName(c))
}

// skip advances past one complete value.
func (d *MsgpackDecoder) Skip() error {
	return d.skipDepth(0)
}

func (d *MsgpackDecoder) skipDepth(depth int) error {
	if depth > maxNesting {
		return errors.New("msgpack: nesting too deep")
	}
	c, err := d.byte1()
	if err != nil {
		return err
	}
	var n uint64
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return nil
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
		return d.advance(n)
	case c >= 0x90 && c <= 0x9f:
		return d.skipN(uint64(c&0x0f), depth)
	case c >= 0x80 && c <= 0x8f:
		return d.skipN(2*uint64(c&0x0f), depth)
	}
	switch c {
	case 0xcc, 0xd0:
		return d.advance(1)
	case 0xcd, 0xd1:
		return d.advance(2)
	case 0xce, 0xd2, 0xca:
		return d.advance(4)
	case 0xcf, 0xd3, 0xcb:
		return d.advance(8)
	case 0xd9, 0xc4:
		n, err = d.uintN(1)
	case 0xda, 0xc5:
		n, err = d.uintN(2)
	case 0xdb, 0xc6:
		n, err = d.uintN(4)
	case 0xdc:
		if n, err = d.uintN(2); err != nil {
			return err
		}
		return d.skipN(n, depth)
	case 0xdd:
		if n, err = d.uintN(4); err != nil {
			return err
		}
		return d.skipN(n, depth)
	case 0xde:
		if n, err = d.uintN(2); err != nil {
			return err
		}
		return d.skipN(2*n, depth)
	case 0xdf:
		if n, err = d.uintN(4); err != nil {
			return err
		}
		return d.skipN(2*n, depth)
	case 0xd4:
		return d.advance(2)
	case 0xd5:
		return d.advance(3)
	case 0xd6:
		return d.advance(5)
	case 0xd7:
		return d.advance(9)
	case 0xd8:
		return d.advance(17)
	case 0xc7:
		if n, err = d.uintN(1); err != nil {
			return err
		}
		return d.advance(n + 1)
	case 0xc8:
		if n, err = d.uintN(2); err != nil {
			return err
		}
		return d.advance(n + 1)
	case 0xc9:
		if n, err = d.uintN(4); err != nil {
			return err
		}
		return d.advance(n + 1)
	default:
		return fmt.Errorf("msgpack: invalid type byte 0x%02x", c)
	}
	if err != nil {
		return err
	}
	return d.advance(n)
}

func (d *MsgpackDecoder) advance(n uint64) error {
	if n > uint64(len(d.b)-d.i) {
		return errEOF
	}
	d.i += int(n)
	return nil
}

func (d *MsgpackDecoder) skipN(n uint64, depth int) error {
	if n > uint64(len(d.b)-d.i) {
		return errEOF
	}
	for ; n > 0; n-- {
		if err := d.skipDepth(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// raw returns the bytes of the next value and advances past it.
func (d *MsgpackDecoder) Raw() ([]byte, error) {
	start := d.i
	if err := d.Skip(); err != nil {
		return nil, err
	}
	return d.b[start:d.i], nil
}

// maxNesting bounds the nesting of arrays and maps in decoded documents
// (encoding/json uses the same limit).
const maxNesting = 10000

var errNesting = errors.New("nesting too deep")

// ext reads an extension header and returns its type and data.
func (d *MsgpackDecoder) ext(c byte) (typ int8, data []byte, err error) {
	var n uint64
	switch c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		n = 1 << (c - 0xd4)
	case 0xc7:
		n, err = d.uintN(1)
	case 0xc8:
		n, err = d.uintN(2)
	case 0xc9:
		n, err = d.uintN(4)
	default:
		return 0, nil, fmt.Errorf("want an extension, got a %s", mpTypeName(c))
	}
	if err != nil {
		return 0, nil, err
	}
	t, err := d.byte1()
	if err != nil {
		return 0, nil, err
	}
	if n > uint64(len(d.b)-d.i) {
		return 0, nil, errEOF
	}
	data = d.b[d.i : d.i+int(n)]
	d.i += int(n)
	return int8(t), data, nil
}

// mpTimestamp decodes the data of a msgpack timestamp extension (type -1).
func mpTimestamp(data []byte) (time.Time, error) {
	switch len(data) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(data)), 0).UTC(), nil
	case 8:
		v := binary.BigEndian.Uint64(data)
		nsec := int64(v >> 34)
		if nsec > 999999999 {
			return time.Time{}, errors.New("msgpack timestamp: nanoseconds out of range")
		}
		return time.Unix(int64(v&(1<<34-1)), nsec).UTC(), nil
	case 12:
		nsec := int64(binary.BigEndian.Uint32(data))
		if nsec > 999999999 {
			return time.Time{}, errors.New("msgpack timestamp: nanoseconds out of range")
		}
		return time.Unix(int64(binary.BigEndian.Uint64(data[4:])), nsec).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("msgpack timestamp: bad length %d", len(data))
}

// anyValue decodes the next value into Go's generic types, normalized as the
// JSON decoder does: integers as int64 (uint64 above MaxInt64), floats as
// float64, str as string, bin as []byte, arrays as []any, maps as
// map[string]any (non-string keys are written as Python's json would), the
// timestamp extension as time.Time.
func (d *MsgpackDecoder) AnyValue(depth int) (any, error) {
	if depth > maxNesting {
		return nil, errNesting
	}
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3) || c == 0xca || c == 0xcb:
		i, u, f, kind, err := d.number()
		switch kind {
		case 'i':
			return i, err
		case 'u':
			return u, err
		}
		return f, err
	case c >= 0xa0 && c <= 0xbf, c == 0xd9, c == 0xda, c == 0xdb:
		s, err := d.StrBytes(false)
		return string(s), err
	case c == 0xc4, c == 0xc5, c == 0xc6:
		s, err := d.StrBytes(true)
		if err != nil {
			return nil, err
		}
		return append([]byte{}, s...), nil
	case c == 0xc0:
		d.i++
		return nil, nil
	case c == 0xc2, c == 0xc3:
		d.i++
		return c == 0xc3, nil
	case c >= 0x90 && c <= 0x9f, c == 0xdc, c == 0xdd:
		n, err := d.arrayLen()
		if err != nil {
			return nil, err
		}
		l := make([]any, n)
		for i := range l {
			if l[i], err = d.AnyValue(depth + 1); err != nil {
				return nil, err
			}
		}
		return l, nil
	case c >= 0x80 && c <= 0x8f, c == 0xde, c == 0xdf:
		n, err := d.MapLen()
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, min(n, 64))
		for ; n > 0; n-- {
			k, err := d.AnyValue(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, err := mapKeyString(k)
			if err != nil {
				return nil, err
			}
			if m[ks], err = d.AnyValue(depth + 1); err != nil {
				return nil, err
			}
		}
		return m, nil
	case c >= 0xc7 && c <= 0xc9, c >= 0xd4 && c <= 0xd8:
		d.i++
		typ, data, err := d.ext(c)
		if err != nil {
			return nil, err
		}
		if typ == -1 {
			return mpTimestamp(data)
		}
		return nil, fmt.Errorf("msgpack extension type %d not supported", typ)
	}
	return nil, fmt.Errorf("msgpack: invalid type byte 0x%02x", c)
}

// mapKeyString converts a decoded map key to a string as Python's json.dumps
// would.
func mapKeyString(k any) (string, error) {
	switch x := k.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return string(appendJSONFloat(nil, x)), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "null", nil
	}
	return "", fmt.Errorf("map key of type %T not supported", k)
}

// mpTime decodes a time: an ISO-8601 string (as Celery and taskgen send
// times), a msgpack timestamp extension, or nil (the zero time).
func mpTime(raw []byte) (time.Time, error) {
	d := MsgpackDecoder{b: raw}
	v, err := d.AnyValue(0)
	if err != nil {
		return time.Time{}, err
	}
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return x, nil
	case string:
		return ParseTime(x)
	case []byte:
		return ParseTime(string(x))
	}
	return time.Time{}, fmt.Errorf("want a time, got %T", v)
}

// mpDecodeInto decodes one msgpack value into ptr: generic destinations
// (*any, *[]any, *map[string]any) and *time.Time directly, others by
// reflection, with integers inside interface values normalized to int64.
func MsgpackDecodeInto(raw []byte, ptr any) error {
	switch p := ptr.(type) {
	case **time.Time:
		if len(raw) == 1 && raw[0] == 0xc0 {
			*p = nil
			return nil
		}
		t, err := mpTime(raw)
		if err == nil {
			*p = &t
		}
		return err
	case *time.Time:
		t, err := mpTime(raw)
		if err == nil {
			*p = t
		}
		return err
	case *any, *[]any, *map[string]any:
		d := MsgpackDecoder{b: raw}
		v, err := d.AnyValue(0)
		if err != nil {
			return err
		}
		return assignGeneric(ptr, v)
	}
	if err := MsgpackUnmarshal(raw, ptr); err != nil {
		return err
	}
	normalizeInterfaces(ptr)
	return nil
}
