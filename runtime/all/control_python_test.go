package all_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
)

// pythonRateLimitShutdown is a Python client's rate_limit (waiting for
// the reply) and shutdown (a cast) to one node.
const pythonRateLimitShutdown = `
import json, sys
from celery import Celery
app = Celery('ctl', broker=sys.argv[1])
app.conf.update(broker_connection_retry=False)
node = sys.argv[2]
print(json.dumps(app.control.rate_limit('tasks.add', '2/m', destination=[node], reply=True, timeout=5)))
print(json.dumps(app.control.rate_limit('tasks.nope', '2/m', destination=[node], reply=True, timeout=5)))
app.control.shutdown(destination=[node])
print('shutdown sent')
`

// TestInterop_PythonRateLimitShutdownGoWorker: Celery's CLI and a Python
// client change a Go worker's rate limit (Celery's replies; registered
// shows it as a Python worker does) and shut it down: its Run returns nil.
func TestInterop_PythonRateLimitShutdownGoWorker(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		py := testenv.Python(t)
		e := bk.pyEnv(t, 13)
		ctx := ctxT(t, 2*time.Minute)
		node := nodeName(t, "rl")
		app := newApp(t, e)
		w := app.NewWorker(runtime.WorkerOptions{Queues: e.queues(), Concurrency: 2, Hostname: node, ShutdownTimeout: 2 * time.Second})
		w.Register(addDef(e.queue, nil))
		wctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		waitPing(t, ctx, app, node)

		r := celeryJSON(t, py, e.url, "control", "rate_limit", "tasks.add", "10/m", "-t", "3", "-d", node)
		require.Equal(t, map[string]any{"ok": "new rate limit set successfully"}, r[node])
		r = celeryJSON(t, py, e.url, "inspect", "registered", "-t", "3", "-d", node)
		require.Equal(t, []any{"tasks.add [rate_limit=10/m]"}, r[node])
		r = celeryJSON(t, py, e.url, "control", "rate_limit", "tasks.add", "ten/m", "-t", "3", "-d", node)
		require.Equal(t, map[string]any{"error": `Invalid rate limit string: ValueError("could not convert string to float: 'ten'")`}, r[node])

		out, err := runPython(t, time.Minute, py, "-c", pythonRateLimitShutdown, e.url, node)
		require.NoError(t, err, out)
		require.Contains(t, out, `[{"`+node+`": {"ok": "new rate limit set successfully"}}]`)
		require.Contains(t, out, `[{"`+node+`": {"error": "unknown task"}}]`)
		require.Contains(t, out, "shutdown sent")
		select {
		case err := <-done:
			require.NoError(t, err, "Run returns nil after a remote shutdown")
		case <-ctx.Done():
			t.Fatal("the Go worker did not shut down")
		}
		r2, err := app.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		require.NoError(t, err)
		require.NotContains(t, r2, node)
	})
}
