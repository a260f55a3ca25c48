package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/canvastasks"
	"github.com/taskgen/taskgen/runtime/internal/wire"
	"github.com/taskgen/taskgen/runtime/memory"
)

// eventLog collects the events of a broker, flattening task.multi lists.
type eventLog struct {
	mu     sync.Mutex
	events []map[string]any
	msgs   []*driver.RawMessage
}

func collectEvents(t *testing.T, b driver.Broker) *eventLog {
	t.Helper()
	et, ok := b.(driver.EventTransport)
	require.True(t, ok, "memory broker implements EventTransport")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := et.SubscribeEvents(ctx)
	require.NoError(t, err)
	l := &eventLog{}
	go func() {
		for msg := range ch {
			var list []map[string]any
			if len(msg.Body) > 0 && msg.Body[0] == '[' {
				if err := json.Unmarshal(msg.Body, &list); err != nil {
					panic(err)
				}
			} else {
				var one map[string]any
				if err := json.Unmarshal(msg.Body, &one); err != nil {
					panic(err)
				}
				list = append(list, one)
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, msg)
			l.events = append(l.events, list...)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *eventLog) ofType(typ string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, e := range l.events {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

func (l *eventLog) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.events...)
}

func (l *eventLog) waitFor(t *testing.T, typ string, n int) []map[string]any {
	t.Helper()
	require.Eventually(t, func() bool { return len(l.ofType(typ)) >= n }, 10*time.Second, 5*time.Millisecond, "waiting for %d %s", n, typ)
	return l.ofType(typ)
}

// HTTPError is the error of the sign-up example's email provider.
type HTTPError struct{ Status int }

func (e *HTTPError) Error() string { return "email provider answered 503" }

func startWorker(t *testing.T, app *runtime.App, o runtime.WorkerOptions, defs ...*codegen.TaskDef) (stop func()) {
	t.Helper()
	w := app.NewWorker(o)
	for _, d := range defs {
		w.Register(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestEvents_WorkerLifecycleAndTasks(t *testing.T) {
	t.Parallel()
	app := newApp(t, "msgpack")
	log := collectEvents(t, app.Broker())
	ok := &codegen.TaskDef{Name: "test.greet", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) { return "hi " + a.(*greetArgs).name, nil }}
	bad := &codegen.TaskDef{Name: "test.bad", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) { return nil, &HTTPError{Status: 503} }}
	stop := startWorker(t, app, runtime.WorkerOptions{Hostname: "w1@test", Concurrency: 2, HeartbeatInterval: 50 * time.Millisecond}, ok, bad)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := runtime.NewStub[string](ok).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "ann", times: 1})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.NoError(t, err)
	res2, err := runtime.NewStub[string](bad).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "bob"})
	require.NoError(t, err)
	_, err = res2.Get(ctx)
	require.Error(t, err)

	log.waitFor(t, "task-failed", 1)
	log.waitFor(t, "worker-heartbeat", 2)
	stop()
	log.waitFor(t, "worker-offline", 1)

	all := log.all()
	require.Equal(t, "worker-online", all[0]["type"], "worker-online comes first")
	require.Equal(t, "worker-offline", all[len(all)-1]["type"], "worker-offline comes last")
	var lastClock float64
	for _, e := range all {
		require.Equal(t, "w1@test", e["hostname"])
		require.EqualValues(t, os.Getpid(), e["pid"])
		require.EqualValues(t, driver.UTCOffset(time.Now()), e["utcoffset"])
		require.Greater(t, e["clock"].(float64), lastClock, "Lamport clock increases per event")
		lastClock = e["clock"].(float64)
		require.InDelta(t, float64(time.Now().Unix()), e["timestamp"].(float64), 60)
	}

	on := log.ofType("worker-online")[0]
	require.Equal(t, 0.05, on["freq"])
	require.Equal(t, "taskgen", on["sw_ident"])
	require.Equal(t, "Linux", on["sw_sys"])
	require.NotEmpty(t, on["sw_ver"])
	require.Len(t, on["loadavg"], 3)
	off := log.ofType("worker-offline")[0]
	require.EqualValues(t, 2, off["processed"])
	require.EqualValues(t, 0, off["active"])

	var recv map[string]any
	for _, e := range log.ofType("task-received") {
		if e["uuid"] == res.ID() {
			recv = e
		}
	}
	require.NotNil(t, recv)
	require.Equal(t, "test.greet", recv["name"])
	require.Equal(t, "('ann', 1)", recv["args"])
	require.Equal(t, "{}", recv["kwargs"])
	require.Equal(t, res.ID(), recv["root_id"])
	require.Nil(t, recv["parent_id"])
	require.EqualValues(t, 0, recv["retries"])
	require.Nil(t, recv["eta"])
	require.Nil(t, recv["expires"])
	require.Equal(t, "celery", recv["routing_key"])

	succ := log.ofType("task-succeeded")[0]
	require.Equal(t, res.ID(), succ["uuid"])
	require.Equal(t, "'hi ann'", succ["result"])
	require.IsType(t, float64(0), succ["runtime"])

	failed := log.ofType("task-failed")[0]
	require.Equal(t, res2.ID(), failed["uuid"])
	require.Equal(t, "HTTPError('email provider answered 503')", failed["exception"])
	require.Contains(t, failed["traceback"], "HTTPError: email provider answered 503")
	require.Len(t, log.ofType("task-started"), 2)

	log.mu.Lock()
	defer log.mu.Unlock()
	for _, m := range log.msgs {
		require.Equal(t, "application/json", m.ContentType)
		require.Equal(t, "utf-8", m.ContentEncoding)
		require.Equal(t, map[string]any{"hostname": "w1@test"}, m.Headers)
		require.Equal(t, "celeryev", m.Exchange)
		require.Contains(t, []string{"worker.online", "worker.heartbeat", "worker.offline", "task.received", "task.started",
			"task.succeeded", "task.failed", "task.multi"}, m.RoutingKey)
	}
}

