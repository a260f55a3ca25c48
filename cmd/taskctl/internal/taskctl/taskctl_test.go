package taskctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/cmd/taskctl/internal/taskctl"
	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// addArgs is what taskgen generates for func add(ctx, x, y int).
type addArgs struct{ x, y int64 }

var addArgNames = codegen.ArgNames{{"x"}, {"y"}}

func (*addArgs) ArgNames() codegen.ArgNames { return addArgNames }
func (a *addArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.Int(a.x)
	w.Int(a.y)
	return nil
}
func (a *addArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	if i == 0 {
		a.x, err = r.Int(64)
	} else {
		a.y, err = r.Int(64)
	}
	return err
}

var addDef = &codegen.TaskDef{Name: "tasks.add", Retry: codegen.DefaultRetryPolicy(),
	NewArgs: func() codegen.Args { return new(addArgs) },
	Run:     func(_ context.Context, a codegen.Args) (any, error) { x := a.(*addArgs); return x.x + x.y, nil }}

// run runs taskctl in process with stdin.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = taskctl.Run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// runJSON runs taskctl -json, requires exit 0 and decodes stdout into v.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, out, errs := run(t, "", append([]string{"-json"}, args...)...)
	require.Equal(t, 0, code, "taskctl %v: stderr %s", args, errs)
	require.NoError(t, json.Unmarshal([]byte(out), v), "stdout %s", out)
}

func TestRun_Usage(t *testing.T) {
	t.Setenv("TASKGEN_BROKER", "")
	code, _, errs := run(t, "", "-h")
	require.Equal(t, 0, code)
	require.Contains(t, errs, "Exit codes: 0 ok, 1 error")
	require.Contains(t, errs, "dead-letter requeue")

	code, _, errs = run(t, "", "queues")
	require.Equal(t, taskctl.ExitUsage, code)
	require.Contains(t, errs, "TASKGEN_BROKER")

	code, _, errs = run(t, "", "-broker", "memory://usage", "frobnicate")
	require.Equal(t, taskctl.ExitUsage, code)
	require.Contains(t, errs, `unknown verb "frobnicate"`)

	code, _, errs = run(t, "", "-broker", "memory://usage", "call", "tasks.add", "alice")
	require.Equal(t, taskctl.ExitUsage, code)
	require.Contains(t, errs, "not JSON")

	code, _, errs = run(t, "", "-broker", "memory://usage", "inspect", "everything")
	require.Equal(t, taskctl.ExitUsage, code)
	require.Contains(t, errs, "want one of ping")

	code, _, errs = run(t, "", "-broker", "memory://usage", "dead-letter", "requeue")
	require.Equal(t, taskctl.ExitUsage, code)
	require.Contains(t, errs, "want -all or one or more ids")

	code, _, errs = run(t, "", "-broker", "memory://usage", "-timeout", "100ms", "inspect", "ping")
	require.Equal(t, taskctl.ExitNoReply, code, "no worker: %s", errs)
	require.Contains(t, errs, "no reply from any worker")
}

