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
