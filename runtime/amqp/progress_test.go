package amqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
)

// awaitProgress polls res.Progress until it returns want: on rpc:// each
// state is a message the caller's reply queue receives some time after
// the worker sent it. It fails the test with the last value seen when ctx
// ends first or the task reaches its final state instead.
func awaitProgress[R any](t *testing.T, ctx context.Context, res *runtime.AsyncResult[R], want runtime.ProgressInfo) {
	t.Helper()
	var last runtime.ProgressInfo
	var lastErr error
	for {
		last, lastErr = res.Progress(ctx)
		if lastErr == nil && last == want {
			return
		}
		if last.Ready() && !want.Ready() {
			t.Fatalf("progress of %s: want %+v, the task ended: %+v", res.ID(), want, last)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("progress of %s: want %+v, last saw %+v (err %v)", res.ID(), want, last, lastErr)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestProgress_RPC: over rpc:// a Go task's UpdateState and Progress are
// messages to the caller's reply queue, where the latest wins: the caller
// reads each stepped intermediate state through Progress and Info, a Get
// started mid-way waits past PROGRESS, and the final state replaces them.
// Another App (here the worker's) sees PENDING throughout: only the
// caller can read them.
func TestProgress_RPC(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			q := queueName(t)
			purgeLater(t, raw, q)
			caller, worker := newRPCApp(t, raw, ser), newRPCApp(t, raw, ser)
			stepped, next := make(chan int), make(chan struct{})
			def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
				if err := runtime.UpdateState(ctx, "VALIDATING", map[string]any{"file": "contacts.csv"}); err != nil {
					return nil, err
				}
				stepped <- 0
				<-next
				for i := 1; i <= int(a.x); i++ {
					if err := runtime.Progress(ctx, i, int(a.x), "row"); err != nil {
						return nil, err
					}
					stepped <- i
					<-next
				}
				return a.x, nil
			})
			runWorker(t, worker, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2}, def)
			ctx := ctxT(t, 30*time.Second)
			res, err := runtime.NewStub[int64](def).With(runtime.WithApp(caller)).Send(ctx, &addArgs{x: 3})
			require.NoError(t, err)
			other := runtime.NewAsyncResult[int64](worker, res.ID())

			require.Equal(t, 0, <-stepped)
			awaitProgress(t, ctx, res, runtime.ProgressInfo{State: "VALIDATING"})
			info, err := res.Info(ctx)
			require.NoError(t, err)
			var meta map[string]any
			require.NoError(t, info.Decode(&meta))
			require.Equal(t, map[string]any{"file": "contacts.csv"}, meta)
			next <- struct{}{}

			got := make(chan error, 1)
			for i := 1; i <= 3; i++ {
				require.Equal(t, i, <-stepped)
				awaitProgress(t, ctx, res, runtime.ProgressInfo{State: runtime.StateProgress, Current: i, Total: 3, Note: "row"})
				info, err := res.Info(ctx)
				require.NoError(t, err)
				var m map[string]any
				require.NoError(t, info.Decode(&m))
				require.Equal(t, map[string]any{"current": int64(i), "total": int64(3), "note": "row"}, m)
				op, err := other.Progress(ctx)
				require.NoError(t, err)
				require.Equal(t, runtime.ProgressInfo{State: runtime.StatePending}, op, "only the caller reads rpc:// states")
				if i == 1 {
					go func() {
						v, err := res.Get(ctx)
						if err == nil && v != 3 {
							err = context.Canceled
						}
						got <- err
					}()
				}
				next <- struct{}{}
			}
			require.NoError(t, <-got)
			p, err := res.Progress(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.ProgressInfo{State: runtime.StateSuccess}, p)
			require.True(t, p.Ready())
		})
	}
}

// TestProgress_RPCNoReplyTo: a task whose message names no reply queue
// (its producer's backend is not rpc://) has nowhere to send its progress:
// Progress stores nothing and does not fail the task, as in Celery.
func TestProgress_RPCNoReplyTo(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	producer := newApp(t, raw, "json")
	worker := newRPCApp(t, raw, "json")
	errs := make(chan error, 1)
	def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		errs <- runtime.Progress(ctx, 1, 2, "row")
		return nil, nil
	})
	runWorker(t, worker, runtime.WorkerOptions{Queues: []string{q}}, def)
	_, err := runtime.NewStub[int64](def).With(runtime.WithApp(producer)).Send(ctxT(t, 30*time.Second), &addArgs{})
	require.NoError(t, err)
	require.NoError(t, <-errs)
}