func TestEvents_RetriedRejectedRevoked(t *testing.T) {
	t.Parallel()
	app := newApp(t, "json")
	log := collectEvents(t, app.Broker())
	var calls atomic.Int32
	pol := codegen.DefaultRetryPolicy()
	pol.Backoff, pol.Jitter = time.Millisecond, false
	pol.AutoretryFor = func(err error) bool { return true }
	flaky := &codegen.TaskDef{Name: "test.flaky", Retry: pol, NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) {
			if calls.Add(1) == 1 {
				return nil, errors.New("not yet")
			}
			return 42, nil
		}}
	startWorker(t, app, runtime.WorkerOptions{Hostname: "w2@test"}, flaky)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := runtime.NewStub[int](flaky).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.NoError(t, err)
	retried := log.waitFor(t, "task-retried", 1)[0]
	require.Equal(t, "Exception('not yet')", retried["exception"])
	recv := log.waitFor(t, "task-received", 2)
	require.EqualValues(t, 1, recv[1]["retries"])
	require.Equal(t, res.ID(), recv[1]["parent_id"])
	require.Equal(t, "42", log.waitFor(t, "task-succeeded", 1)[0]["result"])

	// An unregistered task is rejected; an expired one revoked.
	unknown := &codegen.TaskDef{Name: "test.unknown", NewArgs: flaky.NewArgs}
	_, err = runtime.NewStub[int](unknown).With(runtime.WithApp(app)).Send(ctx, &greetArgs{})
	require.NoError(t, err)
	rej := log.waitFor(t, "task-rejected", 1)[0]
	require.Equal(t, false, rej["requeue"])
	exp, err := runtime.NewStub[int](flaky).With(runtime.WithApp(app), runtime.Expires(time.Now().Add(-time.Second))).Send(ctx, &greetArgs{})
	require.NoError(t, err)
	rev := log.waitFor(t, "task-revoked", 1)[0]
	require.Equal(t, exp.ID(), rev["uuid"])
	require.Equal(t, true, rev["expired"])
	require.Equal(t, false, rev["terminated"])
	require.Nil(t, rev["signum"])
	for _, e := range log.ofType("task-received") {
		if e["uuid"] == exp.ID() {
			require.NotNil(t, e["expires"])
			_, err := driver.ParseTime(e["expires"].(string))
			require.NoError(t, err)
		}
	}
}

