package monitor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/redis" // redis://
)

const pyTasks = `
import os
from celery import Celery

app = Celery('pyproj', broker=os.environ['BROKER'])
app.conf.update(task_serializer='json', accept_content=['json', 'msgpack'], worker_hijack_root_logger=False)

@app.task(name='py.add')
def add(x, y):
    return x + y

@app.task(name='py.fail')
def fail(msg):
    raise ValueError(msg, 42)
`

// TestPython_CeleryWorkerEvents runs a Python Celery worker with -E on a
// private Redis and checks that the monitor shows it online, its tasks with
// results and exceptions, and then offline.
func TestPython_CeleryWorkerEvents(t *testing.T) {
	testenv.SkipIfShort(t, "starts Redis and a Python worker")
	py := testenv.Python(t)
	srv := testenv.NewRedisServer(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pytasks.py"), []byte(pyTasks), 0o644))

	app, err := runtime.New(runtime.Config{Broker: srv.URL(), Logger: quietLogger()})
	require.NoError(t, err)
	defer app.Close()
	m, err := New(Config{App: app, Queues: []string{}})
	require.NoError(t, err)
	base, stop, err := m.Start(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	defer stop()

	env := append(os.Environ(), "BROKER="+srv.URL(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	worker := exec.Command(py, "-m", "celery", "-A", "pytasks", "worker", "-E", "-P", "solo", "--without-mingle",
		"--without-gossip", "-n", "py1@testhost", "--loglevel=WARNING")
	worker.Dir, worker.Env = dir, env
	var wlog strings.Builder
	worker.Stdout, worker.Stderr = &wlog, &wlog
	require.NoError(t, worker.Start())
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	defer func() {
		_ = worker.Process.Kill()
		<-exited
	}()

	var w WorkerView
	require.Eventually(t, func() bool {
		for _, x := range m.State().Workers() {
			if x.Hostname == "py1@testhost" && x.Status == "online" {
				w = x
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "python worker never online; its log:\n%s", &wlog)
	require.Equal(t, "py-celery", w.SWIdent)
	require.Equal(t, 2.0, w.Freq)

	send := exec.Command(py, "-c", `
from celery import chain
from pytasks import add, fail
print(add.apply_async((2, 3), task_id='77777777-7777-4777-8777-777777777771').id)
print(fail.apply_async(('boom',), task_id='77777777-7777-4777-8777-777777777772').id)
chain(add.s(1, 2).set(task_id='77777777-7777-4777-8777-777777777781'),
      add.s(10).set(task_id='77777777-7777-4777-8777-777777777782')).apply_async()
`)
	send.Dir, send.Env = dir, env
	out, err := send.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var task Task
	require.Eventually(t, func() bool {
		task, _ = m.State().Task("77777777-7777-4777-8777-777777777771")
		return task.State == StateSuccess
	}, 20*time.Second, 50*time.Millisecond, "last %+v; worker log:\n%s", task, &wlog)
	require.Equal(t, "py.add", task.Name)
	require.Equal(t, "(2, 3)", task.Args)
	require.Equal(t, "5", task.Result)
	require.Equal(t, "py1@testhost", task.Worker)
	require.True(t, task.HasRuntime())
	require.Eventually(t, func() bool {
		task, _ = m.State().Task("77777777-7777-4777-8777-777777777772")
		return task.State == StateFailure
	}, 20*time.Second, 50*time.Millisecond)
	require.Contains(t, task.Traceback, "ValueError")

	// A Python chain: its second step names the first as parent and root.
	require.Eventually(t, func() bool {
		task, _ = m.State().Task("77777777-7777-4777-8777-777777777782")
		return task.State == StateSuccess
	}, 20*time.Second, 50*time.Millisecond, "last %+v; worker log:\n%s", task, &wlog)
	require.Equal(t, "13", task.Result)
	require.Equal(t, "77777777-7777-4777-8777-777777777781", task.ParentID)
	require.Equal(t, "77777777-7777-4777-8777-777777777781", task.RootID)
	require.Empty(t, task.Group, "Celery's events name no group")
	steps, total, _ := m.State().Workflow("77777777-7777-4777-8777-777777777781", 0)
	require.Equal(t, 2, total)
	require.Equal(t, []string{"77777777-7777-4777-8777-777777777781", "77777777-7777-4777-8777-777777777782"}, stepIDs(steps))
	require.Equal(t, []string{"77777777-7777-4777-8777-777777777782"}, m.State().Children("77777777-7777-4777-8777-777777777781"))

	// The API answers in Flower's shape for Python tasks too.
	var info map[string]any
	require.Equal(t, 200, getJSON(t, base+"/api/task/info/77777777-7777-4777-8777-777777777771", &info))
	require.Equal(t, "5", info["result"])

	require.NoError(t, worker.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		for _, x := range m.State().Workers() {
			if x.Hostname == "py1@testhost" {
				return x.Status == "offline"
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "worker-offline never seen; log:\n%s", &wlog)
}
