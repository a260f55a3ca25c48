package runtime_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/canvastasks"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// canvasFixture returns the message Celery 5.2.6 published for fixture
// name (testdata/celery/canvas, captured by capture.py there).
func canvasFixture(t *testing.T, name string) *driver.Message {
	t.Helper()
	dir := filepath.Join("..", "testdata", "celery", "canvas")
	body, err := os.ReadFile(filepath.Join(dir, name+".body.bin"))
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, name+".meta.json"))
	require.NoError(t, err)
	var meta struct {
		ContentType     string         `json:"content_type"`
		ContentEncoding string         `json:"content_encoding"`
		Headers         map[string]any `json:"headers"`
	}
	require.NoError(t, json.Unmarshal(raw, &meta))
	h, err := driver.ParseHeaders(meta.Headers)
	require.NoError(t, err)
	return &driver.Message{ContentType: meta.ContentType, ContentEncoding: meta.ContentEncoding, Headers: h, Body: body, DeliveryMode: 2}
}

// TestCanvas_CeleryFixtures: the workflows Python Celery 5.2.6 built (the
// messages it published, byte for byte) run to their end on Go workers:
// the chain's steps in order with each result prepended, the link, the
// chord's body with the header's results, and a chain that Celery turned
// into a chord whose body is a chain.
func TestCanvas_CeleryFixtures(t *testing.T) {
	for _, c := range []struct {
		name      string
		fixtures  []string
		chordSize int    // the producer's SETEX ...-<group>.s (backend_calls.json)
		lastTask  string // the task whose last call ends the workflow
		want      int64
		calls     int // messages the workflow sent in all
		sers      []string
	}{
		// chain(add.s(2, 2), mul.s(4), add.si(1, 1)): the last step is immutable.
		{"chain", []string{"chain"}, 0, "tasks.add", 2, 3, nil},
		// add.apply_async((2, 2), link=mul.s(3), ...)
		{"link", []string{"link"}, 0, "tasks.mul", 12, 2, nil},
		// chord([add.s(1, 1), add.s(2, 2)], tsum.s())
		{"chord", []string{"chord_header0", "chord_header1"}, 2, "tasks.tsum", 6, 3, nil},
		// chain(group(add.s(1, 1), add.s(2, 2)), tsum.s(), mul.s(10)): a chord
		// whose body is celery.chain(tsum, mul).
		{"chain_group_first", []string{"chain_group_first0", "chain_group_first1"}, 2, "tasks.mul", 60, 4, nil},
		// chain(add.s(1, 1), group(mul.s(2), mul.s(3)), tsum.s(), mul.s(10)):
		// the worker applies a celery.chord signature (JSON only: Celery's
		// msgpack body of it is corrupt, see the fixtures' README).
		{"chain_group_middle", []string{"chain_group_middle"}, 0, "tasks.mul", 100, 5, []string{"json"}},
	} {
		sers := c.sers
		if sers == nil {
			sers = []string{"json", "msgpack"}
		}
		for _, ser := range sers {
			t.Run(c.name+"/"+ser, func(t *testing.T) {
				kit := tasktest.NewWith(t, []tasktest.Option{tasktest.Serializer(ser), tasktest.WithoutDefault()}, canvastasks.RegisterTasks)
				ctx := context.Background()
				var first *driver.Message
				for _, f := range c.fixtures {
					m := canvasFixture(t, f+"."+ser)
					if first == nil {
						first = m
					}
					if c.chordSize > 0 {
						gb := kit.App.Backend().(driver.GroupBackend)
						require.NoError(t, gb.SetChordSize(ctx, m.Headers.Group, c.chordSize, 0))
					}
					require.NoError(t, kit.App.Broker().Publish(ctx, "celery", m))
				}
				var last *tasktest.Call
				all := kit.All()
				for i := range all {
					if all[i].Task == c.lastTask {
						last = &all[i]
					}
				}
				require.NotNil(t, last, "no %s ran; calls: %v", c.lastTask, all)
				got, err := runtime.NewAsyncResult[int64](kit.App, last.ID).Get(ctx)
				require.NoError(t, err)
				require.Equal(t, c.want, got)
				require.Len(t, all, c.calls, "messages of the workflow")
			})
		}
	}
}

// embedOf decodes the embed of m.
func embedOf(t *testing.T, m *driver.Message) map[string]any {
	t.Helper()
	var body []any
	if m.ContentType == "application/json" {
		require.NoError(t, json.Unmarshal(m.Body, &body))
	} else {
		require.NoError(t, msgpack.Unmarshal(m.Body, &body))
	}
	require.Len(t, body, 3)
	e, _ := body[2].(map[string]any)
	return e
}

// shape replaces the ids and the reply_to address of a decoded signature
// tree by placeholders, and drops what only one side writes (Celery 5.2's
// reply_to, taskgen's chord_size), so that Go's and Celery's can be
// compared.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			switch k {
			case "task_id", "group_id":
				out[k] = "<id>"
			case "reply_to", "chord_size":
			default:
				out[k] = shape(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = shape(e)
		}
		return out
	case string, bool, nil:
		return v
	}
	if n, ok := driver.AnyToInt(v); ok {
		return n
	}
	return v
}

// TestCanvas_SameWireAsCelery: the first message of a chain built in Go
// carries the embed Celery builds for the same chain (the fixture), the
// later steps reversed, up to ids; so does a link.
func TestCanvas_SameWireAsCelery(t *testing.T) {
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			kit := tasktest.NewWith(t, []tasktest.Option{tasktest.Serializer(ser), tasktest.WithoutDefault(), tasktest.RecordOnly()}, canvastasks.RegisterTasks)
			ctx := context.Background()
			on := runtime.WithApp(kit.App)
			// chain(add.s(2, 2), mul.s(4), add.si(1, 1))
			c := runtime.Chain(runtime.Chain(canvastasks.Add.Sig(2, 2), canvastasks.Mul.Partial(4)), runtime.NamedPartial[int64, int64]("tasks.add", int64(1), int64(1)))
			_, err := c.With(on).Delay(ctx)
			require.NoError(t, err)
			got := embedOf(t, kit.All()[0].Message)
			require.Len(t, got["chain"], 2)
			require.Equal(t, "tasks.add", got["chain"].([]any)[0].(map[string]any)["task"], "reversed: the last step first")
			want := embedOf(t, canvasFixture(t, "chain."+ser))
			// Celery's last step is add.si(1, 1): immutable. The Go chain's
			// last step is a partial; make it the same to compare the rest.
			want["chain"].([]any)[0].(map[string]any)["immutable"] = false
			require.Equal(t, shape(want), shape(got))
		})
	}
}
