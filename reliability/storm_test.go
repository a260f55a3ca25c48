//go:build reliability

package reliability_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
)

// TestStorm: panicking tasks, tasks that ignore ctx past their time limit
// and a storm of retries, twice in a row on one worker process: a ping task
// on another queue of the same worker completes within pingBound while the
// storm runs, every storm task finally runs, and the worker's RSS after the
// second round is within rssGrowth of the first.
func TestStorm(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		_, u := privateRedis(t)
		runStorm(t, "redis", withQuery(u, "visibility_timeout=30s"))
	})
	t.Run("rabbitmq", func(t *testing.T) {
		runStorm(t, "rabbitmq", testenv.AMQPURL(t))
	})
}

const (
	stormConcurrency = 8
	stormPrefetch    = 4 * stormConcurrency   // the worker's default prefetch
	stubbornLimit    = 500 * time.Millisecond // rel.stubborn's time_limit
	// pingBound is the longest a ping may wait when it is fetched behind a
	// full prefetch window of stubborn tasks, with a busy pool: each batch of
	// stormConcurrency of them holds the pool for stubbornLimit, and FIFO
	// delivery puts up to stormPrefetch+stormConcurrency of them ahead of
	// the ping, plus time to enqueue, fetch and record it. Measured maxima
	// are 0.76–2.26 s on Redis, 0.76 s on RabbitMQ. A worker whose time limit
	// did not free its slot would hold it for the full 3 s sleep per batch
	// and exceed the bound.
	pingBound = (stormPrefetch+stormConcurrency)/stormConcurrency*stubbornLimit + 400*time.Millisecond
	rssGrowth = 32 << 10 // kB
	rssCeil   = 256 << 10
)

func runStorm(t *testing.T, brokerName, brokerURL string) {
	const (
		panics    = 300
		stubborns = 60 // sleep 3 s, time limit 500 ms
		storms    = 300
		until     = 15 // retries before a storm task succeeds
	)
	ctx := ctxT(t, 3*time.Minute)
	s := newSink(t)
	queue := "rel.storm." + randID()
	pingQ := queue + ".ping"
	w := startWorker(t, "storm-"+brokerName, map[string]string{"BROKER": brokerURL, "SINK": s.path, "QUEUES": queue + "," + pingQ, "CONCURRENCY": strconv.Itoa(stormConcurrency)})
	app, plog := newApp(t, "producer", brokerURL)
	opts := []runtime.Option{runtime.WithApp(app), runtime.Queue(queue)}

	// Warm up, then the baseline RSS.
	var warm []string
	for i := range 50 {
		id := fmt.Sprintf("warm-%d", i)
		_, err := tasks.Record.With(opts...).Delay(ctx, id, 0)
		require.NoError(t, err)
		warm = append(warm, id)
	}
	lost, _ := s.waitAll(warm, 30*time.Second)
	require.Empty(t, lost)
	time.Sleep(time.Second)
	rssBefore := rssKB(w.pid())

	var maxPing time.Duration
	var pings int
	var rssPeak int64
	var rssAfter []int64
	var stormIDs []string
	for round := range 2 {
		var ids []string
		for i := range storms {
			ids = append(ids, fmt.Sprintf("storm-%d-%d-%s", round, i, randID()))
		}
		stormIDs = append(stormIDs, ids...)
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range panics {
				_, err := tasks.Boom.With(opts...).Delay(ctx, i)
				require.NoError(t, err)
			}
		})
		wg.Go(func() {
			for range stubborns {
				_, err := tasks.Stubborn.With(opts...).Delay(ctx, 3000)
				require.NoError(t, err)
			}
		})
		wg.Go(func() {
			for _, id := range ids {
				_, err := tasks.Storm.With(opts...).Delay(ctx, id, until)
				require.NoError(t, err)
			}
		})
		// Ping while the storm runs.
		stopPing := make(chan struct{})
		pingDone := make(chan struct{})
		go func() {
			defer close(pingDone)
			for i := 0; ; i++ {
				select {
				case <-stopPing:
					return
				case <-time.After(250 * time.Millisecond):
				}
				id := fmt.Sprintf("%d-%d-%s", round, i, randID())
				start := time.Now()
				_, err := tasks.Ping.With(runtime.WithApp(app), runtime.Queue(pingQ)).Delay(ctx, id)
				if err != nil {
					fmt.Fprintln(plog, "ping error:", err)
					continue
				}
				for s.counts()["ping "+id] == 0 && time.Since(start) < 30*time.Second {
					time.Sleep(10 * time.Millisecond)
				}
				d := time.Since(start)
				pings++
				maxPing = max(maxPing, d)
				rssPeak = max(rssPeak, rssKB(w.pid()))
			}
		}()
		wg.Wait()
		lost, _ := s.waitAll(ids, 90*time.Second)
		close(stopPing)
		<-pingDone
		require.Empty(t, lost, "storm tasks never succeeded: %v", head(lost, 5))
		time.Sleep(3500 * time.Millisecond) // the stubborn goroutines end
		rssAfter = append(rssAfter, rssKB(w.pid()))
	}
	_, dups := s.tally(stormIDs)
	_, err := w.stop(20 * time.Second)
	require.NoError(t, err)
	stats := w.stats()
	t.Logf("%s: RSS before %d kB, peak %d kB, after round 1 %d kB, after round 2 %d kB; %d pings, slowest %v; stats %s",
		brokerName, rssBefore, rssPeak, rssAfter[0], rssAfter[1], pings, maxPing.Round(time.Millisecond), stats)
	report(t, figure{Scenario: "5 panics+ctx-ignoring+retry storm (×2 rounds)", Broker: brokerName, Tasks: int64(len(stormIDs)), Duplicates: int64(dups),
		Notes: fmt.Sprintf("%d panics, %d over time limit, %d×%d retries per round; ping max %v over %d pings; RSS kB before %d / peak %d / after r1 %d / after r2 %d; worker stats %s",
			panics, stubborns, storms, until, maxPing.Round(time.Millisecond), pings, rssBefore, rssPeak, rssAfter[0], rssAfter[1], stats)})
	require.Less(t, maxPing, pingBound, "the worker was unresponsive")
	require.Less(t, rssAfter[1]-rssAfter[0], int64(rssGrowth), "RSS grew between rounds")
	require.Less(t, rssPeak, int64(rssCeil))
}
