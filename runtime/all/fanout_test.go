package all_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestControl_GoRoundTrip: a Go client inspects a Go worker from another
// app (ping, stats, registered, active_queues, active), revokes a running
// task (terminate) and a queued one, and runs concurrent inspections that
// each get their own replies.
func TestControl_GoRoundTrip(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		e := bk.goEnv(t)
		ctx := ctxT(t, 60*time.Second)
		node := nodeName(t, "w")
		wapp := newApp(t, e)
		client := newApp(t, e)
		started := make(chan string, 4)
		slow := slowDef(e.queue, started)
		runWorker(t, wapp, runtime.WorkerOptions{Queues: e.queues(), Concurrency: 1, Hostname: node}, addDef(e.queue, nil), slow)
		waitPing(t, ctx, client, node)

		replies, err := client.Inspect(ctx, "ping", nil, time.Second)
		require.NoError(t, err)
		bk.requirePong(t, replies, node)

		replies, err = client.Inspect(ctx, "registered", nil, time.Second)
		require.NoError(t, err)
		require.ElementsMatch(t, []any{"tasks.add", "tasks.slow"}, replies[node])

		replies, err = client.Inspect(ctx, "active_queues", nil, time.Second)
		require.NoError(t, err)
		qs := replies[node].([]any)
		require.Len(t, qs, 1)
		require.Equal(t, e.queueName(), qs[0].(map[string]any)["name"])

		res, err := runtime.NewStub[int](addDef(e.queue, nil)).With(runtime.WithApp(client)).Send(ctx, &addArgs{x: 1, y: 2, z: 3})
		require.NoError(t, err)
		n, err := res.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, 6, n)

		replies, err = client.Inspect(ctx, "stats", nil, time.Second)
		require.NoError(t, err)
		stats := replies[node].(map[string]any)
		require.Contains(t, stats, "broker")
		require.Equal(t, bk.transport, stats["broker"].(map[string]any)["transport"])
		require.EqualValues(t, 1, stats["total"].(map[string]any)["tasks.add"])

		stub := runtime.NewStub[int](slow).With(runtime.WithApp(client))
		running, err := stub.Send(ctx, &addArgs{})
		require.NoError(t, err)
		select {
		case id := <-started:
			require.Equal(t, running.ID(), id)
		case <-ctx.Done():
			t.Fatal("slow task never started")
		}
		queued, err := stub.Send(ctx, &addArgs{}) // waits: concurrency 1
		require.NoError(t, err)
		replies, err = client.Inspect(ctx, "active", nil, time.Second)
		require.NoError(t, err)
		active := replies[node].([]any)
		require.Len(t, active, 1)
		require.Equal(t, running.ID(), active[0].(map[string]any)["id"])

		require.NoError(t, queued.Revoke(ctx))
		require.NoError(t, running.Revoke(ctx, runtime.Terminate()))
		var te *runtime.TaskError
		_, err = running.Get(ctx)
		require.True(t, errors.As(err, &te), "%v", err)
		require.Equal(t, driver.StateRevoked, te.State)
		_, err = queued.Get(ctx)
		require.True(t, errors.As(err, &te), "%v", err)
		require.Equal(t, driver.StateRevoked, te.State)
		select {
		case id := <-started:
			t.Fatalf("revoked task %s ran", id)
		default:
		}

		// Concurrent inspections each get their own replies.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				r, err := client.Inspect(ctx, "ping", nil, 2*time.Second)
				require.NoError(t, err)
				bk.requirePong(t, r, node)
			})
		}
		wg.Wait()
		if bk.goRepliesGone != nil {
			bk.goRepliesGone(t, ctx, client)
		}
	})
}

