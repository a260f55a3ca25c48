package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

func decodeJSONBody(body []byte, args Args) ([]byte, error) {
	bd := getBodyDecoder()
	defer bd.release()
	d := &bd.jd
	d.b = body
	if d.Peek() != '[' {
		return nil, errBodyShape
	}
	d.i++
	nargs := len(args.ArgNames())
	seen := bd.seenSlice(nargs)
	r := &bd.jr
	npos := 0
	switch d.Peek() {
	case 'n':
		if !d.lit("null") {
			return nil, errBodyShape
		}
	case '[':
		d.i++
		first := true
		for {
			more, err := d.More(']', &first)
			if err != nil {
				return nil, fmt.Errorf("args: %w", err)
			}
			if !more {
				break
			}
			if npos >= nargs {
				return nil, fmt.Errorf("more than %d positional arguments given, the task takes %d", nargs, nargs)
			}
			if r.raw, err = d.Raw(); err != nil {
				return nil, fmt.Errorf("args: %w", err)
			}
			if err := args.DecodeArg(npos, r); err != nil {
				return nil, &ArgError{Index: npos, Name: args.ArgNames().Name(npos), Err: err}
			}
			seen[npos] = true
			npos++
		}
	default:
		return nil, errors.New("args: want an array")
	}
	if !d.Expect(',') {
		return nil, errBodyShape
	}
	switch d.Peek() {
	case 'n':
		if !d.lit("null") {
			return nil, errBodyShape
		}
	case '{':
		d.i++
		first := true
		for {
			more, err := d.More('}', &first)
			if err != nil {
				return nil, fmt.Errorf("kwargs: %w", err)
			}
			if !more {
				break
			}
			key, err := d.Key()
			if err != nil {
				return nil, fmt.Errorf("kwargs: %w", err)
			}
			i, err := kwargIndex(key, npos, args)
			if err != nil {
				return nil, err
			}
			if r.raw, err = d.Raw(); err != nil {
				return nil, fmt.Errorf("kwargs: %w", err)
			}
			if err := args.DecodeArg(i, r); err != nil {
				return nil, &ArgError{Index: i, Name: args.ArgNames().Name(i), Err: err}
			}
			seen[i] = true
		}
	default:
		return nil, errors.New("kwargs: want an object")
	}
	if err := checkMissing(seen, args); err != nil {
		return nil, err
	}
	if !d.Expect(',') {
		return nil, errBodyShape
	}
	var embed []byte
	if d.Peek() == 'n' && d.lit("null") {
		embed = nil
	} else {
		var err error
		if embed, err = d.Raw(); err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
	}
	if !d.Expect(']') {
		return nil, errBodyShape
	}
	if d.Peek() != 0 || d.i != len(d.b) {
		return nil, errors.New("extra data after the body")
	}
	return embed, nil
}

type jsonArgReader struct{ raw []byte }

func (r *jsonArgReader) String() (string, error) {
	if len(r.raw) > 0 && r.raw[0] == '"' {
		return jsonUnquote(r.raw), nil
	}
	if len(r.raw) > 0 && r.raw[0] == '{' {
		// kombu >= 5.3 sends uuid.UUID, Decimal, dates and bytes as tagged
		// objects where kombu 5.2 sent strings.
		v, err := ParseJSON(r.raw, UntagGo)
		switch x := v.(type) {
		case string:
			if err == nil {
				return x, nil
			}
		case []byte:
			return string(x), nil
		case time.Time:
			return FormatTime(x), nil
		}
	}
	return "", fmt.Errorf("want a string, got %s", abbrev(r.raw))
}

func (r *jsonArgReader) Bytes() ([]byte, error) {
	if len(r.raw) > 0 {
		switch r.raw[0] {
		case 'n':
			return nil, nil
		case '"':
			return []byte(jsonUnquote(r.raw)), nil
		case '{':
			// kombu >= 5.3: {"__type__": "bytes"|"base64", "__value__": ...}
			v, err := ParseJSON(r.raw, UntagGo)
			if b, ok := v.([]byte); ok && err == nil {
				return b, nil
			}
		}
	}
	return nil, fmt.Errorf("want bytes (a string), got %s", abbrev(r.raw))
}

