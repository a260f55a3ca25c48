package redis

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "celery", "redis", name))
	require.NoError(t, err)
	return b
}

// orderedKeys returns the keys of the JSON object at path in raw, in order.
func orderedKeys(t *testing.T, raw []byte, path ...string) []string {
	t.Helper()
	start := 0
	for _, p := range path {
		ms, _, err := objectMembers(raw, start)
		require.NoError(t, err)
		m := findMember(ms, p)
		require.NotNil(t, m, "member %q", p)
		start = m.start
	}
	ms, _, err := objectMembers(raw, start)
	require.NoError(t, err)
	var keys []string
	for _, m := range ms {
		keys = append(keys, m.key)
	}
	return keys
}

func TestDecodeFixtures(t *testing.T) {
	for _, tc := range []struct {
		file, ctype, cenc, body, tag, id string
	}{
		{"redis_task_json_basic.bin", driver.ContentTypeJSON, "utf-8", "redis_task_json_basic.body.bin", "624a4ecb-7c12-4940-a57c-1c6aadda4790", "11111111-1111-4111-8111-111111111111"},
		{"redis_task_msgpack_basic.bin", driver.ContentTypeMsgpack, "binary", "redis_task_msgpack_basic.body.bin", "d99411e6-a3da-4e14-ac39-314994125e7f", "11111111-1111-4111-8111-111111111112"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw := fixture(t, tc.file)
			m, env, err := decodeEnvelope(raw, "celery")
			require.NoError(t, err)
			require.Equal(t, tc.tag, env.tag)
			require.Equal(t, tc.ctype, m.ContentType)
			require.Equal(t, tc.cenc, m.ContentEncoding)
			require.Equal(t, fixture(t, tc.body), m.Body)
			require.Equal(t, "tasks.add", m.Headers.Task)
			require.Equal(t, tc.id, m.Headers.ID)
			require.Equal(t, "py", m.Headers.Lang)
			require.Equal(t, tc.id, m.CorrelationID)
			require.Equal(t, tc.id, m.Headers.RootID)
			require.Equal(t, "(2, 3)", m.Headers.ArgsRepr)
			require.Equal(t, uint8(2), m.DeliveryMode)
			require.Equal(t, uint8(0), m.Priority)
			require.Equal(t, "celery", m.RoutingKey)
			require.Equal(t, "", m.Exchange)
			require.False(t, m.Redelivered)
			require.True(t, m.Headers.ETA.IsZero())
			require.Empty(t, m.Headers.Extra)
		})
	}
}

func TestDecodeFixtureETAExpiresPriority(t *testing.T) {
	for _, f := range []string{"redis_task_json_eta_expires_prio5.bin", "redis_task_msgpack_eta_expires_prio5.bin"} {
		m, _, err := decodeEnvelope(fixture(t, f), "celery")
		require.NoError(t, err, f)
		require.Equal(t, uint8(5), m.Priority)
		require.Equal(t, "120000", m.Expiration)
		require.False(t, m.Headers.ETA.IsZero())
		require.Equal(t, 90*time.Second, m.Headers.Expires.Sub(m.Headers.ETA))
		require.Equal(t, 3, priorityStep(int(m.Priority)))
		require.Equal(t, "celery\x06\x163", listName("celery", priorityStep(5)))
	}
}

func TestDecodeRetryRepublishIgnoresLeakedProperties(t *testing.T) {
	m, _, err := decodeEnvelope(fixture(t, "redis_task_json_retry_republish.bin"), "celery")
	require.NoError(t, err)
	require.Equal(t, "tasks.flaky", m.Headers.Task)
	require.Equal(t, 1, m.Headers.Retries)
	require.Equal(t, m.Headers.ID, m.Headers.ParentID)
}

