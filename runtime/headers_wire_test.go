package runtime

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

func TestWire_ParseHeadersDecoders(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"lang": "py", "task": "tasks.add", "id": "i", "shadow": nil, "eta": "2026-11-23T19:45:03.593409+00:00",
			"expires": "2026-11-23T19:46:33.593409Z", "group": "g", "root_id": "r", "parent_id": "p", "argsrepr": "(1, 1)",
			"kwargsrepr": "{}", "origin": "gen1@vm", "ignore_result": true}
	}
	want := driver.TaskHeaders{Lang: "py", Task: "tasks.add", ID: "i", ETA: time.Date(2026, 11, 23, 19, 45, 3, 593409000, time.UTC),
		Expires: time.Date(2026, 11, 23, 19, 46, 33, 593409000, time.UTC), Group: "g", Retries: 3, TimeLimit: [2]float64{60, 50.5},
		RootID: "r", ParentID: "p", ArgsRepr: "(1, 1)", KwargsRepr: "{}", Origin: "gen1@vm", IgnoreResult: true}
	gi := 2
	want.GroupIndex = &gi
	for name, nums := range map[string][3]any{
		"json":        {float64(3), float64(2), []any{float64(60), 50.5}},
		"json-number": {json.Number("3"), json.Number("2"), []any{json.Number("60"), json.Number("50.5")}},
		"amqp091":     {int32(3), int64(2), []any{int32(60), 50.5}},
		"msgpack":     {int8(3), uint16(2), []any{uint8(60), float32(50.5)}},
	} {
		t.Run(name, func(t *testing.T) {
			m := base()
			m["retries"], m["group_index"], m["timelimit"] = nums[0], nums[1], nums[2]
			m["stamps"] = map[string]any{"k": "v"}
			m["replaced_task_nesting"] = nums[0]
			m["x-custom"] = []any{"a"}
			h, err := driver.ParseHeaders(m)
			require.NoError(t, err)
			require.Equal(t, map[string]any{"stamps": map[string]any{"k": "v"}, "replaced_task_nesting": nums[0], "x-custom": []any{"a"}}, h.Extra)
			h.Extra = nil
			require.Equal(t, want, h)
		})
	}
}

func TestWire_ParseHeadersErrors(t *testing.T) {
	ok := map[string]any{"task": "t", "id": "i"}
	h, err := driver.ParseHeaders(ok)
	require.NoError(t, err)
	require.Equal(t, driver.TaskHeaders{Task: "t", ID: "i"}, h)
	for _, c := range []struct {
		k   string
		v   any
		err string
	}{
		{"task", nil, `"task" missing`},
		{"id", "", `"id" missing`},
		{"task", 1.0, `"task": want a string`},
		{"eta", "tomorrow", `"eta"`},
		{"expires", 5.0, `"expires"`},
		{"retries", "1", `"retries"`},
		{"retries", 1.5, `"retries"`},
		{"group_index", true, `"group_index"`},
		{"ignore_result", "no", `"ignore_result"`},
		{"timelimit", []any{1.0}, `"timelimit"`},
		{"timelimit", "60", `"timelimit"`},
		{"timelimit", []any{"a", nil}, `"timelimit"`},
		{"timelimit", []any{-1.0, nil}, `"timelimit"`},
		{"timelimit", []any{math.NaN(), nil}, `"timelimit"`},
	} {
		m := map[string]any{"task": "t", "id": "i"}
		m[c.k] = c.v
		_, err := driver.ParseHeaders(m)
		require.ErrorContains(t, err, c.err, "%s=%v", c.k, c.v)
	}
	h, err = driver.ParseHeaders(map[string]any{"task": "t", "id": "i", "timelimit": []any{math.Inf(1), nil}, "argsrepr": []byte("(1,)")})
	require.NoError(t, err)
	require.EqualValues(t, 1<<32, h.TimeLimit[0], "huge limits are capped")
	require.Equal(t, "(1,)", h.ArgsRepr)
}

func TestWire_HeadersProduce(t *testing.T) {
	gi := 0
	h := driver.TaskHeaders{Lang: "go", Task: "t", ID: "i", ETA: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC), GroupIndex: &gi,
		TimeLimit: [2]float64{0, 2.5}, Compression: wire.CompressionZlib, Extra: map[string]any{"b": 1, "a": 2, "task": "ignored"}}
	var keys []string
	h.Range(func(k string, v any) { keys = append(keys, k) })
	require.Equal(t, []string{"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
		"root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "compression", "a", "b"}, keys)
	m := h.Map()
	require.Equal(t, "2026-01-02T03:04:05.000006+00:00", m["eta"])
	require.Nil(t, m["expires"])
	require.Nil(t, m["shadow"])
	require.Equal(t, int64(0), m["group_index"])
	require.Equal(t, []any{nil, 2.5}, m["timelimit"])
	require.Equal(t, "t", m["task"])
	back, err := driver.ParseHeaders(m)
	require.NoError(t, err)
	require.Equal(t, h.ETA.Truncate(time.Microsecond), back.ETA)
	require.Equal(t, map[string]any{"a": 2, "b": 1}, back.Extra)
	v, ok := h.Get("compression")
	require.True(t, ok)
	require.Equal(t, wire.CompressionZlib, v)
	_, ok = (&driver.TaskHeaders{}).Get("compression")
	require.False(t, ok)
	// Integral limits are sent as ints, as Python does.
	h.TimeLimit = [2]float64{60, 50}
	require.Equal(t, []any{int64(60), int64(50)}, h.Map()["timelimit"])
}
