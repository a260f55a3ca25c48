//go:build reliability

package reliability_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
)

// crashN is the number of tasks of the crash scenario (RELIABILITY_N).
func crashN() int {
	if n, err := strconv.Atoi(os.Getenv("RELIABILITY_N")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// TestCrash: N acks_late tasks, 3 worker processes, one SIGKILLed every
// killEvery and restarted; every task records its id; 0 lost, duplicates
// reported.
func TestCrash(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		_, url := privateRedis(t)
		runCrash(t, "redis", withQuery(url, "visibility_timeout=2s&restore_interval=300ms"))
	})
	t.Run("rabbitmq", func(t *testing.T) {
		runCrash(t, "rabbitmq", testenv.AMQPURL(t))
	})
}

func runCrash(t *testing.T, brokerName, brokerURL string) {
	const (
		workers   = 3
		taskMS    = 25 // each task works 25 ms before recording
		killEvery = 1500 * time.Millisecond
	)
	n := crashN()
	queue := "rel.crash." + randID()
	s := newSink(t)
	app, plog := newApp(t, "producer", brokerURL)
	ctx := ctxT(t, 4*time.Minute)
	env := map[string]string{"BROKER": brokerURL, "SINK": s.path, "QUEUES": queue, "CONCURRENCY": "8", "SHUTDOWN": "5s"}

	procs := make([]*worker, workers)
	for i := range procs {
		procs[i] = startWorker(t, fmt.Sprintf("crash-%s-%d", brokerName, i), env)
	}

	// Publish N tasks from 8 goroutines while the workers run and die.
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%05d-%s", i, randID()[:6])
	}
	var pubErrs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	stub := tasks.Record.With(runtime.WithApp(app), runtime.Queue(queue))
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				for {
					_, err := stub.Delay(ctx, ids[i], taskMS)
					if err == nil {
						break
					}
					pubErrs.Add(1)
					fmt.Fprintln(plog, "producer error:", err)
					if ctx.Err() != nil {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}

	// Kill one worker every killEvery (round robin) and restart it, until
	// every task has run.
	kills := 0
	restart := 0
	for {
		time.Sleep(killEvery)
		if lost, _ := s.tally(ids); len(lost) == 0 || ctx.Err() != nil {
			break
		}
		i := kills % workers
		procs[i].kill()
		kills++
		restart++
		procs[i] = startWorker(t, fmt.Sprintf("crash-%s-%d-r%d", brokerName, i, restart), env)
	}
	wg.Wait()
	lost, dups := s.waitAll(ids, 90*time.Second)
	elapsed := time.Since(start)
	for _, p := range procs {
		_, err := p.stop(15 * time.Second)
		require.NoError(t, err, "worker %s", p.name)
	}
	t.Logf("%s: %d tasks, %d SIGKILLs, %v, lost %d, duplicates %d, publish errors %d", brokerName, n, kills, elapsed.Round(time.Millisecond), len(lost), dups, pubErrs.Load())
	report(t, figure{Scenario: "1 crash (SIGKILL every 1.5 s, 3 procs)", Broker: brokerName, Tasks: int64(n), Lost: int64(len(lost)), Duplicates: int64(dups),
		Surfaced: pubErrs.Load(), Notes: fmt.Sprintf("%d SIGKILLs, drained in %.1f s", kills, elapsed.Seconds())})
	require.Empty(t, lost, "lost tasks (first 10 shown): %v", head(lost, 10))
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