// goWorker runs a Go worker on broker (and backend) consuming queues,
// with defs registered, until the returned stop is called.
func goWorker(t *testing.T, broker, backend, host, queue string, defs ...*codegen.TaskDef) (stop func()) {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, Hostname: host,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	w := app.NewWorker(runtime.WorkerOptions{Hostname: host, Queues: []string{queue}, Concurrency: 2, ShutdownTimeout: 2 * time.Second})
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
			app.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// eachBroker runs run as a subtest on memory://, on Redis (broker and
// backend, a key prefix of its own) and on RabbitMQ with the Redis backend;
// under -short only on memory://.
func eachBroker(t *testing.T, run func(t *testing.T, broker, backend string)) {
	for _, tc := range []struct {
		name            string
		broker, backend func(t *testing.T) string
	}{
		{"memory", func(t *testing.T) string { return "memory://" + driver.NewID() }, nil},
		{"redis", func(t *testing.T) string {
			return testenv.RedisURL(t) + "?global_keyprefix=taskctl" + driver.NewID()[:8] + ":"
		}, nil},
		{"amqp", func(t *testing.T) string { return testenv.AMQPURL(t) }, func(t *testing.T) string { return testenv.RedisURL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "memory" {
				testenv.SkipIfShort(t, "needs "+tc.name)
			}
			broker := tc.broker(t)
			backend := broker
			if tc.backend != nil {
				backend = tc.backend(t)
			}
			run(t, broker, backend)
		})
	}
}

type deadLetter struct {
	ID, Task, Queue, Reason, Time, Args string
}

// TestRun_DeadLetterRoundTrip: a task no worker knows is dead-lettered by a
// Go worker, listed with its name, id, queue, reason and time, requeued
// once a worker registers it (and runs: its result is read back), and a
// second one dropped; purge asks first and empties a queue.
func TestRun_DeadLetterRoundTrip(t *testing.T) {
	eachBroker(t, runDeadLetterRoundTrip)
}

func runDeadLetterRoundTrip(t *testing.T, broker, backend string) {
	t.Setenv("TASKGEN_BROKER", broker)
	t.Setenv("TASKGEN_BACKEND", backend)
	// A queue of the test's own (brokers may be shared with other tests).
	q := "taskctl" + driver.NewID()[:8]
	stop := goWorker(t, broker, backend, "w1@taskctl", q) // knows no task
	var called map[string]string
	runJSON(t, &called, "call", "-queue", q, "tasks.add", "2", "3")
	id := called["task_id"]
	require.Equal(t, q, called["queue"])

	var dls []deadLetter
	require.Eventually(t, func() bool {
		runJSON(t, &dls, "dead-letter", "list", "-queue", q)
		return len(dls) == 1
	}, 20*time.Second, 50*time.Millisecond)
	dl := dls[0]
	require.Equal(t, id, dl.ID)
	require.Equal(t, "tasks.add", dl.Task)
	require.Equal(t, q, dl.Queue)
	require.Contains(t, dl.Reason, "tasks.add")
	require.Equal(t, "(2, 3)", dl.Args)
	tm, err := time.Parse(time.RFC3339Nano, dl.Time)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), tm, time.Minute)

	code, out, errs := run(t, "", "dead-letter", "list", "-queue", q)
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `(?m)^ID\s+TASK\s+QUEUE\s+TIME\s+REASON$`, out)
	require.Contains(t, out, id)

	var queues []struct {
		Name      string
		Ready     int64
		Consumers int
		Dead      int64 `json:"dead_letters"`
	}
	runJSON(t, &queues, "queues", q)
	require.Len(t, queues, 1)
	require.Equal(t, q, queues[0].Name)
	require.Equal(t, 1, queues[0].Consumers, "w1 consumes the queue")
	require.EqualValues(t, 1, queues[0].Dead)

	// The fix: a worker that registers tasks.add; the requeued message runs.
	stop()
	goWorker(t, broker, backend, "w2@taskctl", q, addDef)
	var moved []struct {
		Queue string
		Count int
	}
	runJSON(t, &moved, "dead-letter", "requeue", "-queue", q, id)
	require.Equal(t, 1, moved[0].Count)
	// The dead-lettering worker stored FAILURE (NotRegistered); the run
	// after the requeue replaces it.
	var res map[string]any
	require.Eventually(t, func() bool {
		runJSON(t, &res, "result", id)
		return res["state"] == "SUCCESS"
	}, 20*time.Second, 50*time.Millisecond, "last %v", res)
	require.EqualValues(t, 5, res["result"])
	runJSON(t, &dls, "dead-letter", "list", "-queue", q)
	require.Empty(t, dls)

	// Another unknown task: listed, then dropped.
	runJSON(t, &called, "call", "-queue", q, "tasks.nope", `"x"`)
	require.Eventually(t, func() bool {
		runJSON(t, &dls, "dead-letter", "list", "-queue", q)
		return len(dls) == 1
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, "tasks.nope", dls[0].Task)
	runJSON(t, &moved, "dead-letter", "drop", "-queue", q, dls[0].ID)
	require.Equal(t, 1, moved[0].Count)
	runJSON(t, &dls, "dead-letter", "list", "-queue", q)
	require.Empty(t, dls)

	// purge: refused without -y off a terminal, declined at the prompt, done with -y.
	idle := "idle" + driver.NewID()[:8]
	runJSON(t, &called, "call", "-queue", idle, "tasks.add", "1", "1")
	runJSON(t, &called, "call", "-queue", idle, "tasks.add", "1", "2")
	code, _, errs = run(t, "", "purge", idle)
	require.Equal(t, taskctl.ExitAborted, code)
	require.Contains(t, errs, "pass -y")
	code, _, errs = taskctlWithTTY(t, "n\n", "purge", idle)
	require.Equal(t, taskctl.ExitAborted, code)
	require.Contains(t, errs, "Purge 2 messages from "+idle+"?")
	var purged []struct {
		Queue  string
		Purged int64
	}
	runJSON(t, &purged, "purge", "-y", idle)
	require.EqualValues(t, 2, purged[0].Purged)
	runJSON(t, &queues, "queues", idle)
	require.Zero(t, queues[0].Ready)
}

// tty is stdin that says it is a terminal.
type tty struct{ *strings.Reader }

func (tty) IsTerminal() bool { return true }

func taskctlWithTTY(t *testing.T, stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := taskctl.Run(t.Context(), args, tty{strings.NewReader(stdin)}, &out, &errb)
	return code, out.String(), errb.String()
}
