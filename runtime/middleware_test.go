package runtime_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/canvastasks"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
)

// trail records what middleware and hooks saw, in order.
type trail struct {
	mu  sync.Mutex
	got []string
}

func (tr *trail) add(s string) {
	tr.mu.Lock()
	tr.got = append(tr.got, s)
	tr.mu.Unlock()
}

func (tr *trail) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.got)
}

type spanKey struct{}

// tag is a middleware that records its name around next and puts a
// "span" in ctx, as a tracing middleware would.
func tag(tr *trail, name string) runtime.Middleware {
	return func(next runtime.Handler) runtime.Handler {
		return func(ctx context.Context, task *runtime.TaskInfo) (any, error) {
			tr.add(name + ">" + task.Name)
			v, err := next(context.WithValue(ctx, spanKey{}, name+":"+task.ID), task)
			tr.add(name + "<" + task.Name)
			return v, err
		}
	}
}

func middlewareApp(t *testing.T, cfg runtime.Config, opts runtime.WorkerOptions, register ...func(*runtime.Worker)) (*runtime.App, context.Context) {
	t.Helper()
	name := driver.NewID()
	cfg.Broker, cfg.Backend = "memory://"+name, "memory://"+name
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	app, err := runtime.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	opts.Concurrency, opts.ShutdownTimeout = 2, 2*time.Second
	opts.Queues = []string{"celery", "images"}
	w := app.NewWorker(opts)
	for _, r := range register {
		r(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(tcancel)
	return app, tctx
}

func TestMiddleware_orderAndContext(t *testing.T) {
	tr := &trail{}
	// The publish middleware sees the span of the task whose outcome
	// publishes: the chain's second step is sent under step one's span.
	pub := func(next runtime.Publisher) runtime.Publisher {
		return func(ctx context.Context, queue string, m *driver.Message) error {
			span, _ := ctx.Value(spanKey{}).(string)
			tr.add("publish " + m.Headers.Task + " under [" + span + "]")
			return next(ctx, queue, m)
		}
	}
	app, ctx := middlewareApp(t, runtime.Config{PublishMiddleware: []runtime.PublishMiddleware{pub}},
		runtime.WorkerOptions{Middleware: []runtime.Middleware{tag(tr, "a"), tag(tr, "b")}}, canvastasks.RegisterTasks)
	res, err := runtime.Chain(canvastasks.Add.Sig(2, 3), canvastasks.Mul.Partial(4)).With(runtime.WithApp(app)).Delay(ctx)
	require.NoError(t, err)
	v, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(20), v)
	got := tr.list()
	require.Len(t, got, 10, "%q", got)
	assert.Equal(t, []string{"publish tasks.add under []", "a>tasks.add", "b>tasks.add", "b<tasks.add", "a<tasks.add"}, got[:5])
	assert.Regexp(t, `^publish tasks.mul under \[b:[0-9a-f-]{36}\]$`, got[5], "the next step is published under the step's span (the innermost middleware's)")
	assert.Equal(t, []string{"a>tasks.mul", "b>tasks.mul", "b<tasks.mul", "a<tasks.mul"}, got[6:])
}

func TestMiddleware_shortCircuitAndPanic(t *testing.T) {
	refuse := func(next runtime.Handler) runtime.Handler {
		return func(ctx context.Context, task *runtime.TaskInfo) (any, error) {
			if task.Headers["x-refuse"] == "yes" {
				return nil, errors.New("refused by middleware")
			}
			if task.Headers["x-panic"] == "yes" {
				panic("middleware panic")
			}
			return next(ctx, task)
		}
	}
	app, ctx := middlewareApp(t, runtime.Config{}, runtime.WorkerOptions{Middleware: []runtime.Middleware{refuse}}, canvastasks.RegisterTasks)
	for _, h := range []string{"x-refuse", "x-panic"} {
		res, err := canvastasks.Add.With(runtime.WithApp(app), runtime.Headers(map[string]any{h: "yes"})).Delay(ctx, 1, 2)
		require.NoError(t, err)
		_, err = res.Get(ctx)
		var te *runtime.TaskError
		require.ErrorAs(t, err, &te, h)
		assert.Equal(t, runtime.StateFailure, te.State)
	}
	// The worker survived both.
	res, err := canvastasks.Add.With(runtime.WithApp(app)).Delay(ctx, 1, 2)
	require.NoError(t, err)
	v, err := res.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), v)
}