func (r *jsonArgReader) Bool() (bool, error) {
	switch string(r.raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want a bool, got %s", abbrev(r.raw))
}

func (r *jsonArgReader) number() (i int64, u uint64, f float64, kind byte, err error) {
	tok := r.raw
	if len(tok) == 0 || (tok[0] != '-' && (tok[0] < '0' || tok[0] > '9') && tok[0] != 'N' && tok[0] != 'I') {
		return 0, 0, 0, 0, fmt.Errorf("want a number, got %s", abbrev(r.raw))
	}
	switch v := jsonNumber(tok).(type) {
	case int64:
		return v, 0, 0, 'i', nil
	case uint64:
		return 0, v, 0, 'u', nil
	case float64:
		return 0, 0, v, 'f', nil
	}
	return 0, 0, 0, 0, fmt.Errorf("want a number, got %s", abbrev(r.raw))
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
	return floatFrom(i, u, f, kind, bits)
}

func (r *jsonArgReader) Value(ptr any) error { return JSONDecodeInto(r.raw, ptr) }

func abbrev(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// jsonNumber converts a validated JSON number token (or NaN, Infinity,
// -Infinity) to int64 when it is an integer literal that fits, uint64 when
// it fits only there, float64 otherwise.
func jsonNumber(tok []byte) any {
	switch string(tok) {
	case "NaN":
		return math.NaN()
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if !bytes.ContainsAny(tok, ".eE") {
		if i, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(tok), 10, 64); err == nil {
			return u
		}
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil
	}
	return f
}

// jsonDecodeInto decodes one JSON value into ptr. Generic destinations (*any,
// *[]any, *map[string]any) get int64/uint64/float64 numbers, so integers above
// 2^53 survive, and kombu >= 5.3 type tags decoded (datetime as time.Time);
// *time.Time accepts an ISO-8601 string or a tagged datetime; other types go
// through encoding/json with UseNumber, interface values inside them
// normalized the same way.
func JSONDecodeInto(raw []byte, ptr any) error {
	switch p := ptr.(type) {
	case **time.Time:
		if string(bytes.TrimSpace(raw)) == "null" {
			*p = nil
			return nil
		}
		var t time.Time
		if err := JSONDecodeInto(raw, &t); err != nil {
			return err
		}
		*p = &t
		return nil
	case *time.Time:
		v, err := ParseJSON(raw, UntagGo)
		if err != nil {
			return err
		}
		switch x := v.(type) {
		case nil:
			*p = time.Time{}
		case time.Time:
			*p = x
		case string:
			t, err := ParseTime(x)
			if err != nil {
				return err
			}
			*p = t
		default:
			return fmt.Errorf("want a time, got %s", abbrev(raw))
		}
		return nil
	case *any, *[]any, *map[string]any:
		v, err := ParseJSON(raw, UntagGo)
		if err != nil {
			return err
		}
		return assignGeneric(ptr, v)
	case *float64:
		// NaN and ±Infinity, which encoding/json rejects.
		f, err := (&jsonArgReader{raw: bytes.TrimSpace(raw)}).Float(64)
		if err == nil {
			*p = f
		}
		return err
	}
	if bytes.Contains(raw, []byte(`"__type__"`)) || bytes.Contains(raw, []byte("NaN")) || bytes.Contains(raw, []byte("Infinity")) {
		// Tags and non-finite floats are not encoding/json's: rewrite.
		v, err := ParseJSON(raw, untagText)
		if err != nil {
			return err
		}
		if raw, err = json.Marshal(v); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(ptr); err != nil {
		return err
	}
	normalizeInterfaces(ptr)
	return nil
}

func assignGeneric(ptr, v any) error {
	switch p := ptr.(type) {
	case *any:
		*p = v
	case *[]any:
		switch x := v.(type) {
		case nil:
			*p = nil
		case []any:
			*p = x
		default:
			return fmt.Errorf("want an array, got %T", v)
		}
	case *map[string]any:
		switch x := v.(type) {
		case nil:
			*p = nil
		case map[string]any:
			*p = x
		default:
			return fmt.Errorf("want an object, got %T", v)
		}
	}
	return nil
}