func TestEvents_WithoutEvents(t *testing.T) {
	t.Parallel()
	app := newApp(t, "msgpack")
	log := collectEvents(t, app.Broker())
	def := &codegen.TaskDef{Name: "test.greet", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) { return "ok", nil }}
	w := app.NewWorker(runtime.WorkerOptions{WithoutEvents: true})
	require.Nil(t, w.Events())
	stop := startWorker(t, app, runtime.WorkerOptions{WithoutEvents: true, HeartbeatInterval: 10 * time.Millisecond}, def)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := runtime.NewStub[string](def).With(runtime.WithApp(app)).Send(ctx, &greetArgs{})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.NoError(t, err)
	stop()
	time.Sleep(50 * time.Millisecond)
	require.Empty(t, log.all())
}

// blockingTransport never finishes publishing until released.
type blockingTransport struct {
	release chan struct{}
	n       atomic.Int64
}

func (b *blockingTransport) PublishEvent(ctx context.Context, _ *driver.RawMessage) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.n.Add(1)
	return nil
}

func (b *blockingTransport) SubscribeEvents(context.Context) (<-chan *driver.RawMessage, error) {
	return nil, errors.New("not supported")
}

func TestEventDispatcher_NeverBlocksAndCountsDrops(t *testing.T) {
	t.Parallel()
	tr := &blockingTransport{release: make(chan struct{})}
	d := runtime.NewEventDispatcher(tr, runtime.EventDispatcherOptions{Hostname: "w@x", QueueSize: 4, BatchSize: 1,
		HeartbeatInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	d.Start()
	m := &driver.Message{Headers: driver.TaskHeaders{ID: "id", Task: "t"}}
	start := time.Now()
	for i := 0; i < 1000; i++ {
		d.TaskStarted(m)
	}
	require.Less(t, time.Since(start), time.Second, "hooks never wait for the transport")
	require.GreaterOrEqual(t, d.Dropped(), int64(1000-4-1))
	close(tr.release)
	require.NoError(t, d.Close(context.Background()))
	require.Equal(t, d.Sent(), tr.n.Load())
	require.Equal(t, int64(1002), d.Sent()+d.Dropped(), "online + 1000 task events + offline")
}

func TestEventDispatcher_BatchesTaskEvents(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	log := collectEvents(t, b)
	tr := &gatedTransport{inner: b, gate: make(chan struct{})}
	d := runtime.NewEventDispatcher(tr, runtime.EventDispatcherOptions{Hostname: "w@x", HeartbeatInterval: time.Hour})
	d.Start()
	m := &driver.Message{Headers: driver.TaskHeaders{ID: "id", Task: "t"}}
	for i := 0; i < 30; i++ {
		d.TaskStarted(m)
	}
	close(tr.gate) // the sender now finds 30 waiting task events
	require.NoError(t, d.Close(context.Background()))
	log.waitFor(t, "worker-offline", 1)
	require.Len(t, log.ofType("task-started"), 30)
	log.mu.Lock()
	defer log.mu.Unlock()
	var keys []string
	for _, m := range log.msgs {
		keys = append(keys, m.RoutingKey)
	}
	require.Equal(t, "worker.online", keys[0])
	require.Equal(t, "task.multi", keys[1], "30 waiting task events go as one list")
	require.Equal(t, "worker.offline", keys[len(keys)-1])
}

// gatedTransport holds the first publish until gate is closed.
type gatedTransport struct {
	inner driver.EventTransport
	gate  chan struct{}
}

func (g *gatedTransport) PublishEvent(ctx context.Context, m *driver.RawMessage) error {
	<-g.gate
	return g.inner.PublishEvent(ctx, m)
}

func (g *gatedTransport) SubscribeEvents(ctx context.Context) (<-chan *driver.RawMessage, error) {
	return g.inner.SubscribeEvents(ctx)
}

func TestUTCOffset_PositiveWest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		zone string
		east int
		want int
	}{
		{"UTC", 0, 0},
		{"CEST", 2 * 3600, -2},
		{"EST", -5 * 3600, 5},
		{"IST", 5*3600 + 1800, -6}, // Python: -19800 // 3600 == -6
		{"NST", -(3*3600 + 1800), 3},
	} {
		at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.FixedZone(tc.zone, tc.east))
		require.Equal(t, tc.want, driver.UTCOffset(at), tc.zone)
	}
}

