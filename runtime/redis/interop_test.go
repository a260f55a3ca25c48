package redis_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
)

// python runs script with args under the test Python (Celery 5.2.6, kombu
// 5.2.4) and returns its standard output.
func python(t *testing.T, script string, args ...string) string {
	t.Helper()
	py := testenv.Python(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	return string(out)
}

// TestInteropPythonSendsGoRunsPythonGets: a Python Celery client sends a
// task with send_task, a Go worker runs it, and the Python client's
// AsyncResult.get() (which waits on pub/sub) returns the Go result. The
// first call has priority 5 (list celery\x06\x163), the second passes y by
// keyword.
func TestInteropPythonSendsGoRunsPythonGets(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	app := newApp(t, srv.URL(), "json")
	def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y, nil })
	runWorker(t, app, runtime.WorkerOptions{}, def)
	out := python(t, `
import sys
from celery import Celery
app = Celery('proj', broker=sys.argv[1], backend=sys.argv[1])
app.conf.update(task_serializer='json', result_serializer='json', accept_content=['json'])
r = app.send_task('tasks.add', args=(2, 3), queue='celery', priority=5)
print(r.get(timeout=20))
r = app.send_task('tasks.add', args=(1,), kwargs={'y': 41})
print(r.get(timeout=20))
`, srv.URL())
	require.Equal(t, "5\n42\n", out)
}

// TestInteropGoPublishesPythonConsumes: kombu's own Redis consumer reads
// a Go-published envelope (body, headers, properties) and acknowledges it.
func TestInteropGoPublishesPythonConsumes(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	b := openBroker(t, srv.URL())
	ctx := ctxT(t, 30*time.Second)
	m := pubMsg("go-to-py", 0)
	m.Headers.ETA = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	m.Expiration = "120000"
	require.NoError(t, b.Publish(ctx, "pyq", m))
	out := python(t, `
import sys, json
from kombu import Connection
with Connection(sys.argv[1]) as conn:
    q = conn.SimpleQueue('pyq')
    msg = q.get(timeout=10)
    print(json.dumps({'payload': msg.payload, 'task': msg.headers['task'], 'id': msg.headers['id'],
        'eta': msg.headers['eta'], 'ct': msg.content_type, 'rk': msg.delivery_info['routing_key'],
        'tag': msg.delivery_tag, 'expiration': msg.properties.get('expiration')}))
    msg.ack()
    q.close()
`, srv.URL())
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, []any{[]any{1.0, 2.0}, map[string]any{}, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}}, got["payload"])
	require.Equal(t, "tasks.add", got["task"])
	require.Equal(t, "go-to-py", got["id"])
	require.Equal(t, "2026-01-02T03:04:05.123456+00:00", got["eta"])
	require.Equal(t, "application/json", got["ct"])
	require.Equal(t, "pyq", got["rk"])
	require.Len(t, got["tag"], 36)
	require.Equal(t, "120000", got["expiration"])
	require.Zero(t, b.Client().HLen(ctx, "unacked").Val())
}

// TestInteropPythonRestoresDeadGoConsumer: a Go consumer takes a message and
// dies; kombu's restore_visible (what every Python worker runs while idle)
// puts it back, and a Go consumer gets it again, marked redelivered.
func TestInteropPythonRestoresDeadGoConsumer(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	raw := srv.URL() + "?visibility_timeout=1h" // Go never restores in this test
	ctx := ctxT(t, 30*time.Second)
	a := openBroker(t, raw)
	m := pubMsg("dead-go", 7)
	require.NoError(t, a.Publish(ctx, "celery", m))
	actx, acancel := context.WithCancel(ctx)
	ds, err := a.Consume(actx, []string{"celery"}, 1)
	require.NoError(t, err)
	d := <-ds
	require.Equal(t, "dead-go", d.Message().Headers.ID)
	acancel()
	for range ds {
	}
	require.NoError(t, a.Close())
	time.Sleep(1100 * time.Millisecond)

	python(t, `
import sys
from kombu import Connection
with Connection(sys.argv[1], transport_options={'visibility_timeout': 1}) as conn:
    conn.default_channel.qos.restore_visible()
`, srv.URL())
	b := openBroker(t, raw)
	require.Zero(t, b.Client().HLen(ctx, "unacked").Val())
	ds2, err := b.Consume(ctx, []string{"celery"}, 1)
	require.NoError(t, err)
	d2 := <-ds2
	require.NoError(t, d2.DecodeError())
	require.Equal(t, "dead-go", d2.Message().Headers.ID)
	require.True(t, d2.Message().Redelivered)
	require.NoError(t, d2.Ack())
}

// TestInteropGoRestoresDeadPythonConsumer: a Python kombu consumer takes a
// message without acknowledging and dies; the Go consumer restores it after
// the visibility timeout and runs it.
func TestInteropGoRestoresDeadPythonConsumer(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	ctx := ctxT(t, 30*time.Second)
	b0 := openBroker(t, srv.URL())
	require.NoError(t, b0.Publish(ctx, "celery", pubMsg("dead-py", 0)))
	python(t, `
import sys, os
from kombu import Connection
conn = Connection(sys.argv[1])
q = conn.SimpleQueue('celery')
msg = q.get(timeout=10)
assert msg.headers['id'] == 'dead-py'
os._exit(0)  # die without acknowledging
`, srv.URL())
	require.EqualValues(t, 1, b0.Client().HLen(ctx, "unacked").Val())
	b := openBroker(t, srv.URL()+"?visibility_timeout=1&restore_interval=200ms")
	ds, err := b.Consume(ctx, []string{"celery"}, 1)
	require.NoError(t, err)
	d := <-ds
	require.NoError(t, d.DecodeError())
	require.Equal(t, "dead-py", d.Message().Headers.ID)
	require.True(t, d.Message().Redelivered)
	require.NoError(t, d.Ack())
}

// TestInteropSentinel: Python Celery configured the kombu way for
// Sentinel (the same sentinel:// list, master_name in
// broker_transport_options and result_backend_transport_options) sends a
// task that a Go worker on the sentinel:// URL runs, and gets its result;
// then the same after a failover, with the same Python configuration and
// the same Go worker.
func TestInteropSentinel(t *testing.T) {
	t.Parallel()
	d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{Replicas: 1})
	app := newApp(t, d.URL(), "json")
	def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y, nil })
	runWorker(t, app, runtime.WorkerOptions{}, def)
	pyURL, _, _ := strings.Cut(d.URL(), "?") // kombu takes no options from the URL
	script := `
import sys
from celery import Celery
app = Celery('proj', broker=sys.argv[1], backend=sys.argv[1])
app.conf.update(task_serializer='json', result_serializer='json', accept_content=['json'],
    broker_transport_options={'master_name': sys.argv[2]},
    result_backend_transport_options={'master_name': sys.argv[2]})
r = app.send_task('tasks.add', args=(2, 3))
print(r.get(timeout=20))
`
	require.Equal(t, "5\n", python(t, script, pyURL, d.MasterName()))
	old := d.KillMaster()
	d.WaitFailover(old.Addr())
	require.Equal(t, "5\n", python(t, script, pyURL, d.MasterName()))
}