func TestUnackedEntryFixture(t *testing.T) {
	entry := fixture(t, "redis_unacked_entry_msgpack.bin")
	raw, exchange, rk, err := parseUnackedEntry(entry)
	require.NoError(t, err)
	require.Equal(t, "", exchange)
	require.Equal(t, "celery", rk)
	m, env, err := decodeEnvelope(raw, rk)
	require.NoError(t, err)
	require.Equal(t, "bac79124-b0e2-420c-a977-97cf10324791", env.tag)
	require.Equal(t, "tasks.later", m.Headers.Task)
	require.Equal(t, uint8(7), m.Priority)
	require.Equal(t, 7, envelopePriority(raw))
	// Our encoder of the entry reproduces the fixture byte for byte.
	require.Equal(t, string(entry), string(appendUnackedEntry(nil, raw, "celery")))
}

// TestEncodeMatchesFixtureShape re-encodes the decoded fixtures and checks
// the envelope has kombu's keys in kombu's order, and the same values.
func TestEncodeMatchesFixtureShape(t *testing.T) {
	for _, f := range []string{"redis_task_json_basic.bin", "redis_task_msgpack_basic.bin", "redis_task_msgpack_eta_expires_prio5.bin"} {
		t.Run(f, func(t *testing.T) {
			want := fixture(t, f)
			m, env, err := decodeEnvelope(want, "celery")
			require.NoError(t, err)
			got, err := appendEnvelope(nil, "celery", m)
			require.NoError(t, err)
			for _, path := range [][]string{nil, {"headers"}, {"properties"}, {"properties", "delivery_info"}} {
				require.Equal(t, orderedKeys(t, want, path...), orderedKeys(t, got, path...), "keys of %v", path)
			}
			var w, g map[string]any
			require.NoError(t, json.Unmarshal(want, &w))
			require.NoError(t, json.Unmarshal(got, &g))
			// Only the delivery tag (fresh uuid4) and reply_to (not kept) differ.
			wp, gp := w["properties"].(map[string]any), g["properties"].(map[string]any)
			require.Len(t, gp["delivery_tag"], 36)
			require.NotEqual(t, env.tag, gp["delivery_tag"])
			wp["delivery_tag"], gp["delivery_tag"] = nil, nil
			require.Equal(t, w, g)
			// The separators are Python's.
			require.True(t, bytes.HasPrefix(got, []byte(`{"body": "`)))
			require.Contains(t, string(got), `"timelimit": [null, null], `)
		})
	}
}

func TestMarkRedelivered(t *testing.T) {
	raw := fixture(t, "redis_task_json_basic.bin")
	red := markRedelivered(raw)
	m, _, err := decodeEnvelope(red, "celery")
	require.NoError(t, err)
	require.True(t, m.Redelivered)
	require.NotContains(t, m.Headers.Extra, "redelivered")
	var v map[string]any
	require.NoError(t, json.Unmarshal(red, &v))
	require.Equal(t, true, v["headers"].(map[string]any)["redelivered"])
	require.Equal(t, true, v["properties"].(map[string]any)["delivery_info"].(map[string]any)["redelivered"])
	// Idempotent, and the rest is unchanged byte for byte.
	require.Equal(t, red, markRedelivered(red))
	require.Equal(t, len(raw)+2*len(`, "redelivered": true`), len(red))
	// Not an envelope: unchanged.
	require.Equal(t, []byte("not json"), markRedelivered([]byte("not json")))
	// Encoding a redelivered message sets both flags too.
	enc, err := appendEnvelope(nil, "celery", m)
	require.NoError(t, err)
	m2, _, err := decodeEnvelope(enc, "celery")
	require.NoError(t, err)
	require.True(t, m2.Redelivered)
}

func TestDecodePoison(t *testing.T) {
	good := string(fixture(t, "redis_task_json_basic.bin"))
	for name, raw := range map[string]string{
		"not json":         "hello",
		"array":            "[1, 2]",
		"no delivery_tag":  replace(good, `"delivery_tag": "624a4ecb-7c12-4940-a57c-1c6aadda4790"`, `"x": 1`),
		"no delivery_info": replace(good, `"delivery_info": {"exchange": "", "routing_key": "celery"}, `, ""),
		"no exchange":      replace(good, `"exchange": "", `, ""),
		"bad base64":       replace(good, `"body": "W1sy`, `"body": "!!!`),
		"no task header":   replace(good, `"task": "tasks.add", `, ""),
		"bad eta":          replace(good, `"eta": null`, `"eta": "tomorrow"`),
		"truncated":        good[:len(good)-3],
	} {
		m, _, err := decodeEnvelope([]byte(raw), "celery")
		require.Error(t, err, name)
		require.Nil(t, m, name)
	}
}

