package taskctl_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/cmd/taskctl/internal/taskctl"
	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
)

const pyTasks = `
import os
from celery import Celery

app = Celery('pyproj', broker=os.environ['BROKER'], backend=os.environ['BACKEND'])
app.conf.update(task_serializer='json', accept_content=['json', 'msgpack'], result_accept_content=['json', 'msgpack'],
                worker_hijack_root_logger=False, task_default_queue=os.environ['QUEUE'])

@app.task(name='py.add')
def add(x, y):
    return x + y
`

// TestRun_PythonWorker drives a Python Celery 5.2 worker and a Go worker on
// one broker: inspect ping/stats/registered/active_queues answer from both,
// control revoke, and rate_limit (each sets the limit of its own task, the
// other answers "unknown task"; bad rates get the same error text from
// both; registered shows the limits alike), call and result, and control
// shutdown stops both (the Go worker's Run returns nil).
func TestRun_PythonWorker(t *testing.T) {
	for _, name := range []string{"redis", "amqp"} {
		t.Run(name, func(t *testing.T) {
			testenv.SkipIfShort(t, "starts a Python worker")
			py := testenv.Python(t)
			var broker, backend string
			if name == "redis" {
				// A private Redis: Celery has no key prefix, and shutdown
				// must reach this test's workers only.
				broker = testenv.NewRedisServer(t).URL()
				backend = broker
			} else {
				// A private RabbitMQ: shutdown is broadcast to every worker.
				testenv.PrivateEnv(t)
				broker = testenv.AMQPURL(t)
				backend = testenv.RedisURL(t)
			}
			q := "pyq" + driver.NewID()[:8]
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "pytasks.py"), []byte(pyTasks), 0o644))
			worker := exec.Command(py, "-m", "celery", "-A", "pytasks", "worker", "-P", "solo", "--without-mingle",
				"--without-gossip", "-n", "py1@taskctl", "--loglevel=WARNING")
			worker.Dir = dir
			worker.Env = append(os.Environ(), "BROKER="+broker, "BACKEND="+backend, "QUEUE="+q, "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
			var wlog strings.Builder
			worker.Stdout, worker.Stderr = &wlog, &wlog
			require.NoError(t, worker.Start())
			exited := make(chan error, 1)
			go func() { exited <- worker.Wait() }()
			t.Cleanup(func() {
				_ = worker.Process.Kill()
				<-exited
			})
			qg := "goq" + driver.NewID()[:8]
			gw := startGoWorker(t, broker, backend, "go1@taskctl", qg, addDef)
			t.Setenv("TASKGEN_BROKER", broker)
			t.Setenv("TASKGEN_BACKEND", backend)

			var pings map[string]map[string]string
			require.Eventually(t, func() bool {
				code, out, _ := run(t, "", "-json", "-timeout", "500ms", "inspect", "ping")
				pings = nil
				return code == 0 && jsonInto(out, &pings) && len(pings) == 2
			}, 60*time.Second, 100*time.Millisecond, "python worker never answered ping; its log:\n%s", &wlog)
			require.Equal(t, "pong", pings["py1@taskctl"]["ok"])
			require.Equal(t, "pong", pings["go1@taskctl"]["ok"])

			code, out, errs := run(t, "", "-timeout", "2s", "inspect", "registered")
			require.Equal(t, 0, code, errs)
			require.Regexp(t, `(?m)^py1@taskctl\s+py\.add`, out)
			require.Regexp(t, `(?m)^go1@taskctl\s+tasks\.add`, out)

			code, out, errs = run(t, "", "-timeout", "2s", "inspect", "stats")
			require.Equal(t, 0, code, errs)
			require.Regexp(t, `(?m)^WORKER\s+PID\s+CONCURRENCY\s+PREFETCH\s+UPTIME\s+PROCESSED$`, out)
			require.Regexp(t, `(?m)^py1@taskctl\s+\d+\s+1\s+`, out)
			require.Regexp(t, `(?m)^go1@taskctl\s+\d+\s+2\s+`, out)

			code, out, errs = run(t, "", "-timeout", "2s", "inspect", "active_queues")
			require.Equal(t, 0, code, errs)
			require.Regexp(t, `(?m)^py1@taskctl\s+`+q+`$`, out)

			var queues []struct {
				Name      string
				Consumers int
			}
			runJSON(t, &queues, "-timeout", "2s", "queues")
			found := false
			for _, x := range queues {
				if x.Name == q {
					found = true
					require.Equal(t, 1, x.Consumers)
				}
			}
			require.True(t, found, "%v", queues)

			code, out, errs = run(t, "", "-timeout", "2s", "control", "rate_limit", "py.add", "100/m")
			require.Equal(t, 0, code, "%s %s", out, errs)
			require.Regexp(t, `(?m)^py1@taskctl\s+new rate limit set successfully`, out)
			require.Regexp(t, `(?m)^go1@taskctl\s+error: unknown task`, out)
			code, out, errs = run(t, "", "-timeout", "2s", "control", "rate_limit", "tasks.add", "10/m")
			require.Equal(t, 0, code, "%s %s", out, errs)
			require.Regexp(t, `(?m)^go1@taskctl\s+new rate limit set successfully`, out)
			require.Regexp(t, `(?m)^py1@taskctl\s+error: unknown task`, out)
			code, out, errs = run(t, "", "-timeout", "2s", "inspect", "registered")
			require.Equal(t, 0, code, errs)
			require.Regexp(t, `(?m)^py1@taskctl\s+py\.add \[rate_limit=100/m\]$`, out)
			require.Regexp(t, `(?m)^go1@taskctl\s+tasks\.add \[rate_limit=10/m\]$`, out)
			code, out, errs = run(t, "", "-timeout", "2s", "control", "rate_limit", "tasks.nope", "10/m")
			require.Equal(t, taskctl.ExitError, code, "%s %s", out, errs)
			require.Contains(t, errs, "no worker that answered runs task")
			// Celery checks the rate before the task: both answer the same error.
			for _, rate := range []string{"abc/s", "/m", "5/x", "1/S"} {
				var replies map[string]map[string]string
				code, out, errs = run(t, "", "-json", "-timeout", "2s", "control", "rate_limit", "py.add", rate)
				require.Equal(t, taskctl.ExitError, code, "%s %s", out, errs)
				require.True(t, jsonInto(out, &replies), out)
				require.Len(t, replies, 2, out)
				require.NotEmpty(t, replies["py1@taskctl"]["error"], out)
				require.Equal(t, replies["py1@taskctl"]["error"], replies["go1@taskctl"]["error"], "rate %q", rate)
			}
			code, out, errs = run(t, "", "-timeout", "2s", "control", "rate_limit", "py.add", "")
			require.Equal(t, 0, code, "%s %s", out, errs)
			require.Regexp(t, `(?m)^py1@taskctl\s+rate limit disabled successfully`, out)

			code, out, errs = run(t, "", "-timeout", "2s", "control", "revoke", "11111111-1111-4111-8111-111111111111")
			require.Equal(t, 0, code, errs)
			require.Regexp(t, `(?m)^py1@taskctl\s+tasks 11111111-1111-4111-8111-111111111111 flagged as revoked`, out)
			require.Regexp(t, `(?m)^go1@taskctl\s+tasks 11111111-1111-4111-8111-111111111111 flagged as revoked`, out)

			// call by name: py.add runs on the Python worker (the only one
			// on q), tasks.add on the Go worker (the only one on qg).
			var res map[string]any
			runJSON(t, &res, "call", "-queue", q, "-wait", "30s", "py.add", "20", "22")
			require.Equal(t, "SUCCESS", res["state"], "%v; worker log:\n%s", res, &wlog)
			require.EqualValues(t, 42, res["result"])
			runJSON(t, &res, "call", "-queue", qg, "-wait", "30s", "tasks.add", "40", "2")
			require.Equal(t, "SUCCESS", res["state"], "%v", res)
			require.EqualValues(t, 42, res["result"])

			code, _, errs = run(t, "", "control", "shutdown")
			require.Equal(t, 0, code, errs)
			select {
			case <-exited:
				exited <- nil
			case <-time.After(30 * time.Second):
				t.Fatalf("python worker did not shut down; log:\n%s", &wlog)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			require.NoError(t, gw.returned(t, ctx), "the Go worker shut down too")
			code, _, _ = run(t, "", "-timeout", "300ms", "inspect", "registered")
			require.Equal(t, taskctl.ExitNoReply, code, "no worker left")
		})
	}
}

func jsonInto(s string, v any) bool { return json.Unmarshal([]byte(s), v) == nil }
