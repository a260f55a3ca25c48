package runtime_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/memory"
)

// startsRecorder is a task that records when each run starts.
type startsRecorder struct {
	mu     sync.Mutex
	starts []time.Time
}

func (s *startsRecorder) def(name string) *codegen.TaskDef {
	return &codegen.TaskDef{Name: name, Retry: codegen.DefaultRetryPolicy(), NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			s.mu.Lock()
			s.starts = append(s.starts, time.Now())
			s.mu.Unlock()
			return "ok", nil
		}}
}

func (s *startsRecorder) sorted() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.starts)
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// controlWorker runs w until the test ends and waits until it answers ping.
func controlWorker(t *testing.T, app *runtime.App, w *runtime.Worker) (done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() { ch <- w.Run(ctx); close(finished) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
	})
	require.Eventually(t, func() bool {
		r, err := app.Control(ctx, "ping", nil, []string{w.Hostname()}, 200*time.Millisecond)
		return err == nil && len(r) == 1
	}, 5*time.Second, 10*time.Millisecond)
	return ch
}

// rateLimit sends Celery's rate_limit command to host and returns its reply.
func rateLimit(t *testing.T, app *runtime.App, host, task string, rate any) map[string]any {
	t.Helper()
	r, err := app.Control(t.Context(), "rate_limit", map[string]any{"task_name": task, "rate_limit": rate}, []string{host}, 2*time.Second)
	require.NoError(t, err)
	require.Contains(t, r, host)
	return r[host].(map[string]any)
}

func registered(t *testing.T, app *runtime.App, host string) []any {
	t.Helper()
	r, err := app.Control(t.Context(), "registered", nil, []string{host}, 2*time.Second)
	require.NoError(t, err)
	return r[host].([]any)
}

// TestControl_RateLimit: Celery's rate_limit command changes a task's rate
// limit on the worker at runtime, with Celery 5.2's replies and errors, and
// `registered` shows it as Celery's does.
func TestControl_RateLimit(t *testing.T) {
	t.Parallel()
	app := newApp(t, "json")
	rec := &startsRecorder{}
	def := rec.def("test.rl")
	static := &codegen.TaskDef{Name: "test.static", Retry: codegen.DefaultRetryPolicy(), RateLimit: codegen.RateLimit{N: 20, Per: time.Second},
		NewArgs: func() codegen.Args { return new(greetArgs) }, Run: def.Run}
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4, Hostname: "rl@test", ShutdownTimeout: 2 * time.Second})
	w.Register(def)
	w.Register(static)
	controlWorker(t, app, w)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
	send := func() *runtime.AsyncResult[string] {
		res, err := stub.Send(ctx, &greetArgs{name: "x"})
		require.NoError(t, err)
		return res
	}

	// Celery's errors: the rate is parsed first, then the task looked up.
	for _, tc := range []struct {
		task string
		rate any
		want string
	}{
		{"test.nope", "10/s", "unknown task"},
		{"test.rl", "abc/s", `Invalid rate limit string: ValueError("could not convert string to float: 'abc'")`},
		{"test.nope", "/m", `Invalid rate limit string: ValueError("could not convert string to float: ''")`},
		{"test.rl", "5/x", "KeyError('x')"},
		{"test.rl", "-1/s", `Invalid rate limit string: ValueError("rate limit '-1/s': want 0 (no limit) or a positive rate such as 10/s, 100/m or 1000/h")`},
	} {
		require.Equal(t, map[string]any{"error": tc.want}, rateLimit(t, app, "rl@test", tc.task, tc.rate), "%s %v", tc.task, tc.rate)
	}
	r, err := app.Control(ctx, "rate_limit", map[string]any{"task_name": "test.rl"}, []string{"rl@test"}, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"error": `TypeError("rate_limit() missing 1 required positional argument: 'rate_limit'")`}, r["rl@test"])
	require.Equal(t, []any{"test.rl", "test.static [rate_limit=20/s]"}, registered(t, app, "rl@test"))

	// 1/h: the first run takes the slot, the second is held for an hour.
	require.Equal(t, map[string]any{"ok": "new rate limit set successfully"}, rateLimit(t, app, "rl@test", "test.rl", "1/h"))
	require.Equal(t, []any{"test.rl [rate_limit=1/h]", "test.static [rate_limit=20/s]"}, registered(t, app, "rl@test"))
	_, err = send().Get(ctx)
	require.NoError(t, err)
	held := send()
	require.Eventually(t, func() bool { return w.Stats().Held == 1 }, 10*time.Second, 5*time.Millisecond)
	st, err := held.State(ctx)
	require.NoError(t, err)
	require.Equal(t, runtime.StatePending, st)

	// None removes the limit (and the reserved slot): a new call runs now.
	// The held one keeps its slot, as in Celery (its bucket's timer).
	require.Equal(t, map[string]any{"ok": "rate limit disabled successfully"}, rateLimit(t, app, "rl@test", "test.rl", nil))
	require.Equal(t, []any{"test.rl", "test.static [rate_limit=20/s]"}, registered(t, app, "rl@test"))
	_, err = send().Get(ctx)
	require.NoError(t, err, "runs without a limit")
	require.EqualValues(t, 1, w.Stats().Held)

	// "0" also removes it, with Celery's "set" reply (its `not rate_limit`
	// is false for the string "0") and shown as such.
	require.Equal(t, map[string]any{"ok": "new rate limit set successfully"}, rateLimit(t, app, "rl@test", "test.rl", "1/h"))
	_, err = send().Get(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"ok": "new rate limit set successfully"}, rateLimit(t, app, "rl@test", "test.rl", "0"))
	require.Equal(t, []any{"test.rl [rate_limit=0]", "test.static [rate_limit=20/s]"}, registered(t, app, "rl@test"))
	_, err = send().Get(ctx)
	require.NoError(t, err, "runs without a limit")

	// 5/s (also as 300/m) spaces the starts by 200 ms: four starts span at
	// least three intervals (less a little: a start is recorded after its
	// slot, the first one right after its dispatch).
	for _, rate := range []any{"5/s", "300/m", 5.0} {
		before := len(rec.sorted())
		require.Equal(t, map[string]any{"ok": "new rate limit set successfully"}, rateLimit(t, app, "rl@test", "test.rl", rate))
		var rs []*runtime.AsyncResult[string]
		for range 4 {
			rs = append(rs, send())
		}
		for _, res := range rs {
			_, err := res.Get(ctx)
			require.NoError(t, err)
		}
		starts := rec.sorted()[before:]
		require.Len(t, starts, 4)
		require.GreaterOrEqual(t, starts[3].Sub(starts[0]), 3*200*time.Millisecond-30*time.Millisecond, "rate %v", rate)
	}

	// The static limit is overridden the same way.
	require.Equal(t, map[string]any{"ok": "rate limit disabled successfully"}, rateLimit(t, app, "rl@test", "test.static", ""))
	require.Equal(t, []any{"test.rl [rate_limit=5]", "test.static [rate_limit=]"}, registered(t, app, "rl@test"))
}

