package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

func decodeMsgpackBody(body []byte, args Args) ([]byte, error) {
	bd := getBodyDecoder()
	defer bd.release()
	d := &bd.mp
	d.b = body
	n, err := d.arrayLen()
	if err != nil || n != 3 {
		return nil, errBodyShape
	}
	nargs := len(args.ArgNames())
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
			return nil, &ArgError{Index: i, Name: args.ArgNames().Name(i), Err: err}
		}
		if err := d.settle(start); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgNames().Name(i), Err: err}
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
			return nil, &ArgError{Index: i, Name: args.ArgNames().Name(i), Err: err}
		}
		if err := d.settle(start); err != nil {
			return nil, &ArgError{Index: i, Name: args.ArgNames().Name(i), Err: err}
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
			return fmt.Errorf("missing argument %q", args.ArgNames().Name(i))
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
