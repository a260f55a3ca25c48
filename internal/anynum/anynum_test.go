package anynum

import (
	"encoding/json"
	"math"
	"testing"
)

func TestFloat64(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want float64
		ok   bool
	}{
		{float64(1.5), 1.5, true}, {float32(0.5), 0.5, true},
		{int(-3), -3, true}, {int8(-8), -8, true}, {int16(16), 16, true}, {int32(-32), -32, true}, {int64(1 << 40), 1 << 40, true},
		{uint(3), 3, true}, {uint8(255), 255, true}, {uint16(65535), 65535, true}, {uint32(1 << 31), 1 << 31, true}, {uint64(1 << 63), 1 << 63, true},
		{json.Number("2.25"), 2.25, true}, {json.Number("x"), 0, false},
		{"3", 0, false}, {nil, 0, false}, {true, 0, false},
	} {
		got, ok := Float64(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Float64(%#v) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if f, ok := Float64(math.NaN()); !ok || !math.IsNaN(f) {
		t.Errorf("Float64(NaN) = %v, %v; want NaN, true", f, ok)
	}
}

func TestPlain(t *testing.T) {
	in := map[string]any{"i": json.Number("42"), "f": json.Number("1.5"), "big": json.Number("1e30"),
		"list": []any{json.Number("-7"), "s", nil, map[string]any{"n": json.Number("3")}}}
	got := Plain(in).(map[string]any)
	if got["i"] != int64(42) || got["f"] != 1.5 || got["big"] != 1e30 {
		t.Errorf("Plain numbers: %#v", got)
	}
	l := got["list"].([]any)
	if l[0] != int64(-7) || l[1] != "s" || l[2] != nil || l[3].(map[string]any)["n"] != int64(3) {
		t.Errorf("Plain nested: %#v", l)
	}
	if _, ok := in["i"].(json.Number); !ok {
		t.Error("Plain changed its argument")
	}
}