// TestControl_RateLimitWhileRunning changes the limit while tasks are
// dispatched and run (-race checks the limiter is read safely).
func TestControl_RateLimitWhileRunning(t *testing.T) {
	t.Parallel()
	app := newApp(t, "msgpack")
	rec := &startsRecorder{}
	def := rec.def("test.busy")
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4, Hostname: "busy@test", ShutdownTimeout: 2 * time.Second})
	w.Register(def)
	controlWorker(t, app, w)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
	var rs []*runtime.AsyncResult[string]
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20 {
			rate := any("1000/s")
			if i%2 == 1 {
				rate = nil
			}
			r, err := app.Control(ctx, "rate_limit", map[string]any{"task_name": "test.busy", "rate_limit": rate}, []string{"busy@test"}, 2*time.Second)
			if err != nil || r["busy@test"] == nil {
				t.Errorf("rate_limit %v: %v %v", rate, r, err)
				return
			}
		}
	})
	for range 60 {
		res, err := stub.Send(ctx, &greetArgs{name: "x"})
		require.NoError(t, err)
		rs = append(rs, res)
	}
	wg.Wait()
	for _, res := range rs {
		_, err := res.Get(ctx)
		require.NoError(t, err)
	}
	require.Len(t, rec.sorted(), 60)
}

// TestControl_Shutdown: the shutdown command stops the worker it names as
// its ctx ending would: no more consuming, the running task finishes, Run
// returns nil; no reply, as from Celery. Another worker keeps running.
func TestControl_Shutdown(t *testing.T) {
	t.Parallel()
	app := newApp(t, "json")
	started := make(chan string, 1)
	release := make(chan struct{})
	slow := &codegen.TaskDef{Name: "test.slow", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			if a.(*greetArgs).name == "block" {
				started <- a.(*greetArgs).name
				<-release
			}
			return "done", nil
		}}
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 2, Hostname: "sd@test", Queues: []string{"sd"}, ShutdownTimeout: 20 * time.Second})
	w.Register(slow)
	done := controlWorker(t, app, w)
	other := app.NewWorker(runtime.WorkerOptions{Concurrency: 1, Hostname: "other@test", Queues: []string{"elsewhere"}})
	other.Register(slow)
	controlWorker(t, app, other)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stub := runtime.NewStub[string](slow).With(runtime.WithApp(app), runtime.Queue("sd"))
	running, err := stub.Send(ctx, &greetArgs{name: "block"})
	require.NoError(t, err)
	<-started

	r, err := app.Control(ctx, "shutdown", nil, []string{"sd@test"}, 300*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, r, "Celery's worker does not reply to shutdown")
	// The worker stops answering once it stopped consuming.
	require.Eventually(t, func() bool {
		r, err := app.Control(ctx, "ping", nil, []string{"sd@test"}, 100*time.Millisecond)
		return err == nil && len(r) == 0
	}, 10*time.Second, 10*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a task was running", err)
	default:
	}
	queued, err := stub.Send(ctx, &greetArgs{name: "later"})
	require.NoError(t, err)
	close(release)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("Run did not return after the shutdown command")
	}
	v, err := running.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, "done", v, "the running task finished")
	n, err := app.Broker().(*memory.Broker).QueueLength(ctx, "sd")
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the task sent after the shutdown waits in the queue")
	st, err := queued.State(ctx)
	require.NoError(t, err)
	require.Equal(t, runtime.StatePending, st)

	r, err = app.Control(ctx, "ping", nil, []string{"other@test"}, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"ok": "pong"}, r["other@test"], "the other worker still runs")
}

// TestWorker_Shutdown: Shutdown before or during Run makes Run return nil.
func TestWorker_Shutdown(t *testing.T) {
	t.Parallel()
	app := newApp(t, "json")
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 1})
	w.Shutdown()
	w.Shutdown()
	require.NoError(t, w.Run(context.Background()), "returns at once")

	w2 := app.NewWorker(runtime.WorkerOptions{Concurrency: 1, Hostname: "w2@test"})
	done := controlWorker(t, app, w2)
	w2.Shutdown()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