// TestEvents_GoWorker: SubscribeEvents sees a Go worker's events with
// Celery's fields: online, heartbeats, task events, offline.
func TestEvents_GoWorker(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		e := bk.goEnv(t)
		ctx := ctxT(t, 60*time.Second)
		node := nodeName(t, "w")
		mon := newApp(t, e)
		sub, err := mon.Broker().(driver.EventTransport).SubscribeEvents(ctx)
		require.NoError(t, err)
		log := collectEvents(t, sub, node)

		app := newApp(t, e)
		wctx, stopWorker := context.WithCancel(ctx)
		w := app.NewWorker(runtime.WorkerOptions{Queues: e.queues(), Concurrency: 1, Hostname: node, HeartbeatInterval: 300 * time.Millisecond, ShutdownTimeout: 2 * time.Second})
		w.Register(addDef(e.queue, nil))
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		defer func() {
			stopWorker()
			<-done
		}()

		online := log.wait(t, driver.EventWorkerOnline, 10*time.Second, nil)
		require.Equal(t, node, online["hostname"])
		require.Equal(t, "taskgen", online["sw_ident"])
		require.Equal(t, 0.3, online["freq"])
		for _, k := range []string{"timestamp", "utcoffset", "pid", "clock", "active", "processed", "loadavg", "sw_ver", "sw_sys"} {
			require.Contains(t, online, k)
		}
		log.wait(t, driver.EventWorkerHeartbeat, 5*time.Second, nil)

		res, err := runtime.NewStub[int](addDef(e.queue, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3, z: 1})
		require.NoError(t, err)
		id := func(ev map[string]any) bool { return ev["uuid"] == res.ID() }
		rcv := log.wait(t, driver.EventTaskReceived, 10*time.Second, id)
		require.Equal(t, "tasks.add", rcv["name"])
		require.Equal(t, "(2, 3, 1)", rcv["args"])
		require.Contains(t, rcv, "kwargs")
		require.Contains(t, rcv, "retries")
		log.wait(t, driver.EventTaskStarted, 10*time.Second, id)
		ok := log.wait(t, driver.EventTaskSucceeded, 10*time.Second, id)
		require.Equal(t, "6", ok["result"])
		require.IsType(t, float64(0), ok["runtime"])

		stopWorker()
		require.NoError(t, <-done)
		done <- nil
		log.wait(t, driver.EventWorkerOffline, 10*time.Second, nil)
		for _, m := range log.messages() {
			require.Equal(t, "celeryev", m.Exchange)
			require.Equal(t, "application/json", m.ContentType)
			if bytes.HasPrefix(m.Body, []byte("[")) {
				require.Equal(t, "task.multi", m.RoutingKey)
			} else {
				var ev map[string]any
				require.NoError(t, json.Unmarshal(m.Body, &ev))
				require.Equal(t, driver.EventRoutingKey(ev["type"].(string)), m.RoutingKey)
			}
		}
	})
}

// ---- Python interop (Celery 5.2.6, kombu 5.2.4) ----

// TestInterop_PythonInspectGoWorker: Celery's CLI inspects and controls a
// Go worker (on Redis, on database 13).
func TestInterop_PythonInspectGoWorker(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		py := testenv.Python(t)
		e := bk.pyEnv(t, 13)
		raw := e.url
		ctx := ctxT(t, 2*time.Minute)
		node := nodeName(t, "w")
		app := newApp(t, e)
		runWorker(t, app, runtime.WorkerOptions{Queues: e.queues(), Concurrency: 2, Hostname: node}, addDef(e.queue, nil))
		waitPing(t, ctx, app, node)

		// Without a destination: every worker of the broker answers, ours
		// among them.
		out, err := runPython(t, time.Minute, py, "-m", "celery", "-b", raw, "inspect", "ping", "-t", "3")
		require.NoError(t, err, out)
		require.Contains(t, out, node+": OK")
		require.Contains(t, out, "pong")

		r := celeryJSON(t, py, raw, "inspect", "ping", "-t", "3", "-d", node)
		require.Equal(t, map[string]any{node: map[string]any{"ok": "pong"}}, r)
		r = celeryJSON(t, py, raw, "inspect", "registered", "-t", "3", "-d", node)
		require.Equal(t, []any{"tasks.add"}, r[node])
		r = celeryJSON(t, py, raw, "inspect", "stats", "-t", "3", "-d", node)
		stats := r[node].(map[string]any)
		require.Contains(t, stats, "total")
		require.Contains(t, stats, "broker")
		require.EqualValues(t, 2, stats["pool"].(map[string]any)["max-concurrency"])
		r = celeryJSON(t, py, raw, "inspect", "active_queues", "-t", "3", "-d", node)
		qs := r[node].([]any)
		require.Len(t, qs, 1)
		require.Equal(t, e.queueName(), qs[0].(map[string]any)["name"])

		r = celeryJSON(t, py, raw, "control", "disable_events", "-t", "3", "-d", node)
		require.Equal(t, map[string]any{"ok": "task events disabled"}, r[node])
		r = celeryJSON(t, py, raw, "control", "enable_events", "-t", "3", "-d", node)
		require.Equal(t, map[string]any{"ok": "task events enabled"}, r[node])
		r = celeryJSON(t, py, raw, "control", "enable_events", "-t", "3", "-d", node)
		require.Equal(t, map[string]any{"ok": "task events already enabled"}, r[node])

		if bk.pyRepliesGone != nil {
			bk.pyRepliesGone(t, ctx, app)
		}
	})
}

// pythonRevoke revokes a task id as a Python client does (a cast: no reply).
const pythonRevoke = `
import sys
from celery import Celery
app = Celery('ctl', broker=sys.argv[1])
app.conf.update(broker_connection_retry=False)
app.control.revoke(sys.argv[2])
print('revoked', sys.argv[2])
`

