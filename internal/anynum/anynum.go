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
