package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
)

// greetArgs is what taskgen generates for func greet(ctx, name string, times int).
type greetArgs struct {
	name  string
	times int
}

var greetArgsNames = codegen.ArgNames{{"name"}, {"times"}}

func (*greetArgs) ArgNames() codegen.ArgNames { return greetArgsNames }
func (a *greetArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.String(a.name)
	w.Int(int64(a.times))
	return nil
}
func (a *greetArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	switch i {
	case 0:
		a.name, err = r.String()
	case 1:
		var v int64
		v, err = r.Int(64)
		a.times = int(v)
	}
	return err
}

type flakyErr struct{}

func (flakyErr) Error() string { return "flaky" }

func newApp(t *testing.T, ser string) *runtime.App {
	t.Helper()
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name, Serializer: ser})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

func runWorker(t *testing.T, app *runtime.App, defs ...*codegen.TaskDef) {
	t.Helper()
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 2, ShutdownTimeout: 2 * time.Second})
	for _, d := range defs {
		w.Register(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func TestWorker_DelayRunGet(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			app := newApp(t, ser)
			def := &codegen.TaskDef{
				Name:    "test.greet",
				Retry:   codegen.DefaultRetryPolicy(),
				NewArgs: func() codegen.Args { return new(greetArgs) },
				Run: func(ctx context.Context, a codegen.Args) (any, error) {
					x := a.(*greetArgs)
					info, ok := runtime.TaskFromContext(ctx)
					if !ok || info.Name != "test.greet" {
						return nil, errors.New("no task info")
					}
					s := ""
					for i := 0; i < x.times; i++ {
						s += "hi " + x.name + "; "
					}
					return s, nil
				},
			}
			runWorker(t, app, def)
			stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := stub.Send(ctx, &greetArgs{name: "ann", times: 2})
			require.NoError(t, err)
			got, err := res.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, "hi ann; hi ann; ", got)
			st, err := res.State(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.StateSuccess, st)
		})
	}
}

func TestWorker_AutoretryThenSuccess(t *testing.T) {
	t.Parallel()
	app := newApp(t, "msgpack")
	var calls atomic.Int32
	pol := codegen.DefaultRetryPolicy()
	pol.Backoff = 10 * time.Millisecond
	pol.Jitter = false
	pol.AutoretryFor = func(err error) bool { _, ok := errors.AsType[flakyErr](err); return ok }
	def := &codegen.TaskDef{Name: "test.flaky", Retry: pol, NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			if calls.Add(1) < 3 {
				return nil, flakyErr{}
			}
			info, _ := runtime.TaskFromContext(ctx)
			return info.Retries, nil
		}}
	runWorker(t, app, def)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := runtime.NewStub[int](def).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
	require.NoError(t, err)
	got, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, got)
	require.EqualValues(t, 3, calls.Load())
}

func TestWorker_RetriesExhaustedAndPanics(t *testing.T) {
	t.Parallel()
	app := newApp(t, "json")
	pol := codegen.DefaultRetryPolicy()
	pol.MaxRetries = 2
	pol.Backoff = time.Millisecond
	pol.AutoretryFor = func(err error) bool { return true }
	var calls atomic.Int32
	failing := &codegen.TaskDef{Name: "test.failing", Retry: pol, NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) { calls.Add(1); return nil, flakyErr{} }}
	panicking := &codegen.TaskDef{Name: "test.panicking", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) { panic("boom") }}
	runWorker(t, app, failing, panicking)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := runtime.NewStub[string](failing).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, runtime.StateFailure, te.State)
	require.Equal(t, "flakyErr", te.Exception.Type)
	require.EqualValues(t, 3, calls.Load(), "1 run + 2 retries")

	res, err = runtime.NewStub[string](panicking).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.ErrorAs(t, err, &te)
	require.Equal(t, "RuntimeError", te.Exception.Type)
	require.Contains(t, te.Error(), "boom")
}

func TestWorker_DeadLettersUnknownTaskAndBadArgs(t *testing.T) {
	t.Parallel()
	app := newApp(t, "msgpack")
	def := &codegen.TaskDef{Name: "test.greet", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) { return "ok", nil }}
	unknown := &codegen.TaskDef{Name: "test.unknown", NewArgs: def.NewArgs}
	runWorker(t, app, def)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := runtime.NewStub[string](unknown).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "NotRegistered", te.Exception.Type)

	// A body whose second argument is a string, not an int.
	m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8",
		Headers: driver.TaskHeaders{Task: "test.greet", ID: driver.NewID()},
		Body:    []byte(`[["ann", "two"], {}, null]`)}
	require.NoError(t, app.Broker().Publish(ctx, "celery", m))
	_, err = runtime.NewAsyncResult[string](app, m.Headers.ID).Get(ctx)
	require.ErrorAs(t, err, &te)
	require.Contains(t, te.Error(), `argument "times"`)

	// The worker is still alive.
	res, err = runtime.NewStub[string](def).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
	require.NoError(t, err)
	v, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, "ok", v)
	dead := app.Broker().(*memory.Broker).DeadLetters()
	require.Len(t, dead, 2)
}

func TestWorker_RateLimitSpacesStarts(t *testing.T) {
	t.Parallel()
	app := newApp(t, "msgpack")
	var mu sync.Mutex
	var starts []time.Time
	def := &codegen.TaskDef{Name: "test.limited", Retry: codegen.DefaultRetryPolicy(), RateLimit: codegen.RateLimit{N: 20, Per: time.Second},
		NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			return "ok", nil
		}}
	runWorker(t, app, def)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var results []*runtime.AsyncResult[string]
	for i := 0; i < 5; i++ {
		res, err := runtime.NewStub[string](def).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
		require.NoError(t, err)
		results = append(results, res)
	}
	for _, r := range results {
		_, err := r.Get(ctx)
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, starts, 5)
	// 20/s: one start every 50 ms, so 5 starts span at least 4 intervals.
	first, last := starts[0], starts[0]
	for _, s := range starts {
		if s.Before(first) {
			first = s
		}
		if s.After(last) {
			last = s
		}
	}
	require.GreaterOrEqual(t, last.Sub(first), 190*time.Millisecond)
}

func TestWorker_DeadLettersOversizedBody(t *testing.T) {
	t.Parallel()
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name})
	require.NoError(t, err)
	def := &codegen.TaskDef{Name: "test.greet", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() codegen.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) { return a.(*greetArgs).name[:3], nil }}
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 1, MaxBodySize: 1000})
	w.Register(def)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()
	stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
	_, err = stub.Send(ctx, &greetArgs{name: strings.Repeat("x", 2000)})
	require.NoError(t, err)
	res, err := stub.Send(ctx, &greetArgs{name: "small"})
	require.NoError(t, err)
	v, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, "sma", v)
	require.Eventually(t, func() bool { return w.Stats().DeadLettered == 1 }, 5*time.Second, 10*time.Millisecond)
	dead := app.Broker().(*memory.Broker).DeadLetters()
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "exceeds the worker's MaxBodySize")
}