// TestInterop_PythonRevokeGoWorker: app.control.revoke(id) from Python is
// honoured by a Go worker: the task is skipped, REVOKED.
func TestInterop_PythonRevokeGoWorker(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		py := testenv.Python(t)
		e := bk.pyEnv(t, 0)
		ctx := ctxT(t, time.Minute)
		node := nodeName(t, "w")
		app := newApp(t, e)
		var ran sync.Map
		def := addDef(e.queue, func(ctx context.Context, a *addArgs) (any, error) {
			info, _ := runtime.TaskFromContext(ctx)
			ran.Store(info.ID, true)
			return a.x + a.y + a.z, nil
		})
		runWorker(t, app, runtime.WorkerOptions{Queues: e.queues(), Concurrency: 1, Hostname: node}, def)
		waitPing(t, ctx, app, node)

		id := driver.NewID()
		out, err := runPython(t, time.Minute, py, "-c", pythonRevoke, e.url, id)
		require.NoError(t, err, out)
		require.Eventually(t, func() bool {
			r, err := app.Inspect(ctx, "revoked", nil, 300*time.Millisecond)
			ids, _ := r[node].([]any)
			for _, x := range ids {
				if x == id {
					return err == nil
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond)

		stub := runtime.NewStub[int](def).With(runtime.WithApp(app))
		res, err := stub.With(runtime.TaskID(id)).Send(ctx, &addArgs{x: 1})
		require.NoError(t, err)
		_, err = res.Get(ctx)
		var te *runtime.TaskError
		require.True(t, errors.As(err, &te), "%v", err)
		require.Equal(t, driver.StateRevoked, te.State)
		_, ran1 := ran.Load(id)
		require.False(t, ran1, "the revoked task ran")
		// Others still run.
		other, err := stub.Send(ctx, &addArgs{x: 1, y: 1})
		require.NoError(t, err)
		n, err := other.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
	})
}

// pythonTasks is the tasks module of the Python worker.
const pythonTasks = `
from celery import Celery
app = Celery('tasks')
app.conf.update(task_serializer='json', accept_content=['json'], result_backend=None)

@app.task(name='tasks.add')
def add(x, y, z=0):
    return x + y + z
`

// TestInterop_PythonWorkerEvents: a Go subscriber receives the events of a
// Celery 5.2.6 worker (-E, solo pool; on Redis, on database 13):
// worker-online, worker-heartbeat, task-received/started/succeeded (as
// task.multi lists: always on Redis, often on RabbitMQ) and worker-offline;
// and the Python worker answers a Go Inspect.
func TestInterop_PythonWorkerEvents(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		py := testenv.Python(t)
		e := bk.pyEnv(t, 13)
		ctx := ctxT(t, 2*time.Minute)
		node := nodeName(t, "py")
		app := newApp(t, e)
		sub, err := app.Broker().(driver.EventTransport).SubscribeEvents(ctx)
		require.NoError(t, err)
		log := collectEvents(t, sub, node)

		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tasks.py"), []byte(pythonTasks), 0o644))
		args := []string{"-m", "celery", "-b", e.url, "-A", "tasks", "worker", "-E", "-P", "solo", "-n", node,
			"--without-mingle", "--without-gossip", "-l", "info"}
		if e.queue != "" {
			args = append(args, "-Q", e.queue)
		}
		cmd := exec.Command(py, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
		var output bytes.Buffer
		var outMu sync.Mutex
		cmd.Stdout = lockedWriter{&outMu, &output}
		cmd.Stderr = cmd.Stdout
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				_ = cmd.Process.Kill()
				<-exited
			}
			if t.Failed() {
				outMu.Lock()
				t.Logf("python worker output:\n%s", output.String())
				outMu.Unlock()
			}
		})

		online := log.wait(t, driver.EventWorkerOnline, 60*time.Second, nil)
		require.Equal(t, "py-celery", online["sw_ident"])
		require.Equal(t, 2.0, online["freq"])
		log.wait(t, driver.EventWorkerHeartbeat, 10*time.Second, nil)

		res, err := runtime.NewStub[int](addDef(e.queue, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3, z: 1})
		require.NoError(t, err)
		id := func(ev map[string]any) bool { return ev["uuid"] == res.ID() }
		rcv := log.wait(t, driver.EventTaskReceived, 30*time.Second, id)
		require.Equal(t, "tasks.add", rcv["name"])
		log.wait(t, driver.EventTaskStarted, 30*time.Second, id)
		ok := log.wait(t, driver.EventTaskSucceeded, 30*time.Second, id)
		require.Equal(t, "6", ok["result"])

		// The Python worker answers a Go client's inspect.
		r, err := app.Inspect(ctx, "ping", nil, 2*time.Second)
		require.NoError(t, err)
		require.Equal(t, map[string]any{"ok": "pong"}, r[node])
		r, err = app.Inspect(ctx, "registered", nil, 2*time.Second)
		require.NoError(t, err)
		require.Contains(t, r[node], "tasks.add")

		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-exited:
			stopped = true
		case <-time.After(30 * time.Second):
			t.Fatal("python worker did not stop")
		}
		log.wait(t, driver.EventWorkerOffline, 10*time.Second, nil)
		sawMulti := false
		for _, m := range log.messages() {
			require.Equal(t, "celeryev", m.Exchange)
			if m.RoutingKey == "task.multi" {
				sawMulti = true
				require.True(t, bytes.HasPrefix(m.Body, []byte("[")))
			}
		}
		if bk.pyTaskMulti {
			require.True(t, sawMulti, "task events come as task.multi lists")
		} else {
			t.Logf("task events as task.multi lists: %v", sawMulti)
		}
	})
}

