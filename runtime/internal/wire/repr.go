package wire

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxReprLen is Celery's limit on argsrepr and result reprs.
const MaxReprLen = 1024

// ArgsRepr returns the Python repr of the positional arguments, as Celery puts
// in the argsrepr header: "('a@example.com',)". It is for display only.
func ArgsRepr(args Args) string {
	w := reprWriter{b: make([]byte, 0, 32)}
	w.b = append(w.b, '(')
	_ = args.EncodeArgs(&w)
	if w.n == 1 {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, ')')
	return TruncateRepr(string(w.b))
}

func TruncateRepr(s string) string {
	if len(s) <= MaxReprLen {
		return s
	}
	cut := MaxReprLen - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

type reprWriter struct {
	b []byte
	n int
}

func (w *reprWriter) sep() {
	if w.n > 0 {
		w.b = append(w.b, ", "...)
	}
	w.n++
}

func (w *reprWriter) String(v string) { w.sep(); w.b = appendPyStr(w.b, v) }
func (w *reprWriter) Int(v int64)     { w.sep(); w.b = strconv.AppendInt(w.b, v, 10) }
func (w *reprWriter) Uint(v uint64)   { w.sep(); w.b = strconv.AppendUint(w.b, v, 10) }
func (w *reprWriter) Float(v float64) { w.sep(); w.b = appendPyFloat(w.b, v) }
func (w *reprWriter) Bool(v bool) {
	w.sep()
	if v {
		w.b = append(w.b, "True"...)
	} else {
		w.b = append(w.b, "False"...)
	}
}
func (w *reprWriter) Bytes(v []byte) {
	w.sep()
	w.b = append(w.b, 'b')
	w.b = appendPyStr(w.b, string(v))
}
func (w *reprWriter) Value(v any) error {
	w.sep()
	w.b = AppendPyRepr(w.b, v, 0)
	return nil
}

// Repr returns a Python-style repr of v (strings quoted, True/False/None,
// lists, dicts), used for argsrepr, result reprs in events and logs.
func Repr(v any) string { return TruncateRepr(string(AppendPyRepr(nil, v, 0))) }

func AppendPyRepr(b []byte, v any, depth int) []byte {
	if depth > 32 {
		return append(b, "..."...)
	}
	switch x := v.(type) {
	case nil:
		return append(b, "None"...)
	case string:
		return appendPyStr(b, x)
	case bool:
		if x {
			return append(b, "True"...)
		}
		return append(b, "False"...)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int16:
		return strconv.AppendInt(b, int64(x), 10)
	case int8:
		return strconv.AppendInt(b, int64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case uint:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10)
	case float64:
		return appendPyFloat(b, x)
	case float32:
		return appendPyFloat(b, float64(x))
	case json.Number:
		return append(b, x...)
	case time.Time:
		// Sent as its ISO-8601 string (see mpAppendValue, appendJSONValue).
		return appendPyStr(b, FormatTime(x))
	case []byte:
		return appendPyStr(append(b, 'b'), string(x))
	case Bytes:
		return appendPyStr(append(b, 'b'), string(x))
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = AppendPyRepr(b, e, depth+1)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(x)) {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyStr(b, k)
			b = append(b, ": "...)
			b = AppendPyRepr(b, x[k], depth+1)
		}
		return append(b, '}')
	}
	// Other types: through their JSON form, decoded generically.
	raw, err := json.Marshal(v)
	if err != nil {
		return append(b, "<unrepresentable>"...)
	}
	g, err := ParseJSON(raw, untagText)
	if err != nil {
		return append(b, raw...)
	}
	return AppendPyRepr(b, g, depth+1)
}

func appendPyFloat(b []byte, f float64) []byte {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	switch s {
	case "NaN":
		return append(b, "nan"...)
	case "+Inf":
		return append(b, "inf"...)
	case "-Inf":
		return append(b, "-inf"...)
	}
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return append(b, s...)
}

// appendPyStr appends s quoted as Python's repr does.
func appendPyStr(b []byte, s string) []byte {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	b = append(b, q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20 || r == 0x7f:
			b = append(b, '\\', 'x', HexDigits[r>>4], HexDigits[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, q)
}
