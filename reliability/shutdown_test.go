//go:build reliability

package reliability_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
)

// TestGracefulShutdown: SIGTERM to a worker process while tasks run.
// Tasks shorter than ShutdownTimeout finish before the process exits; tasks
// longer than it (ignoring or honouring ctx) and the prefetched ones go
// back to the queue (acks_late) and run on the next worker; nothing is lost.
func TestGracefulShutdown(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		_, u := privateRedis(t)
		runShutdown(t, "redis", withQuery(u, "visibility_timeout=60s"))
	})
	t.Run("rabbitmq", func(t *testing.T) {
		runShutdown(t, "rabbitmq", testenv.AMQPURL(t))
	})
}

func waitStarted(t *testing.T, s sink, ids []string, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		c := s.counts()
		for _, id := range ids {
			if c["start "+id] == 0 {
				return false
			}
		}
		return true
	}, timeout, 20*time.Millisecond, "tasks did not start")
}

func runShutdown(t *testing.T, brokerName, brokerURL string) {
	ctx := ctxT(t, 2*time.Minute)
	s := newSink(t)
	queue := "rel.shutdown." + randID()
	app, _ := newApp(t, "producer", brokerURL)
	env := func(timeout string) map[string]string {
		return map[string]string{"BROKER": brokerURL, "SINK": s.path, "QUEUES": queue, "CONCURRENCY": "4", "SHUTDOWN": timeout, "LOG_INFO": "1"}
	}
	delay := func(prefix string, n, ms int, honor bool) []string {
		var ids []string
		for i := range n {
			id := fmt.Sprintf("%s-%d-%s", prefix, i, randID())
			_, err := tasks.Slow.With(runtime.WithApp(app), runtime.Queue(queue)).Delay(ctx, id, ms, honor)
			require.NoError(t, err)
			ids = append(ids, id)
		}
		return ids
	}

	// A: in-flight tasks (1.5 s) finish within the 5 s ShutdownTimeout.
	w1 := startWorker(t, "shutdown-a-"+brokerName, env("5s"))
	short := delay("short", 4, 1500, false)
	waitStarted(t, s, short, 20*time.Second)
	took, err := w1.stop(20 * time.Second)
	require.NoError(t, err, "worker exit")
	lostA, dupsA := s.tally(short)
	require.Empty(t, lostA, "in-flight tasks did not finish before exit")
	t.Logf("A: SIGTERM with 4 tasks in flight: exited after %v, all finished; stats %s", took.Round(time.Millisecond), w1.stats())

	// B: tasks of 6 s against a 1 s ShutdownTimeout; 2 ignore ctx, 2 honour it
	// (they return ctx's error when the worker cancels them: still abandoned
	// and requeued, not failed); 8 more are queued or prefetched.
	w2 := startWorker(t, "shutdown-b-"+brokerName, env("1s"))
	long := delay("long-ignore", 2, 6000, false)
	long = append(long, delay("long-honor", 2, 6000, true)...)
	waitStarted(t, s, long, 20*time.Second)
	queued := delay("queued", 8, 100, false)
	time.Sleep(200 * time.Millisecond)
	took2, err := w2.stop(20 * time.Second)
	require.NoError(t, err, "worker exit")
	require.Less(t, took2, 4*time.Second, "ShutdownTimeout 1s not honoured")
	t.Logf("B: SIGTERM with %d long tasks: exited after %v; stats %s", len(long), took2.Round(time.Millisecond), w2.stats())
	for _, id := range long {
		require.Zero(t, s.counts()[id], "%s finished on the stopped worker?", id)
	}
	w3 := startWorker(t, "shutdown-c-"+brokerName, env("30s"))
	all := append(append([]string{}, long...), queued...)
	lostB, dupsB := s.waitAll(all, 40*time.Second)
	_, err = w3.stop(20 * time.Second)
	require.NoError(t, err)
	abandoned := strings.Count(readLog(t, "worker-shutdown-b-"+brokerName), "task abandoned at shutdown")
	report(t, figure{Scenario: "6 graceful shutdown (SIGTERM)", Broker: brokerName, Tasks: int64(len(short) + len(all)), Lost: int64(len(lostA) + len(lostB)), Duplicates: int64(dupsA + dupsB),
		Notes: fmt.Sprintf("4 in-flight finished before exit (%.1f s); %d long tasks abandoned after ShutdownTimeout 1 s (exit %.1f s) + %d queued all ran on the next worker", took.Seconds(), abandoned, took2.Seconds(), len(queued))})
	require.Empty(t, lostB, "lost at shutdown: %v", lostB)
}
