package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/memory"
)

// countArgs is what taskgen generates for func f(ctx, n int).
type countArgs struct{ n int64 }

var countArgNames = codegen.ArgNames{{"n"}}

func (*countArgs) ArgNames() codegen.ArgNames             { return countArgNames }
func (a *countArgs) EncodeArgs(w codegen.ArgWriter) error { w.Int(a.n); return nil }
func (a *countArgs) DecodeArg(_ int, r codegen.ArgReader) (err error) {
	a.n, err = r.Int(64)
	return err
}

// TestUnique_ReleasedOnDeadLetter: a unique task whose message is
// dead-lettered — unregistered on the worker that got it, arguments that
// do not decode, a body over MaxBodySize — no longer holds its lock: the
// next Delay with the same arguments is accepted at once, not refused
// until the ttl (an hour here).
func TestUnique_ReleasedOnDeadLetter(t *testing.T) {
	t.Parallel()
	stringArgs := func(name string) *codegen.TaskDef { // the producer's view: f(ctx, name string)
		return &codegen.TaskDef{Name: name, Unique: time.Hour, Retry: codegen.DefaultRetryPolicy(),
			NewArgs: func() codegen.Args { return new(greetArgs) },
			Run:     func(context.Context, codegen.Args) (any, error) { return "ok", nil }}
	}
	intArgs := func(name string) *codegen.TaskDef { // the worker's: f(ctx, n int)
		return &codegen.TaskDef{Name: name, Unique: time.Hour, Retry: codegen.DefaultRetryPolicy(),
			NewArgs: func() codegen.Args { return new(countArgs) },
			Run:     func(context.Context, codegen.Args) (any, error) { return "ok", nil }}
	}
	for _, tc := range []struct {
		name     string
		producer *codegen.TaskDef
		worker   *codegen.TaskDef // registered on the worker
		opts     runtime.WorkerOptions
		reason   string
	}{
		{"unregistered", stringArgs("test.u.unknown"), intArgs("test.u.other"), runtime.WorkerOptions{}, `unregistered task "test.u.unknown"`},
		{"undecodable arguments", stringArgs("test.u.args"), intArgs("test.u.args"), runtime.WorkerOptions{}, "cannot decode arguments"},
		{"body too large", stringArgs("test.u.big"), stringArgs("test.u.big"), runtime.WorkerOptions{MaxBodySize: 64}, "exceeds the worker's MaxBodySize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := newApp(t, "json")
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			stub := runtime.NewStub[string](tc.producer).With(runtime.WithApp(app))
			args := &greetArgs{name: strings.Repeat("x", 100)}
			first, err := stub.Send(ctx, args)
			require.NoError(t, err)
			_, err = stub.Send(ctx, args)
			require.ErrorIs(t, err, runtime.ErrDuplicate, "held while pending")

			tc.opts.Concurrency = 1
			w := app.NewWorker(tc.opts)
			w.Register(tc.worker)
			wctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- w.Run(wctx) }()
			defer func() { stop(); require.NoError(t, <-done) }()
			broker := app.Broker().(*memory.Broker)
			require.Eventually(t, func() bool { return len(broker.DeadLetters()) == 1 }, 10*time.Second, 5*time.Millisecond)
			dl := broker.DeadLetters()[0]
			require.Equal(t, first.ID(), dl.Message.Headers.ID)
			require.Contains(t, dl.Reason, tc.reason)

			// The worker releases the lock after the message is set aside.
			require.Eventually(t, func() bool {
				_, err := stub.Send(ctx, args)
				return err == nil
			}, 10*time.Second, 5*time.Millisecond, "released on dead letter")
		})
	}
}