func TestPublishMiddleware_headersReachTheTask(t *testing.T) {
	stamp := func(next runtime.Publisher) runtime.Publisher {
		return func(ctx context.Context, queue string, m *driver.Message) error {
			if m.Headers.Extra == nil {
				m.Headers.Extra = map[string]any{}
			}
			m.Headers.Extra["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			return next(ctx, queue, m)
		}
	}
	var seen sync.Map
	look := func(next runtime.Handler) runtime.Handler {
		return func(ctx context.Context, task *runtime.TaskInfo) (any, error) {
			seen.Store(task.ID, task.Headers["traceparent"])
			return next(ctx, task)
		}
	}
	refuse := func(next runtime.Publisher) runtime.Publisher {
		return func(ctx context.Context, queue string, m *driver.Message) error {
			if queue == "forbidden" {
				return errors.New("no publishing to forbidden")
			}
			return next(ctx, queue, m)
		}
	}
	app, ctx := middlewareApp(t, runtime.Config{PublishMiddleware: []runtime.PublishMiddleware{stamp, refuse}},
		runtime.WorkerOptions{Middleware: []runtime.Middleware{look}}, canvastasks.RegisterTasks)
	res, err := canvastasks.Add.With(runtime.WithApp(app)).Delay(ctx, 1, 2)
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.NoError(t, err)
	tp, _ := seen.Load(res.ID())
	assert.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tp)
	_, err = canvastasks.Add.With(runtime.WithApp(app), runtime.Queue("forbidden")).Delay(ctx, 1, 2)
	require.ErrorContains(t, err, "no publishing to forbidden")
}

func TestHooks_celerySignals(t *testing.T) {
	tr := &trail{}
	hooks := &runtime.Hooks{
		BeforePublish: func(_ context.Context, queue string, m *driver.Message) {
			tr.add("before_publish " + m.Headers.Task + " retries=" + itoa(m.Headers.Retries))
		},
		AfterPublish: func(_ context.Context, _ string, m *driver.Message, err error) {
			tr.add("after_publish " + m.Headers.Task + " retries=" + itoa(m.Headers.Retries) + errSuffix(err))
		},
		Prerun: func(_ context.Context, task *runtime.TaskInfo) { tr.add("prerun " + task.Name) },
		Postrun: func(_ context.Context, task *runtime.TaskInfo, _ any, err error) {
			tr.add("postrun " + task.Name + errSuffix(err))
		},
		Retry: func(_ context.Context, task *runtime.TaskInfo, err error, countdown time.Duration) {
			tr.add("retry " + task.Name + " after " + countdown.String())
		},
		Failure: func(_ context.Context, task *runtime.TaskInfo, err error) {
			tr.add("failure " + task.Name + errSuffix(err))
		},
	}
	app, ctx := middlewareApp(t, runtime.Config{Hooks: hooks}, runtime.WorkerOptions{}, exampletasks.RegisterTasks)
	// jobs.poll asks for a retry (10 ms) until it has seen 2 retries:
	// max_retries 2, so want=3 fails for good after the second retry.
	res, err := exampletasks.Poll.With(runtime.WithApp(app)).Delay(ctx, 3)
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.Error(t, err)
	// The caller's after_publish races the worker, which may run the task
	// before Delay's goroutine gets back from the publish (seen in CI): it
	// only has to come after its before_publish. The worker's own hooks
	// come in order (each retry is due 10 ms after its publish).
	got := tr.list()
	i := slices.Index(got, "after_publish jobs.poll retries=0")
	require.Positive(t, i, "the caller's after_publish, after its before_publish: %q", got)
	got = slices.Delete(got, i, i+1)
	assert.Equal(t, []string{
		"before_publish jobs.poll retries=0",
		"prerun jobs.poll", "postrun jobs.poll: not ready at retry 0",
		"before_publish jobs.poll retries=1", "after_publish jobs.poll retries=1", "retry jobs.poll after 10ms",
		"prerun jobs.poll", "postrun jobs.poll: not ready at retry 1",
		"before_publish jobs.poll retries=2", "after_publish jobs.poll retries=2", "retry jobs.poll after 10ms",
		"prerun jobs.poll", "postrun jobs.poll: not ready at retry 2",
		"failure jobs.poll: not ready at retry 2",
	}, got)
}

func itoa(n int) string { return string(rune('0' + n)) }

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	var re *runtime.RetryError
	if errors.As(err, &re) && re.Err != nil {
		return ": " + re.Err.Error()
	}
	return ": " + err.Error()
}
