package monitor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/redis" // redis://
)

// pyProgressTasks is a Celery app whose py.import_rows reports its
// progress with self.update_state, one step per file the test creates in
// gate: first a custom state VALIDATING with meta {"rows": n}, then
// PROGRESS {"current": i, "total": n} (a note at row 2), then returns n.
const pyProgressTasks = `
import os, time
from celery import Celery

app = Celery('pyprog', broker=os.environ['BROKER'], backend=os.environ['BACKEND'])
app.conf.update(task_serializer='json', result_serializer='json', accept_content=['json'], worker_hijack_root_logger=False)

def wait_for(gate, name):
    while not os.path.exists(os.path.join(gate, name)):
        time.sleep(0.01)

@app.task(bind=True, name='py.import_rows')
def import_rows(self, n, gate):
    wait_for(gate, 'validate')
    self.update_state(state='VALIDATING', meta={'rows': n})
    for i in range(1, n + 1):
        wait_for(gate, 'step-%d' % i)
        meta = {'current': i, 'total': n}
        if i == 2:
            meta['note'] = 'halfway'
        self.update_state(state='PROGRESS', meta=meta)
    wait_for(gate, 'finish')
    return n
`

// lockedLog collects a process's output; the test reads it while the
// process writes.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPython_Progress: a Python Celery task's self.update_state (a custom
// state, then state="PROGRESS" with meta {"current", "total"}) shows in
// taskmon's /api/task/info progress member and in /api/progress as a Go
// task's runtime.Progress does, on a real Redis broker and backend with a
// real Celery worker; once the task succeeds the progress is gone.
func TestPython_Progress(t *testing.T) {
	const id = "88888888-8888-4888-8888-888888888881"
	testenv.SkipIfShort(t, "starts Redis and a Python worker")
	py := testenv.Python(t)
	srv := testenv.NewRedisServer(t)
	dir, gate := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pyprog.py"), []byte(pyProgressTasks), 0o644))
	backend := testenv.RedisDB(srv.URL(), 1)

	app, err := runtime.New(runtime.Config{Broker: srv.URL(), Backend: backend, Serializer: "json", Logger: quietLogger()})
	require.NoError(t, err)
	defer app.Close()
	m, err := New(Config{App: app, Queues: []string{}, PollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	base, stop, err := m.Start(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	defer stop()
	// api answers GET path from the monitor's HTTP server.
	api := func(path string) map[string]any {
		t.Helper()
		var out map[string]any
		require.Equal(t, 200, getJSON(t, base+path, &out), path)
		return out
	}
	progress := func() map[string]any {
		p, _ := api("/api/task/info/" + id)["progress"].(map[string]any)
		return p
	}
	waitProgress := func(want func(map[string]any) bool, what string) map[string]any {
		t.Helper()
		var p map[string]any
		require.Eventually(t, func() bool { p = progress(); return p != nil && want(p) }, 10*time.Second, 20*time.Millisecond,
			"progress never became %s (last %v)", what, p)
		return p
	}

	env := append(os.Environ(), "BROKER="+srv.URL(), "BACKEND="+backend, "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	// The threads pool, not solo: with -P solo the task runs in the
	// worker's event loop and taskmon saw no task-started event while it
	// ran (tried: 30 s).
	worker := exec.Command(py, "-m", "celery", "-A", "pyprog", "worker", "-E", "-P", "threads", "-c", "2", "--without-mingle",
		"--without-gossip", "-n", "pyprog@testhost", "--loglevel=WARNING")
	worker.Dir, worker.Env = dir, env
	wlog := &lockedLog{}
	worker.Stdout, worker.Stderr = wlog, wlog
	require.NoError(t, worker.Start())
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	defer func() {
		_ = worker.Process.Kill()
		<-exited
	}()

	require.Eventually(t, func() bool {
		for _, x := range m.State().Workers() {
			if x.Hostname == "pyprog@testhost" && x.Status == "online" {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "python worker never online; its log:\n%s", wlog)

	send := exec.Command(py, "-c", fmt.Sprintf(`
from pyprog import import_rows
import_rows.apply_async((3, %q), task_id=%q)
`, gate, id))
	send.Dir, send.Env = dir, env
	out, err := send.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var seen Task
	require.Eventually(t, func() bool {
		seen, _ = m.State().Task(id)
		return seen.State == StateStarted
	}, 30*time.Second, 20*time.Millisecond, "python task never STARTED (monitor: %+v); worker log:\n%s", &seen, wlog)
	require.Nil(t, progress(), "no progress before the task reports any")
	touch := func(name string) { require.NoError(t, os.WriteFile(filepath.Join(gate, name), nil, 0o644)) }

	touch("validate")
	p := waitProgress(func(p map[string]any) bool { return p["state"] == "VALIDATING" }, "VALIDATING")
	require.Equal(t, map[string]any{"rows": float64(3)}, p["meta"])
	require.NotContains(t, p, "current", "a custom state without current/total has no bar")

	for i := 1; i <= 3; i++ {
		touch(fmt.Sprintf("step-%d", i))
		p := waitProgress(atStep(i), fmt.Sprintf("%d/3", i))
		require.Equal(t, float64(3), p["total"])
		require.InDelta(t, 100*float64(i)/3, p["percent"], 1e-9)
		meta := map[string]any{"current": float64(i), "total": float64(3)}
		if i == 2 {
			require.Equal(t, "halfway", p["note"])
			meta["note"] = "halfway"
		} else {
			require.Nil(t, p["note"], "no note given")
		}
		require.Equal(t, meta, p["meta"], "the meta as Python stored it")
		all, ok := api("/api/progress")[id].(map[string]any)
		require.True(t, ok, "/api/progress lists the Python task")
		require.Equal(t, "PROGRESS", all["state"])
		require.GreaterOrEqual(t, all["current"], float64(i), "/api/progress is at least as far as the task page")
	}

	touch("finish")
	require.Eventually(t, func() bool {
		task, _ := m.State().Task(id)
		return task.State == StateSuccess
	}, 20*time.Second, 20*time.Millisecond, "worker log:\n%s", wlog)
	require.Eventually(t, func() bool {
		return progress() == nil
	}, 10*time.Second, 20*time.Millisecond, "a finished task keeps showing progress")
	require.NotContains(t, api("/api/progress"), id)
	// Go reads the Python result too (the app's serializer is Python's json).
	res := runtime.NewAsyncResult[int](app, id)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
}
