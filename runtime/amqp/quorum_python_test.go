package amqp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/amqp"
)

// pyQuorum is a Celery 5.2 app whose task queues are quorum queues declared
// with the arguments in PYQ_QUEUES ({name: arguments}), as a Celery user
// shares them with taskgen. Run as a worker (celery -A pyquorum worker) its
// tasks.add appends the sum to PYQ_MARKER; run as a script it sends
// tasks.add(X, 0, 0) to QUEUE: python pyquorum.py QUEUE X.
const pyQuorum = `
import json, os, sys
from celery import Celery
from kombu import Exchange, Queue
from kombu.transport import pyamqp

# Celery 5.2 sets its prefetch with global QoS on RabbitMQ >= 3.3, which
# quorum queues refuse (540 NOT_IMPLEMENTED); Celery 5.5 detects quorum
# queues and uses per-consumer QoS, as this does.
pyamqp.Transport.qos_semantics_matches_spec = lambda self, connection: True

queues = json.loads(os.environ['PYQ_QUEUES'])
app = Celery('pyquorum', broker=os.environ['PYQ_BROKER'])
app.conf.update(task_serializer='json', accept_content=['json'], worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_queues=[Queue(n, Exchange(n, type='direct'), routing_key=n, queue_arguments=a) for n, a in queues.items()])

@app.task(name='tasks.add')
def add(x, y, z=0):
    with open(os.environ['PYQ_MARKER'], 'a') as f:
        f.write('%d\n' % (x + y + z))
    return x + y + z

if __name__ == '__main__':
    print(app.send_task('tasks.add', args=(int(sys.argv[2]), 0, 0), queue=sys.argv[1]).id)
`

// syncBuffer is a bytes.Buffer safe for concurrent writers (a log sink).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestQuorum_PythonShares: Python Celery 5.2 and taskgen share quorum queues
// when both declare the same arguments, whoever declares first: a Python
// worker consumes a queue taskgen declared and runs what a Go producer sent;
// a Go worker consumes a queue a Python producer declared and runs what it
// sent. Both plain quorum queues (Celery 5.5's task_default_queue_type =
// "quorum") and queues with taskgen's delivery_limit, and no side meets
// 406 PRECONDITION_FAILED (taskgen would log a warning, Celery would fail).
func TestQuorum_PythonShares(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	py := testenv.Python(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pyquorum.py"), []byte(pyQuorum), 0o644))
	marker := filepath.Join(dir, "ran")

	type variant struct {
		query    string
		pyQ, goQ string
		pyArgs   map[string]any // of pyQ
		goArgs   map[string]any // of goQ
		pyX, goX int64
	}
	args := func(limit bool, q string) map[string]any {
		a := map[string]any{"x-queue-type": "quorum"}
		if limit {
			a["x-delivery-limit"] = 3
			a["x-dead-letter-exchange"] = amqp.DefaultDeadLetterExchange
			a["x-dead-letter-routing-key"] = q
		}
		return a
	}
	var vs []variant
	queues := map[string]map[string]any{}
	for i, limit := range []bool{false, true} {
		v := variant{query: "queue_type=quorum", pyQ: queueName(t) + ".py", goQ: queueName(t) + ".go", pyX: int64(10 + i), goX: int64(20 + i)}
		if limit {
			v.query += "&delivery_limit=3"
		}
		v.pyArgs, v.goArgs = args(limit, v.pyQ), args(limit, v.goQ)
		queues[v.pyQ], queues[v.goQ] = v.pyArgs, v.goArgs
		purgeLater(t, raw, v.pyQ, v.goQ, v.pyQ+amqp.DeadLetterQueueSuffix, v.goQ+amqp.DeadLetterQueueSuffix)
		vs = append(vs, v)
	}
	qjson, err := json.Marshal(queues)
	require.NoError(t, err)
	env := append(os.Environ(), "PYQ_BROKER="+raw, "PYQ_QUEUES="+string(qjson), "PYQ_MARKER="+marker, "PYTHONDONTWRITEBYTECODE=1")

	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var mu sync.Mutex
	goRan := map[int64]bool{}
	for _, v := range vs {
		app, err := runtime.New(runtime.Config{Broker: withQuery(raw, v.query), Backend: "memory://" + queueName(t), Serializer: "json", Logger: logger})
		require.NoError(t, err)
		t.Cleanup(func() { app.Close() })
		// taskgen declares pyQ first (Go producer); Python declares goQ first.
		_, err = runtime.NewStub[int](addDef(v.pyQ, nil)).With(runtime.WithApp(app)).Send(ctxT(t, 20*time.Second), &addArgs{x: v.pyX})
		require.NoError(t, err)
		cmd := exec.CommandContext(ctxT(t, time.Minute), py, "pyquorum.py", v.goQ, strconv.FormatInt(v.goX, 10))
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "python producer: %s", out)
		runWorker(t, app, runtime.WorkerOptions{Queues: []string{v.goQ}, Concurrency: 2}, addDef(v.goQ, func(ctx context.Context, a *addArgs) (any, error) {
			mu.Lock()
			goRan[a.x+a.y+a.z] = true
			mu.Unlock()
			return a.x + a.y + a.z, nil
		}))
	}

	var pyQueues []string
	for _, v := range vs {
		pyQueues = append(pyQueues, v.pyQ)
	}
	worker := exec.Command(py, "-m", "celery", "-A", "pyquorum", "worker", "-P", "solo", "-Q", strings.Join(pyQueues, ","),
		"-n", "pyquorum-"+vs[0].pyQ+"@localhost", "--without-mingle", "--without-gossip", "-l", "info")
	worker.Dir, worker.Env = dir, env
	stderr, err := worker.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, worker.Start())
	var pyLog syncBuffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			pyLog.Write([]byte(sc.Text() + "\n"))
		}
	}()
	t.Cleanup(func() {
		_ = worker.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = worker.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = worker.Process.Kill()
			<-done
		}
	})

	want := map[string]bool{}
	for _, v := range vs {
		want[strconv.FormatInt(v.pyX, 10)] = true
	}
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(marker)
		got := map[string]bool{}
		for _, l := range strings.Fields(string(data)) {
			got[l] = true
		}
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want) && len(goRan) == len(vs)
	}, 60*time.Second, 100*time.Millisecond, "Python worker log:\n%s\ntaskgen log:\n%s", &pyLog, &logs)
	data, _ := os.ReadFile(marker)
	for x := range want {
		require.Contains(t, strings.Fields(string(data)), x, "the Python worker ran the Go producer's task")
	}
	for _, v := range vs {
		require.True(t, goRan[v.goX], "the Go worker ran the Python producer's task %d", v.goX)
	}
	require.NotContains(t, pyLog.String(), "PRECONDITION_FAILED")
	require.NotContains(t, logs.String(), "other arguments", "taskgen found a queue declared otherwise")

	// Both sides' declarations are the same quorum queues.
	queuesOut := testenv.RabbitMQCtl(t, "-q", "list_queues", "-p", "taskgen", "name", "type", "arguments")
	for _, v := range vs {
		for _, q := range []string{v.pyQ, v.goQ} {
			require.Regexp(t, `(?m)^`+regexp.QuoteMeta(q)+`\tquorum\t`, queuesOut)
		}
	}
}
