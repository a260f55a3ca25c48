package taskctl_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/cmd/taskctl/internal/taskctl"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// runningWorker is a Go worker started by startGoWorker.
type runningWorker struct {
	w    *runtime.Worker
	done chan struct{} // closed when Run returned
	err  error         // Run's error, once done
}

// startGoWorker runs a Go worker like goWorker and gives access to it and
// to Run's return; the test's end stops it.
func startGoWorker(t *testing.T, broker, backend, host, queue string, defs ...*codegen.TaskDef) *runningWorker {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, Hostname: host,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	rw := &runningWorker{w: app.NewWorker(runtime.WorkerOptions{Hostname: host, Queues: []string{queue}, Concurrency: 2, ShutdownTimeout: 20 * time.Second}),
		done: make(chan struct{})}
	for _, d := range defs {
		rw.w.Register(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { rw.err = rw.w.Run(ctx); close(rw.done) }()
	t.Cleanup(func() {
		cancel()
		<-rw.done
		app.Close()
	})
	return rw
}

// returned waits for Run to return (or the test's deadline) and gives its error.
func (rw *runningWorker) returned(t *testing.T, ctx context.Context) error {
	t.Helper()
	select {
	case <-rw.done:
		return rw.err
	case <-ctx.Done():
		t.Fatal("the worker's Run did not return")
		return nil
	}
}

// limitedTask records the start of each run; a run with x = -1 blocks
// until release is closed.
type limitedTask struct {
	mu      sync.Mutex
	starts  []time.Time
	started chan struct{}
	release chan struct{}
}

func (lt *limitedTask) def() *codegen.TaskDef {
	return &codegen.TaskDef{Name: "tasks.limited", Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run: func(_ context.Context, a codegen.Args) (any, error) {
			x := a.(*addArgs)
			if x.x == -1 {
				close(lt.started)
				<-lt.release
				return int64(0), nil
			}
			lt.mu.Lock()
			lt.starts = append(lt.starts, time.Now())
			lt.mu.Unlock()
			return x.x + x.y, nil
		}}
}

func (lt *limitedTask) sortedStarts() []time.Time {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	s := slices.Clone(lt.starts)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	return s
}

// TestRun_ControlGoWorker: control rate_limit and shutdown against a Go
// worker on memory://, Redis and RabbitMQ, addressed with -d: Celery's
// replies and errors, the new limit spaces the task's starts and shows in
// inspect registered, "" removes it; shutdown (no reply) lets the running
// task finish and makes the worker's Run return nil.
func TestRun_ControlGoWorker(t *testing.T) {
	eachBroker(t, runControlGoWorker)
}

func runControlGoWorker(t *testing.T, broker, backend string) {
	t.Setenv("TASKGEN_BROKER", broker)
	t.Setenv("TASKGEN_BACKEND", backend)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// Node and queue of the test's own: brokers may be shared with other
	// tests, and -d keeps the commands to this worker.
	id := driver.NewID()[:8]
	host, q := "go"+id+"@taskctl", "ctl"+id
	lt := &limitedTask{started: make(chan struct{}), release: make(chan struct{})}
	def := lt.def()
	rw := startGoWorker(t, broker, backend, host, q, def)
	require.Eventually(t, func() bool {
		code, _, _ := run(t, "", "-timeout", "300ms", "inspect", "-d", host, "ping")
		return code == 0
	}, 20*time.Second, 50*time.Millisecond)

	// Celery's errors.
	code, out, errs := run(t, "", "control", "rate_limit", "-d", host, "tasks.nope", "10/s")
	require.Equal(t, taskctl.ExitError, code, "%s %s", out, errs)
	require.Regexp(t, `(?m)^`+host+`\s+error: unknown task$`, out)
	require.Contains(t, errs, `no worker that answered runs task "tasks.nope"`)
	var replies map[string]map[string]string
	code, out, errs = run(t, "", "-json", "control", "rate_limit", "-d", host, "tasks.limited", "fast")
	require.Equal(t, taskctl.ExitError, code, "%s %s", out, errs)
	require.True(t, jsonInto(out, &replies), out)
	require.Equal(t, `Invalid rate limit string: ValueError("could not convert string to float: 'fast'")`, replies[host]["error"])
	require.Contains(t, errs, "1 of 1 workers answered with an error")

	// 5/s: the starts of four calls sent at once are 200 ms apart.
	code, out, errs = run(t, "", "control", "rate_limit", "-d", host, "tasks.limited", "5/s")
	require.Equal(t, 0, code, "%s %s", out, errs)
	require.Regexp(t, `(?m)^`+host+`\s+new rate limit set successfully$`, out)
	code, out, errs = run(t, "", "inspect", "-d", host, "registered")
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `(?m)^`+host+`\s+tasks\.limited \[rate_limit=5/s\]$`, out)

	producer, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer producer.Close()
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(producer), runtime.Queue(q))
	var rs []*runtime.AsyncResult[int64]
	sent := time.Now()
	for i := range 4 {
		res, err := stub.Send(ctx, &addArgs{x: int64(i), y: 1})
		require.NoError(t, err)
		rs = append(rs, res)
	}
	sendSpan := time.Since(sent)
	for _, res := range rs {
		_, err := res.Get(ctx)
		require.NoError(t, err)
	}
	starts := lt.sortedStarts()
	require.Len(t, starts, 4)
	// A start is recorded after its slot, the first right after its
	// dispatch: 30 ms of slack. The calls were sent within sendSpan, so
	// without the limit they would not be spaced by the broker alone.
	t.Logf("sent in %v; starts span %v", sendSpan, starts[3].Sub(starts[0]))
	require.GreaterOrEqual(t, starts[3].Sub(starts[0]), 600*time.Millisecond-30*time.Millisecond)

	// "" removes the limit (Celery's reply), and registered shows it.
	code, out, errs = run(t, "", "control", "rate_limit", "-d", host, "tasks.limited", "")
	require.Equal(t, 0, code, "%s %s", out, errs)
	require.Regexp(t, `(?m)^`+host+`\s+rate limit disabled successfully$`, out)

	// shutdown: the running task finishes, Run returns nil; no reply.
	blocked, err := stub.Send(ctx, &addArgs{x: -1})
	require.NoError(t, err)
	<-lt.started
	code, out, errs = run(t, "", "control", "shutdown", "-d", host)
	require.Equal(t, 0, code, "%s %s", out, errs)
	require.Contains(t, out, "shutdown sent to "+host)
	require.Eventually(t, func() bool {
		code, _, _ := run(t, "", "-timeout", "200ms", "inspect", "-d", host, "ping")
		return code == taskctl.ExitNoReply
	}, 20*time.Second, 50*time.Millisecond, "the worker stops answering once it stopped consuming")
	select {
	case <-rw.done:
		t.Fatalf("Run returned (%v) while a task was running", rw.err)
	default:
	}
	close(lt.release)
	require.NoError(t, rw.returned(t, ctx))
	v, err := blocked.Get(ctx)
	require.NoError(t, err, "the running task finished")
	require.Zero(t, v)
}
