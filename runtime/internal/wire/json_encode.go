package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

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
	case Bytes:
		return appendJSONBytes(b, x), nil
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

// FormatUUID returns u in the canonical 8-4-4-4-12 hex form.
func FormatUUID(u [16]byte) string {
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = HexDigits[c>>4], HexDigits[c&0xf]
		j += 2
	}
	return string(b[:])
}