// pythonReceiver is Celery's EventReceiver (what Flower runs): it prints
// the events of hostname argv[2] as JSON lines until it has seen
// worker-heartbeat and task-received, -started and -succeeded, or argv[3]
// seconds pass.
const pythonReceiver = `
import json, socket, sys, time
from celery import Celery
url, host, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
app = Celery('recv', broker=url)
want = {'worker-heartbeat', 'task-received', 'task-started', 'task-succeeded'}
seen = set()
deadline = time.time() + secs

def on_event(ev):
    if ev.get('hostname') == host:
        print(json.dumps(ev), flush=True)
        seen.add(ev.get('type'))
    if want <= seen or time.time() > deadline:
        recv.should_stop = True

with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={'*': on_event})
    orig = recv.on_consume_ready
    def ready(*a, **kw):
        orig(*a, **kw)
        print('READY', flush=True)
    recv.on_consume_ready = ready
    try:
        recv.capture(limit=None, timeout=secs, wakeup=True)
    except socket.timeout:
        pass
print('DONE', sorted(seen), flush=True)
`

// TestInterop_PythonEventReceiverGoWorker: Celery's EventReceiver sees a
// Go worker's worker-heartbeat and task-received, -started and -succeeded
// events with their fields (on Redis, in envelopes whose JSON body has no
// body_encoding; Python workers send base64).
func TestInterop_PythonEventReceiverGoWorker(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, bk broker) {
		py := testenv.Python(t)
		e := bk.pyEnv(t, 0)
		ctx := ctxT(t, 2*time.Minute)
		node := nodeName(t, "w")

		cmd := exec.Command(py, "-c", pythonReceiver, e.url, node, "60")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("receiver stderr:\n%s", stderr.String())
			}
		})
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		next := func() string {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "receiver exited early")
				return l
			case <-ctx.Done():
				t.Fatal("receiver: no output")
				return ""
			}
		}
		for l := next(); l != "READY"; l = next() {
			t.Logf("receiver: %s", l)
		}

		app := newApp(t, e)
		runWorker(t, app, runtime.WorkerOptions{Queues: e.queues(), Concurrency: 1, Hostname: node}, addDef(e.queue, nil))
		res, err := runtime.NewStub[int](addDef(e.queue, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3, z: 1})
		require.NoError(t, err)
		_, err = res.Get(ctx)
		require.NoError(t, err)

		seen := map[string]map[string]any{}
		for {
			l := next()
			if strings.HasPrefix(l, "DONE") {
				break
			}
			var ev map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
			typ, _ := ev["type"].(string)
			if strings.HasPrefix(typ, "task-") && ev["uuid"] != res.ID() {
				continue
			}
			seen[typ] = ev
		}
		for _, typ := range []string{driver.EventWorkerHeartbeat, driver.EventTaskReceived, driver.EventTaskStarted, driver.EventTaskSucceeded} {
			require.Contains(t, seen, typ)
			require.Equal(t, node, seen[typ]["hostname"], typ)
			require.IsType(t, float64(0), seen[typ]["timestamp"], typ)
			require.InDelta(t, float64(time.Now().Unix()), seen[typ]["timestamp"], 120, typ)
			require.Contains(t, seen[typ], "local_received", typ)
		}
		hb := seen[driver.EventWorkerHeartbeat]
		require.Equal(t, "taskgen", hb["sw_ident"])
		for _, k := range []string{"freq", "active", "processed", "loadavg", "sw_ver", "sw_sys", "utcoffset", "pid", "clock"} {
			require.Contains(t, hb, k)
		}
		rcv := seen[driver.EventTaskReceived]
		require.Equal(t, addDef(e.queue, nil).Name, rcv["name"])
		for _, k := range []string{"args", "kwargs", "root_id", "parent_id", "retries", "eta", "expires"} {
			require.Contains(t, rcv, k)
		}
		succ := seen[driver.EventTaskSucceeded]
		require.Equal(t, "6", succ["result"])
		require.IsType(t, float64(0), succ["runtime"])
	})
}
