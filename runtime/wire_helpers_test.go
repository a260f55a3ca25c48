package runtime

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// addArgs is tasks.add(x, y, z=0) of the fixtures' Python app.
type addArgs struct{ x, y, z int64 }

var addArgsNames = wire.ArgNames{{"x"}, {"y"}, {"z"}}

func (*addArgs) ArgNames() wire.ArgNames { return addArgsNames }

func (a *addArgs) NumRequired() int { return 2 }

func (a *addArgs) EncodeArgs(w wire.ArgWriter) error {
	w.Int(a.x)
	w.Int(a.y)
	w.Int(a.z)
	return nil
}

func (a *addArgs) DecodeArg(i int, r wire.ArgReader) (err error) {
	switch i {
	case 0:
		a.x, err = r.Int(64)
	case 1:
		a.y, err = r.Int(64)
	case 2:
		a.z, err = r.Int(64)
	}
	return err
}

// pairArgs is a Go task func(ctx, x, y int) (tasks.add called with 2 args).
type pairArgs struct{ x, y int }

var pairArgsNames = wire.ArgNames{{"x"}, {"y"}}

func (*pairArgs) ArgNames() wire.ArgNames { return pairArgsNames }

func (a *pairArgs) EncodeArgs(w wire.ArgWriter) error {
	w.Int(int64(a.x))
	w.Int(int64(a.y))
	return nil
}

func (a *pairArgs) DecodeArg(i int, r wire.ArgReader) error {
	v, err := r.Int(64)
	if i == 0 {
		a.x = int(v)
	} else {
		a.y = int(v)
	}
	return err
}

// oneIntArgs is tasks.flaky(n).
type oneIntArgs struct{ n int }

var oneIntArgsNames = wire.ArgNames{{"n"}}

func (*oneIntArgs) ArgNames() wire.ArgNames { return oneIntArgsNames }

func (a *oneIntArgs) EncodeArgs(w wire.ArgWriter) error { w.Int(int64(a.n)); return nil }

func (a *oneIntArgs) DecodeArg(i int, r wire.ArgReader) error {
	v, err := r.Int(strconvIntSize)
	a.n = int(v)
	return err
}

const strconvIntSize = 32 << (^uint(0) >> 63)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "celery", name))
	require.NoError(t, err)
	return b
}

// redisEnvelope is kombu's Redis message envelope.
type redisEnvelope struct {
	Body            string         `json:"body"`
	ContentEncoding string         `json:"content-encoding"`
	ContentType     string         `json:"content-type"`
	Headers         map[string]any `json:"headers"`
	Properties      map[string]any `json:"properties"`
}

func loadEnvelope(t testing.TB, name string) (env redisEnvelope, body []byte, headerOrder []string) {
	t.Helper()
	raw := fixture(t, name)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&env))
	body, err := base64.StdEncoding.DecodeString(env.Body)
	require.NoError(t, err)
	return env, body, jsonKeyOrder(t, raw, "headers")
}

type amqpMeta struct {
	Properties map[string]any `json:"properties"`
	Headers    map[string]any `json:"headers"`
}

func loadAMQP(t testing.TB, stem string) (meta amqpMeta, body []byte, headerOrder []string) {
	t.Helper()
	raw := fixture(t, stem+".meta.json")
	require.NoError(t, json.Unmarshal(raw, &meta))
	return meta, fixture(t, stem+".body.bin"), jsonKeyOrder(t, raw, "headers")
}

// jsonKeyOrder returns the keys of the object at top-level key field, in order.
func jsonKeyOrder(t testing.TB, raw []byte, field string) []string {
	t.Helper()
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	d := wire.NewJSONDecoder(top[field])
	require.True(t, d.Expect('{'))
	var keys []string
	first := true
	for {
		more, err := d.More('}', &first)
		require.NoError(t, err)
		if !more {
			return keys
		}
		k, err := d.Key()
		require.NoError(t, err)
		keys = append(keys, string(k))
		require.NoError(t, d.Skip(0))
	}
}

type taskFixture struct {
	name, ctype, cenc string
	body              []byte
	headers           map[string]any
	order             []string
	props             map[string]any
}

func taskFixtures(t *testing.T) []taskFixture {
	var out []taskFixture
	for _, n := range []string{"redis_task_json_basic", "redis_task_msgpack_basic", "redis_task_json_eta_expires_prio5",
		"redis_task_msgpack_eta_expires_prio5", "redis_task_json_retry_republish"} {
		env, body, order := loadEnvelope(t, n+".bin")
		if n != "redis_task_json_retry_republish" {
			require.Equal(t, fixture(t, n+".body.bin"), body, "envelope body = .body.bin")
		}
		out = append(out, taskFixture{n, env.ContentType, env.ContentEncoding, body, env.Headers, order, env.Properties})
	}
	for _, n := range []string{"amqp_task_json_basic", "amqp_task_msgpack_basic", "amqp_task_json_eta_expires_prio", "amqp_task_msgpack_eta_expires_prio"} {
		meta, body, order := loadAMQP(t, n)
		out = append(out, taskFixture{n, meta.Properties["content_type"].(string), meta.Properties["content_encoding"].(string), body, meta.Headers, order, meta.Properties})
	}
	return out
}

// normalizeHeaderMap turns numbers into float64 and lists into []any via JSON.
func normalizeHeaderMap(t testing.TB, m map[string]any) map[string]any {
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

// bodyTail returns the serialized kwargs-free tail: the embed of body.
func bodyTail(t *testing.T, body []byte) []byte {
	if body[0] == '[' {
		i := bytes.LastIndex(body, []byte(`{"callbacks"`))
		return body[i:]
	}
	i := bytes.LastIndex(body, []byte{0x84, 0xa9})
	return body[i:]
}

func mustFloat(v any) float64 {
	f, ok := driver.AnyToFloat(v)
	if !ok {
		panic(v)
	}
	return f
}

func fuzzSeedFiles(f *testing.F, pattern string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("..", "testdata", "celery", pattern))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
