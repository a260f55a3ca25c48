package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// JSONDecoder scans JSON as Python's json module writes it: standard JSON plus
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

// Peek returns the next non-space byte, 0 at the end.
func (d *JSONDecoder) Peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// Expect consumes the next non-space byte if it is c, and reports whether it
// was.
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

// More steps through an array or object whose opening bracket was read: it
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

// Key reads an object key and its colon. The result may alias the input.
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

// Raw returns the bytes of the next value and advances past it.
func (d *JSONDecoder) Raw() ([]byte, error) {
	d.ws()
	start := d.i
	if err := d.Skip(0); err != nil {
		return nil, err
	}
	return d.b[start:d.i], nil
}

// Skip advances past one value, validating it.
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
	for {
		// Eight bytes at a time while none of them is a quote, a backslash
		// or a control character (the "has a byte less than n" word trick;
		// exact for whether any byte matches).
		for d.i+8 <= len(d.b) {
			w := binary.LittleEndian.Uint64(d.b[d.i:])
			q, bs := w^(swarOnes*'"'), w^(swarOnes*'\\')
			if ((q-swarOnes)&^q|(bs-swarOnes)&^bs|(w-swarOnes*0x20)&^w)&swarHigh != 0 {
				break
			}
			d.i += 8
		}
		if d.i >= len(d.b) {
			break
		}
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

// Bytes of a uint64 word for skipString's scan: 0x01 and 0x80 in each.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

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

// UntagMode says what kombu >= 5.3 type tags ({"__type__": t, "__value__": v})
// become in generic values.
type UntagMode int

// The untag modes.
const (
	UntagGo   UntagMode = iota // datetime → time.Time, bytes/base64 → []byte
	untagText                  // every tag → its text, for re-encoding for encoding/json
	UntagNone                  // tags stay objects (kombu's envelope and its headers)
)

// ParseJSON decodes one JSON value (the whole of raw) into generic values:
// objects as map[string]any, arrays as []any, numbers as int64 when integral
// and in range, uint64 when only there, float64 otherwise, kombu type tags
// per mode.
func ParseJSON(raw []byte, mode UntagMode) (any, error) {
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

// Value decodes the next value: objects as map[string]any, arrays as []any,
// numbers as jsonNumber does, kombu type tags per mode.
func (d *JSONDecoder) Value(depth int, mode UntagMode) (any, error) {
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
		m, err := d.mapValue(depth, mode, 0)
		if err != nil {
			return nil, err
		}
		if mode != UntagNone && len(m) == 2 {
			t, ok1 := m["__type__"]
			v, ok2 := m["__value__"]
			if ok1 && ok2 {
				return untag(t, v, mode)
			}
		}
		return m, nil
	case c == '[':
		d.i++
		var l []any
		first := true
		for {
			more, err := d.More(']', &first)
			if err != nil {
				return nil, err
			}
			if !more {
				if l == nil {
					l = []any{}
				}
				return l, nil
			}
			v, err := d.Value(depth+1, mode)
			if err != nil {
				return nil, err
			}
			if l == nil {
				l = make([]any, 0, 4) // most arrays in headers are short
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
func untag(typ, val any, mode UntagMode) (any, error) {
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

// Map decodes the object at the current position into a map sized for hint
// members; nested values decode as Value does.
func (d *JSONDecoder) Map(hint int, mode UntagMode) (map[string]any, error) {
	if d.Peek() != '{' {
		return nil, d.syntax("want an object")
	}
	return d.mapValue(0, mode, hint)
}

// mapValue decodes the object at d.i (its opening brace, white space
// skipped) without untagging it.
func (d *JSONDecoder) mapValue(depth int, mode UntagMode, hint int) (map[string]any, error) {
	d.i++
	m := make(map[string]any, hint)
	first := true
	for {
		more, err := d.More('}', &first)
		if err != nil {
			return nil, err
		}
		if !more {
			return m, nil
		}
		k, err := d.Key()
		if err != nil {
			return nil, err
		}
		if m[internKey(k)], err = d.Value(depth+1, mode); err != nil {
			return nil, err
		}
	}
}

// Members walks the object at the current position, calling member for each
// key with the decoder at the member's value, which member must consume (with
// Skip when it has no use for it). The key may alias the input and is valid
// only during the call.
func (d *JSONDecoder) Members(member func(key []byte) error) error {
	if !d.Expect('{') {
		return d.syntax("want an object")
	}
	first := true
	for {
		more, err := d.More('}', &first)
		if err != nil || !more {
			return err
		}
		k, err := d.Key()
		if err != nil {
			return err
		}
		if err := member(k); err != nil {
			return err
		}
	}
}

// Text decodes the string at the current position.
func (d *JSONDecoder) Text() (string, error) {
	if d.Peek() != '"' {
		return "", d.syntax("want a string")
	}
	start := d.i
	if _, err := d.skipString(); err != nil {
		return "", err
	}
	return jsonUnquote(d.b[start:d.i]), nil
}

// TextBytes decodes the string at the current position; without escapes the
// result is a slice of the input.
func (d *JSONDecoder) TextBytes() ([]byte, error) {
	if d.Peek() != '"' {
		return nil, d.syntax("want a string")
	}
	start := d.i
	esc, err := d.skipString()
	if err != nil {
		return nil, err
	}
	if !esc {
		return d.b[start+1 : d.i-1], nil
	}
	return []byte(jsonUnquote(d.b[start:d.i])), nil
}

// Offset returns the position in the input of the next byte to read (Peek
// first to skip white space).
func (d *JSONDecoder) Offset() int { return d.i }

// Seek moves the decoder to position i of its input.
func (d *JSONDecoder) Seek(i int) { d.i = min(max(i, 0), len(d.b)) }

// knownKeys are the object keys of Celery's task headers and result
// documents, interned to save an allocation per decoded key.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
		"retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
		"redelivered", "stamped_headers", "stamps", "replaced_task_nesting", "compression",
		"status", "result", "traceback", "children", "date_done", "task_id", "name", "args", "kwargs",
		"worker", "queue", "hostname"} {
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
