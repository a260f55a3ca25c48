// Package anynum converts the numbers that decoding JSON or msgpack into an
// interface value produces (any Go integer or float type, or json.Number)
// to float64, for the places that read numbers out of Celery's maps: worker
// control arguments, events, and result metas.
package anynum

import "encoding/json"

// Float64 returns v as a float64 when it is a Go integer or float of any
// size or a json.Number; otherwise it reports false. NaN and infinities pass
// through: callers that cannot use them check with math.IsNaN/IsInf.
func Float64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// Plain returns v, a value decoded from JSON with json.Decoder.UseNumber,
// with every json.Number in it (at any depth of []any and map[string]any)
// replaced by an int64 when it is an integer that fits, else a float64: the
// Go values whose Python repr (driver.Repr) is what Celery shows for the
// same JSON. Other values are returned as they are.
func Plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Plain(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Plain(e)
		}
		return out
	}
	return v
}