func replace(s, old, new string) string {
	if !bytes.Contains([]byte(s), []byte(old)) {
		panic("fixture does not contain " + old)
	}
	return string(bytes.Replace([]byte(s), []byte(old), []byte(new), 1))
}

func TestJSONParserAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{"a": [1, -2, 3.5, 1e3, true, false, null, "x\"y\u00e9\ud83d\ude00\n"], "b": {}, "c": []}`,
		`"plain"`, `18446744073709551615`, `-9223372036854775808`, ` { "k" : "v" } `,
	} {
		got, err := wire.ParseJSON([]byte(s), wire.UntagNone)
		require.NoError(t, err, s)
		var want any
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		require.NoError(t, d.Decode(&want))
		a, err := wire.AppendJSONValue(nil, got)
		require.NoError(t, err)
		b, err := wire.AppendJSONValue(nil, want)
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(a), s)
	}
	for _, s := range []string{`{`, `{"a" 1}`, `[1,]`, `"abc`, `tru`, `{"a":1}x`, "\"a\x01\""} {
		_, err := wire.ParseJSON([]byte(s), wire.UntagNone)
		require.Error(t, err, s)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "abc", "a\"b\\c", "\x00\x1f\n\t", "été 😀", "\u2028"} {
		b := wire.AppendJSONString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, s, got)
	}
	var got string
	require.NoError(t, json.Unmarshal(wire.AppendJSONString(nil, "a\xffb"), &got))
	require.Equal(t, "a\ufffdb", got)
	require.Equal(t, "60.0", string(wire.AppendJSONFloat(nil, 60)))
	require.Equal(t, "0.5", string(wire.AppendJSONFloat(nil, 0.5)))
	require.Equal(t, "1e+21", string(wire.AppendJSONFloat(nil, 1e21)))
}

func TestDeadLetterEntryRoundTrip(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, raw := range [][]byte{[]byte(`{"x": "y"}`), []byte("\xff\xfe binary")} {
		e := appendDeadLetter(nil, raw, "bad \"thing\"", "q", "w@h", now)
		dl, err := parseDeadLetter(e)
		require.NoError(t, err)
		require.Equal(t, raw, dl.Raw)
		require.Equal(t, "bad \"thing\"", dl.Reason)
		require.Equal(t, "q", dl.Queue)
		require.Equal(t, "w@h", dl.Hostname)
		require.True(t, now.Equal(dl.Time))
	}
}

// TestAppendHeadersMatchesRange: the direct header writer produces exactly
// what TaskHeaders.Range gives, in the same order.
func TestAppendHeadersMatchesRange(t *testing.T) {
	gi := 3
	for _, h := range []driver.TaskHeaders{
		{Lang: "go", Task: "t", ID: "i"},
		{Lang: "go", Task: "t\"x", ID: "i", Shadow: "s", ETA: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
			Expires: time.Date(2026, 1, 2, 3, 4, 6, 0, time.FixedZone("x", 3600)), Group: "g", GroupIndex: &gi, Retries: 7,
			TimeLimit: [2]float64{60, 2.5}, RootID: "r", ParentID: "p", ArgsRepr: "(1,)", KwargsRepr: "{'a': 'é'}",
			Origin: "o", IgnoreResult: true, Compression: "application/x-gzip",
			Extra: map[string]any{"stamps": map[string]any{"a": []any{int64(1), "b"}}, "zz": nil, "aa": 1.5, "redelivered": true, "task": "ignored"}},
	} {
		got, err := appendHeaders(nil, &h)
		require.NoError(t, err)
		var want []byte
		first := true
		h.Range(func(k string, v any) {
			if k == "redelivered" {
				return
			}
			if !first {
				want = append(want, ", "...)
			}
			first = false
			want = wire.AppendJSONString(want, k)
			want = append(want, ": "...)
			want, err = wire.AppendJSONValue(want, v)
			require.NoError(t, err)
		})
		require.Equal(t, string(want), string(got))
	}
}
