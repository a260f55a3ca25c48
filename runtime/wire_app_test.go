package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// fixedNow is the clock of the wire tests: always the instant the fixtures were captured.
func fixedNow() time.Time { return time.Date(2026, 11, 23, 19, 44, 33, 593409123, time.UTC) }

func newWireApp(t *testing.T, ser string) *App {
	t.Helper()
	app, err := New(Config{Broker: "memory://wire-" + t.Name(), Serializer: ser, Now: fixedNow, Hostname: "w1@vm"})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

// TestWire_EncodeMatchesFixtures builds messages with the app's producer and
// compares them with Python's, field by field (ids, origin and times taken
// from the fixture or masked).
func TestWire_EncodeMatchesFixtures(t *testing.T) {
	for _, f := range taskFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			ser := wire.SerializerJSON
			if f.ctype == driver.ContentTypeMsgpack {
				ser = wire.SerializerMsgpack
			}
			app := newWireApp(t, ser)
			ph, err := driver.ParseHeaders(f.headers)
			require.NoError(t, err)
			def := &codegen.TaskDef{Name: ph.Task}
			co := &callOptions{taskID: ph.ID, parentID: ph.ParentID}
			var args wire.Args
			switch {
			case strings.Contains(f.name, "retry"):
				args = &oneIntArgs{21}
				co.countdown = time.Second
			case strings.Contains(f.name, "basic"):
				args = &addArgs{2, 3, 1}
			default:
				args = &pairArgs{1, 1}
				co.countdown = 30 * time.Second
				co.expires = app.now().Add(120 * time.Second)
				p := uint8(5)
				co.priority = &p
				if ph.TimeLimit[0] > 0 {
					def.TimeLimit, def.SoftTimeLimit = 60*time.Second, 50*time.Second
				}
			}
			m, err := app.newMessage(def, co, args)
			require.NoError(t, err)
			require.Equal(t, f.ctype, m.ContentType)
			require.Equal(t, f.cenc, m.ContentEncoding)
			require.Equal(t, f.props["correlation_id"], m.CorrelationID)
			require.EqualValues(t, 2, m.DeliveryMode)
			if p, ok := f.props["priority"]; ok {
				require.EqualValues(t, mustFloat(p), m.Priority)
			}
			if e, ok := f.props["expiration"]; ok {
				require.Equal(t, e, m.Expiration)
			} else {
				require.Empty(t, m.Expiration)
			}

			// Headers: same names, same order, same values once masked.
			var order []string
			m.Headers.Range(func(k string, _ any) { order = append(order, k) })
			require.Equal(t, f.order, order)
			got := normalizeHeaderMap(t, m.Headers.Map())
			want := normalizeHeaderMap(t, f.headers)
			for _, k := range []string{"origin", "eta", "expires"} {
				if want[k] != nil {
					require.IsType(t, "", got[k], k)
					_, err := driver.ParseTime(got[k].(string))
					if k != "origin" {
						require.NoError(t, err)
						require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`, got[k], k)
					}
					got[k], want[k] = "<masked>", "<masked>"
				}
			}
			require.Equal(t, "go", got["lang"])
			got["lang"] = "py"
			if strings.Contains(f.name, "basic") {
				// Go sends every argument positionally: (2, 3, 1) / {}.
				require.Equal(t, "(2, 3, 1)", got["argsrepr"])
				require.Equal(t, "{}", got["kwargsrepr"])
				got["argsrepr"], got["kwargsrepr"] = want["argsrepr"], want["kwargsrepr"]
			}
			if strings.Contains(f.name, "retry") {
				// The retry fixture is the worker's re-publish (retries=1).
				got["retries"] = want["retries"]
			}
			require.Equal(t, want, got)

			// Body: byte-identical where the call is positional in Python too.
			if !strings.Contains(f.name, "basic") {
				require.Equal(t, f.body, m.Body, "body bytes")
			} else {
				var a, b addArgs
				_, err := wire.DecodeBody(m.ContentType, "", m.Body, &a)
				require.NoError(t, err)
				_, err = wire.DecodeBody(f.ctype, "", f.body, &b)
				require.NoError(t, err)
				require.Equal(t, b, a)
				// Same embed bytes, and the same 3-element shape.
				require.True(t, bytes.HasSuffix(m.Body, bodyTail(t, f.body)), "embed bytes")
			}
		})
	}
}
func TestWire_ExceptionFromError(t *testing.T) {
	type tc struct {
		err              error
		module, cls, msg string
	}
	for _, c := range []tc{
		{errors.New("boom"), "builtins", "Exception", "boom"},
		{wrapf("ctx: %w", errors.New("boom")), "builtins", "Exception", "ctx: boom"},
		{&quotaError{}, "myapp.errors", "QuotaExceeded", "quota"},
		{wrapf("send: %w", &quotaError{}), "myapp.errors", "QuotaExceeded", "send: quota"},
		{valueErr{}, "builtins", "ValueError", "bad value"},
		{&notFound{}, "github.com/taskgen/taskgen/runtime", "notFound", "not found"},
		{wrapf("a: %w", errors.Join(&notFound{}, errors.New("x"))), "github.com/taskgen/taskgen/runtime", "notFound", "a: not found\nx"},
		{wrapf("call: %w", context.DeadlineExceeded), "builtins", "TimeoutError", "call: context deadline exceeded"},
		{&notFound{cause: context.DeadlineExceeded}, "github.com/taskgen/taskgen/runtime", "notFound", "not found"},
		{openMissing(t), "builtins", "FileNotFoundError", ""},
		{wrapf("%w: hard", ErrTimeLimitExceeded), "celery.exceptions", "TimeLimitExceeded", "TimeLimitExceeded: hard"},
		{&TaskError{TaskID: "1", State: StateFailure, Exception: driver.ExceptionInfo{Type: "KeyError", Message: []any{"k"}, Module: "builtins"}}, "builtins", "KeyError", ""},
	} {
		e := exceptionFromError(c.err)
		assert.Equal(t, c.module, e.Module, c.err.Error())
		assert.Equal(t, c.cls, e.Type, c.err.Error())
		if c.msg != "" {
			assert.Equal(t, []any{c.msg}, e.Message)
		}
	}
	require.Equal(t, []any{"k"}, exceptionFromError(&TaskError{Exception: driver.ExceptionInfo{Type: "KeyError", Message: []any{"k"}}}).Message)
}

type quotaError struct{}

func (*quotaError) Error() string { return "quota" }
func (*quotaError) CeleryException() (string, string) {
	return "myapp.errors", "QuotaExceeded"
}

type valueErr struct{}

func (valueErr) Error() string                     { return "bad value" }
func (valueErr) CeleryException() (string, string) { return "builtins", "ValueError" }

type notFound struct{ cause error }

func (*notFound) Error() string   { return "not found" }
func (e *notFound) Unwrap() error { return e.cause }

func wrapf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func openMissing(t *testing.T) error {
	_, err := os.Open(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	return err
}
func FuzzDecodeResultDoc(f *testing.F) {
	for _, b := range fuzzSeedFiles(f, "redis_result_*.bin") {
		f.Add(b, b[0] == '{')
	}
	f.Add([]byte(`{"status": "SUCCESS", "result": {"__type__": "datetime", "__value__": "2026-11-23T19:42:38"}, "children": [[["a", null], null]], "date_done": "2026-11-23T19:42:39.917492+01:00"}`), true)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		ser := wire.SerializerMsgpack
		if isJSON {
			ser = wire.SerializerJSON
		}
		doc, err := driver.DecodeResultDoc(ser, data)
		if err != nil {
			return
		}
		_ = doc.Exception()
		var v any
		if doc.DecodeResult(&v) != nil {
			return
		}
		var n int64
		_ = doc.DecodeResult(&n)
		var tm time.Time
		_ = doc.DecodeResult(&tm)
		doc.Result = v
		raw, err := driver.EncodeResultDoc(ser, doc)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := driver.DecodeResultDoc(ser, raw)
		if err != nil {
			t.Fatalf("re-decode %q: %v", raw, err)
		}
		if utf8.ValidString(string(doc.Status)) && utf8.ValidString(doc.TaskID) && (back.Status != doc.Status || back.TaskID != doc.TaskID) {
			t.Fatalf("round trip: %q %q → %q %q", doc.Status, doc.TaskID, back.Status, back.TaskID)
		}
	})
}

func TestWire_DecodeTaskFixtures(t *testing.T) {
	for _, f := range taskFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			switch f.ctype {
			case wire.ContentTypeJSON:
				require.Equal(t, wire.ContentEncodingUTF8, f.cenc)
			case wire.ContentTypeMsgpack:
				require.Equal(t, wire.ContentEncodingBinary, f.cenc)
			default:
				t.Fatalf("content type %q", f.ctype)
			}
			h, err := driver.ParseHeaders(f.headers)
			require.NoError(t, err)
			require.Equal(t, "py", h.Lang)
			require.Equal(t, f.headers["id"], h.ID)
			require.Equal(t, h.ID, h.RootID)
			require.Equal(t, f.props["correlation_id"], h.ID)
			require.Empty(t, h.Shadow)
			require.Empty(t, h.Group)
			require.Nil(t, h.GroupIndex)
			require.False(t, h.IgnoreResult)
			require.Empty(t, h.Compression)
			require.Empty(t, h.Extra, "every 5.2 header has a field")
			require.True(t, strings.HasPrefix(h.Origin, "gen"))

			var embed []byte
			switch {
			case strings.Contains(f.name, "retry"):
				var a oneIntArgs
				embed, err = wire.DecodeBody(f.ctype, h.Compression, f.body, &a)
				require.NoError(t, err)
				require.Equal(t, 21, a.n)
				require.Equal(t, "tasks.flaky", h.Task)
				require.Equal(t, 1, h.Retries)
				require.Equal(t, h.ID, h.ParentID, "a retry's parent is itself")
				require.Equal(t, "(21,)", h.ArgsRepr)
				require.Equal(t, time.Date(2026, 11, 23, 19, 42, 40, 933965000, time.UTC), h.ETA.UTC())
			case strings.Contains(f.name, "basic"):
				a := addArgs{z: -1}
				embed, err = wire.DecodeBody(f.ctype, h.Compression, f.body, &a)
				require.NoError(t, err)
				require.Equal(t, addArgs{2, 3, 1}, a, "positional x, y and keyword z")
				require.Equal(t, "tasks.add", h.Task)
				require.Equal(t, "(2, 3)", h.ArgsRepr)
				require.Equal(t, "{'z': 1}", h.KwargsRepr)
				require.True(t, h.ETA.IsZero())
				require.True(t, h.Expires.IsZero())
				require.Equal(t, [2]float64{}, h.TimeLimit)
				require.Empty(t, h.ParentID)
			default: // eta_expires_prio
				a := addArgs{z: 7}
				embed, err = wire.DecodeBody(f.ctype, h.Compression, f.body, &a)
				require.NoError(t, err)
				require.Equal(t, addArgs{1, 1, 7}, a, "z omitted: keeps its default")
				require.Equal(t, "(1, 1)", h.ArgsRepr)
				require.Equal(t, "{}", h.KwargsRepr)
				require.False(t, h.ETA.IsZero())
				require.Equal(t, 90*time.Second, h.Expires.Sub(h.ETA), "countdown=30, expires=120")
				require.Equal(t, f.headers["eta"], wire.FormatTime(h.ETA), "eta round-trips exactly")
				require.Equal(t, f.headers["expires"], wire.FormatTime(h.Expires))
				require.Equal(t, "120000", f.props["expiration"])
				if strings.HasPrefix(f.name, "amqp") {
					require.Equal(t, [2]float64{60, 50}, h.TimeLimit, "timelimit is [hard, soft]")
				}
				var p pairArgs
				_, err = wire.DecodeBody(f.ctype, "", f.body, &p)
				require.NoError(t, err)
				require.Equal(t, pairArgs{1, 1}, p)
			}
			// embed: Celery's empty embed, in the body's serializer.
			var em map[string]any
			if f.ctype == wire.ContentTypeJSON {
				require.NoError(t, wire.JSONDecodeInto(embed, &em))
			} else {
				require.NoError(t, wire.MsgpackDecodeInto(embed, &em))
			}
			require.Equal(t, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}, em)

			// Headers survive a parse → Map round trip, in Celery's order.
			var order []string
			h.Range(func(k string, _ any) { order = append(order, k) })
			require.Equal(t, f.order, order, "header order")
			require.Equal(t, normalizeHeaderMap(t, f.headers), normalizeHeaderMap(t, h.Map()))
		})
	}
}