func TestExceptionRepr(t *testing.T) {
	t.Parallel()
	require.Equal(t, "HTTPError('email provider answered 503')", driver.ExceptionRepr(&driver.ExceptionInfo{Type: "HTTPError", Message: []any{"email provider answered 503"}}))
	require.Equal(t, "ValueError('boom', 42)", driver.ExceptionRepr(&driver.ExceptionInfo{Type: "ValueError", Message: []any{"boom", int64(42)}}))
	require.Equal(t, "KeyError()", driver.ExceptionRepr(&driver.ExceptionInfo{Type: "KeyError"}))
}

// BenchmarkMemory_EventsThroughput measures the cost of Celery events on
// worker throughput over memory://: b.N tasks are enqueued, then a worker
// (concurrency 4) drains them. "off" sets WithoutEvents; "on" sends events
// with nobody listening; "on+monitor" also has a subscriber decoding every
// event message, as taskmon does; "on-nolinger" publishes what is queued
// at once instead of waiting up to BatchLinger for a full task.multi list.
//
//	go test -run '^$' -bench EventsThroughput -benchtime 200000x ./runtime/
func BenchmarkMemory_EventsThroughput(b *testing.B) {
	for _, mode := range []string{"off", "on", "on-nolinger", "on+monitor"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "on-nolinger" {
				defer runtime.SetWorkerEventLinger(-1)()
			}
			name := driver.NewID()
			app, err := runtime.New(runtime.Config{Broker: "memory://" + name,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var decoded atomic.Int64
			if mode == "on+monitor" {
				ch, _ := app.Broker().(driver.EventTransport).SubscribeEvents(ctx)
				go func() {
					for m := range ch {
						var v any
						if json.Unmarshal(m.Body, &v) == nil {
							decoded.Add(1)
						}
					}
				}()
			}
			def := &codegen.TaskDef{Name: "bench.echo", Retry: codegen.DefaultRetryPolicy(), IgnoreResult: true,
				NewArgs: func() wire.Args { return new(greetArgs) },
				Run:     func(ctx context.Context, a wire.Args) (any, error) { return a.(*greetArgs).name, nil }}
			stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
			for i := 0; i < b.N; i++ {
				if _, err := stub.Send(ctx, &greetArgs{name: "ann@example.com", times: i}); err != nil {
					b.Fatal(err)
				}
			}
			w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4, WithoutEvents: mode == "off", HeartbeatInterval: time.Second})
			w.Register(def)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			done := make(chan error, 1)
			wctx, stop := context.WithCancel(ctx)
			go func() { done <- w.Run(wctx) }()
			for w.Stats().Succeeded < int64(b.N) {
				time.Sleep(200 * time.Microsecond)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			stop()
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			// Process CPU per task: robust to other load on the machine.
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/task")
			if ev := w.Events(); ev != nil {
				b.ReportMetric(float64(ev.Dropped()), "dropped")
			}
		})
	}
}

