package redis

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// A small JSON reader and writer for kombu's envelope. The envelope is read
// and written on every message, so it avoids encoding/json's reflection:
// values decode to map[string]any, []any, string, int64 (integral numbers
// that fit), float64, bool and nil; objects keep no key order (the envelope
// only needs lookups).

type jsonParser struct {
	b   []byte
	i   int
	err error
}

var errJSONDepth = errors.New("JSON nested too deeply")

func parseJSON(b []byte) (any, error) {
	p := jsonParser{b: b}
	v := p.value(0)
	if p.err == nil {
		p.ws()
		if p.i != len(p.b) {
			p.fail("trailing data")
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	return v, nil
}

func (p *jsonParser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("invalid JSON at offset %d: %s", p.i, what)
	}
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) any {
	if depth > 64 {
		p.err = errJSONDepth
		return nil
	}
	p.ws()
	if p.i >= len(p.b) {
		p.fail("unexpected end")
		return nil
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.objectValue(depth, 8)
	}
	return p.scalarOrArray(depth)
}

// objectValue parses the object at p.i into a map sized for hint keys.
func (p *jsonParser) objectValue(depth, hint int) any {
	p.i++
	m := make(map[string]any, hint)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m
	}
	for p.err == nil {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			p.fail("want an object key")
			return nil
		}
		k := internKey(p.strBytes())
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			p.fail("want ':'")
			return nil
		}
		p.i++
		m[k] = p.value(depth + 1)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return m
		}
		p.fail("want ',' or '}'")
	}
	return nil
}

// scalarOrArray parses the non-object value at p.i.
func (p *jsonParser) scalarOrArray(depth int) any {
	switch c := p.b[p.i]; {
	case c == '[':
		p.i++
		l := make([]any, 0, 4)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return l
		}
		for p.err == nil {
			l = append(l, p.value(depth+1))
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return l
			}
			p.fail("want ',' or ']'")
		}
		return nil
	case c == '"':
		return p.str()
	case c == 't':
		return p.lit("true", true)
	case c == 'f':
		return p.lit("false", false)
	case c == 'n':
		return p.lit("null", nil)
	case c == 'N':
		return p.lit("NaN", math.NaN())
	case c == 'I':
		return p.lit("Infinity", math.Inf(1))
	case c == '-' || (c >= '0' && c <= '9'):
		if c == '-' && p.i+1 < len(p.b) && p.b[p.i+1] == 'I' {
			p.i++
			return p.lit("Infinity", math.Inf(-1))
		}
		return p.num()
	}
	p.fail("unexpected character")
	return nil
}

// knownKeys are the object keys of Celery's headers, interned to save an
// allocation per key.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
		"retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
		"redelivered", "stamped_headers", "stamps", "replaced_task_nesting", "compression"} {
		m[k] = k
	}
	return m
}()

func internKey(b []byte) string {
	if k, ok := knownKeys[string(b)]; ok {
		return k
	}
	return string(b)
}

func (p *jsonParser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// object walks the object at the current position, calling member for each
// key with the parser positioned at the value; member must consume the
// value. The key slice is only valid during the call.
func (p *jsonParser) object(member func(key []byte)) error {
	if p.peek() != '{' {
		p.fail("want an object")
		return p.err
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for p.err == nil {
		if p.peek() != '"' {
			p.fail("want an object key")
			break
		}
		k := p.strBytes()
		if p.peek() != ':' {
			p.fail("want ':'")
			break
		}
		p.i++
		p.ws()
		member(k)
		if p.err != nil {
			break
		}
		switch p.peek() {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
			return nil
		}
		p.fail("want ',' or '}'")
	}
	return p.err
}

// optString reads a string, or null as "", or skips any other value as "".
func (p *jsonParser) optString() string {
	if p.peek() == '"' {
		return p.str()
	}
	p.skip(0)
	return ""
}

// strBytes reads a string; without escapes it returns a slice of the input.
func (p *jsonParser) strBytes() []byte {
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			return p.b[start:j]
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	return []byte(p.str())
}

// skip consumes one value, checking its syntax, without building it.
func (p *jsonParser) skip(depth int) {
	if depth > 64 {
		p.err = errJSONDepth
		return
	}
	switch p.peek() {
	case '{':
		p.i++
		if p.peek() == '}' {
			p.i++
			return
		}
		for p.err == nil {
			if p.peek() != '"' {
				p.fail("want an object key")
				return
			}
			p.strBytes()
			if p.peek() != ':' {
				p.fail("want ':'")
				return
			}
			p.i++
			p.skip(depth + 1)
			switch p.peek() {
			case ',':
				p.i++
				continue
			case '}':
				p.i++
				return
			}
			p.fail("want ',' or '}'")
		}
	case '[':
		p.i++
		if p.peek() == ']' {
			p.i++
			return
		}
		for p.err == nil {
			p.skip(depth + 1)
			switch p.peek() {
			case ',':
				p.i++
				continue
			case ']':
				p.i++
				return
			}
			p.fail("want ',' or ']'")
		}
	case '"':
		p.strBytes()
	default:
		p.value(depth)
	}
}

func (p *jsonParser) lit(s string, v any) any {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return v
	}
	p.fail("bad literal")
	return nil
}

func (p *jsonParser) num() any {
	start := p.i
	integral := true
	if p.b[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' {
			p.i++
			continue
		}
		if c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			integral = false
			p.i++
			continue
		}
		break
	}
	s := string(p.b[start:p.i])
	if integral {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		p.fail("bad number")
		return nil
	}
	return f
}

// str reads a string starting at the opening quote.
func (p *jsonParser) str() string {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf)
		case c < 0x20:
			p.fail("control character in string")
			return ""
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return ""
			}
			if utf16.IsSurrogate(r) {
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, ok := p.hex4()
					if !ok {
						return ""
					}
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			p.fail("bad escape")
			return ""
		}
	}
	p.fail("unterminated string")
	return ""
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		p.fail("short \\u escape")
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		p.fail("bad \\u escape")
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (runtime.AppendJSONString).
func appendJSONString(b []byte, s string) []byte { return wire.AppendJSONString(b, s) }

// appendJSONFloat appends f as Python writes it (runtime.AppendJSONFloat).
func appendJSONFloat(b []byte, f float64) []byte { return wire.AppendJSONFloat(b, f) }

// appendJSONValue appends v as JSON (runtime.AppendJSONValue).
func appendJSONValue(b []byte, v any) ([]byte, error) { return wire.AppendJSONValue(b, v) }