// BenchmarkMemory_DelayRunGetEvents is BenchmarkMemory_DelayRunGet (one
// sequential round trip) with events off and on.
func BenchmarkMemory_DelayRunGetEvents(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			name := driver.NewID()
			app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			def := &codegen.TaskDef{Name: "bench.echo", Retry: codegen.DefaultRetryPolicy(),
				NewArgs: func() wire.Args { return new(greetArgs) },
				Run:     func(ctx context.Context, a wire.Args) (any, error) { return a.(*greetArgs).name, nil }}
			w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4, WithoutEvents: mode == "off"})
			w.Register(def)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := stub.Send(ctx, &greetArgs{name: "ann@example.com"})
				if err != nil {
					b.Fatal(err)
				}
				if v, err := res.Get(ctx); err != nil || v != "ann@example.com" {
					b.Fatal(v, err)
				}
			}
			b.StopTimer()
			cancel()
			<-done
		})
	}
}

func TestEventDispatcher_TaskEventsOff(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	log := collectEvents(t, b)
	var off atomic.Bool
	off.Store(true)
	d := runtime.NewEventDispatcher(b, runtime.EventDispatcherOptions{Hostname: "w@x", HeartbeatInterval: time.Hour, TaskEventsOff: off.Load})
	d.Start()
	m := &driver.Message{Headers: driver.TaskHeaders{ID: "id", Task: "t"}}
	d.TaskStarted(m)
	d.Heartbeat()
	off.Store(false)
	d.TaskStarted(m)
	require.NoError(t, d.Close(context.Background()))
	log.waitFor(t, "worker-offline", 1)
	require.Len(t, log.ofType("task-started"), 1)
	require.Len(t, log.ofType("worker-heartbeat"), 1)
}

// TestEvents_CeleryStateAcceptsThem feeds the events of a Go worker to
// Python's celery.events.state.State, the model Flower keeps, the way
// Celery's EventReceiver does (timestamp localized, local_received added):
// the worker is alive, then offline; tasks have Celery's states, names,
// results and exceptions.
func TestEvents_CeleryStateAcceptsThem(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t)
	app := newApp(t, "msgpack")
	log := collectEvents(t, app.Broker())
	ok := &codegen.TaskDef{Name: "test.greet", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) {
			return map[string]any{"hi": a.(*greetArgs).name}, nil
		}}
	bad := &codegen.TaskDef{Name: "test.bad", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) { return nil, &HTTPError{Status: 503} }}
	stop := startWorker(t, app, runtime.WorkerOptions{Hostname: "go1@test", HeartbeatInterval: 100 * time.Millisecond}, ok, bad)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r1, err := runtime.NewStub[map[string]any](ok).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "ann"})
	require.NoError(t, err)
	r2, err := runtime.NewStub[string](bad).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "bob"})
	require.NoError(t, err)
	log.waitFor(t, "task-failed", 1)
	log.waitFor(t, "task-succeeded", 1)
	log.waitFor(t, "worker-heartbeat", 1)

	// Bodies as published (objects and task.multi lists), before and after
	// worker-offline.
	bodies := func() []string {
		log.mu.Lock()
		defer log.mu.Unlock()
		var out []string
		for _, m := range log.msgs {
			out = append(out, string(m.Body))
		}
		return out
	}
	before := bodies()
	stop()
	log.waitFor(t, "worker-offline", 1)
	all := bodies()

	script := `
import json, sys, time
from celery.events.state import State
from celery.events.receiver import EventReceiver
from celery.utils.time import adjust_timestamp

def feed(state, bodies):
    for raw in bodies:
        body = json.loads(raw)
        for ev in (body if isinstance(body, list) else [body]):
            ev['timestamp'] = adjust_timestamp(ev['timestamp'], ev['utcoffset'])
            ev['local_received'] = time.time()
            state.event(ev)

data = json.load(sys.stdin)
s = State()
feed(s, data['before'])
w = s.workers['go1@test']
out = {'alive_before': w.alive, 'freq': w.freq, 'sw_ident': w.sw_ident, 'processed': w.processed}
for tid in (data['ok'], data['bad']):
    t = s.tasks[tid]
    out[tid] = {'state': t.state, 'name': t.name, 'result': t.result, 'exception': t.exception,
                'runtime_is_float': isinstance(t.runtime, float), 'args': t.args, 'worker': t.worker.hostname}
s2 = State()
feed(s2, data['all'])
out['alive_after'] = s2.workers['go1@test'].alive
json.dump(out, sys.stdout)
`
	in, err := json.Marshal(map[string]any{"before": before, "all": all, "ok": r1.ID(), "bad": r2.ID()})
	require.NoError(t, err)
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(outb, &got), string(outb))
	require.Equal(t, true, got["alive_before"], "Flower shows the Go worker online")
	require.Equal(t, false, got["alive_after"], "and offline after worker-offline")
	require.Equal(t, 0.1, got["freq"])
	require.Equal(t, "taskgen", got["sw_ident"])
	require.Equal(t, map[string]any{"state": "SUCCESS", "name": "test.greet", "result": "{'hi': 'ann'}", "exception": nil,
		"runtime_is_float": true, "args": "('ann', 0)", "worker": "go1@test"}, got[r1.ID()])
	require.Equal(t, map[string]any{"state": "FAILURE", "name": "test.bad", "result": nil, "exception": "HTTPError('email provider answered 503')",
		"runtime_is_float": false, "args": "('bob', 0)", "worker": "go1@test"}, got[r2.ID()])
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestEvents_GroupMembersNameGroupAndChord checks the fields taskmon reads
// beyond Celery's task-received: a group member's group id and index, and
// a chord header member's chord body id; other tasks have none.
func TestEvents_GroupMembersNameGroupAndChord(t *testing.T) {
	t.Parallel()
	app, ctx := canvasApp(t, "msgpack")
	log := collectEvents(t, app.Broker())
	chord, err := runtime.Chord(runtime.Group(canvastasks.Add.Sig(1, 2), canvastasks.Add.Sig(3, 4)), canvastasks.Tsum.Partial()).
		With(runtime.WithApp(app)).Delay(ctx)
	require.NoError(t, err)
	got, err := chord.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(10), got)
	group, err := runtime.Group(canvastasks.Mul.Sig(2, 2)).With(runtime.WithApp(app)).Delay(ctx)
	require.NoError(t, err)
	_, err = group.Get(ctx)
	require.NoError(t, err)

	byID := map[string]map[string]any{}
	require.Eventually(t, func() bool {
		for _, e := range log.ofType("task-received") {
			byID[e["uuid"].(string)] = e
		}
		return len(byID) == 4
	}, 10*time.Second, 5*time.Millisecond)
	body := byID[chord.ID()]
	require.Equal(t, "tasks.tsum", body["name"])
	require.NotContains(t, body, "group")
	require.NotContains(t, body, "chord")
	var gid string
	for id, e := range byID {
		if e["name"] != "tasks.add" {
			continue
		}
		require.NotEmpty(t, e["group"], id)
		if gid == "" {
			gid = e["group"].(string)
		}
		require.Equal(t, gid, e["group"], "both header members are in one group")
		require.Contains(t, []any{0.0, 1.0}, e["group_index"])
		require.Equal(t, chord.ID(), e["chord"])
	}
	m := byID[group.Results()[0].ID()]
	require.Equal(t, group.ID(), m["group"])
	require.EqualValues(t, 0, m["group_index"])
	require.NotContains(t, m, "chord", "a plain group has no chord")
}
