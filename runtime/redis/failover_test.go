package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestSentinelFailover: 1000 acks_late tasks published through Sentinel
// with min_replicas=1 while a worker runs them; the master is SIGKILLed
// after the first 300 confirmations. The publishers (which retry a
// failed Send with the same task id, as a caller told of the failure would)
// and the worker go on after the failover without being restarted, and
// every confirmed task runs: 0 lost. Duplicates (a delivery whose
// acknowledgement died with the master runs again) are counted.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	const total, killAt, publishers = 1000, 300, 4
	d := testenv.NewRedisSentinel(t, testenv.SentinelConfig{})
	raw := testURL(t, d.URL(), "min_replicas=1&visibility_timeout=3&restore_interval=250ms")
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := runtime.New(runtime.Config{Broker: raw, Backend: raw, PublishTimeout: 10 * time.Second, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	ctx := ctxT(t, 3*time.Minute)

	var (
		mu        sync.Mutex
		runs      = map[int64]int{}
		ran       = map[int64]time.Time{} // first run
		confirmed = map[int64]time.Time{}
	)
	def := addDef("failover.record", func(ctx context.Context, a *addArgs) (any, error) {
		mu.Lock()
		runs[a.x]++
		if _, ok := ran[a.x]; !ok {
			ran[a.x] = time.Now()
		}
		mu.Unlock()
		return a.x, nil
	})
	def.AcksLate = true
	runWorker(t, app, runtime.WorkerOptions{Concurrency: 8}, def)
	stub := runtime.NewStub[int64](def)

	var next, sendErrs atomic.Int64
	var pubs sync.WaitGroup
	for range publishers {
		pubs.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				for ctx.Err() == nil {
					_, err := stub.With(runtime.WithApp(app), runtime.TaskID("fo-"+strconv.FormatInt(i, 10))).Send(ctx, &addArgs{x: i})
					if err == nil {
						mu.Lock()
						confirmed[i] = time.Now()
						mu.Unlock()
						break
					}
					sendErrs.Add(1)
					t.Logf("send %d failed (retrying): %v", i, err)
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(4 * time.Millisecond) // a stream, not a burst
			}
		})
	}
	countConfirmed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(confirmed)
	}
	require.Eventually(t, func() bool { return countConfirmed() >= killAt }, time.Minute, time.Millisecond)
	old := d.KillMaster()
	killed := time.Now()
	newMaster := d.WaitFailover(old.Addr())
	failedOver := time.Since(killed)
	pubs.Wait()
	require.Equal(t, total, countConfirmed())

	var lost []int64
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		lost = lost[:0]
		for i := range confirmed {
			if runs[i] == 0 {
				lost = append(lost, i)
			}
		}
		return len(lost) == 0
	}, time.Minute, 50*time.Millisecond, "confirmed tasks never ran")

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, n := range runs {
		dups += n - 1
	}
	var firstConfirm, firstRun time.Duration = -1, -1
	for i, at := range confirmed {
		if at.After(killed) && (firstConfirm < 0 || at.Sub(killed) < firstConfirm) {
			firstConfirm = at.Sub(killed)
		}
		if r := ran[i]; at.After(killed) && (firstRun < 0 || r.Sub(killed) < firstRun) {
			firstRun = r.Sub(killed)
		}
	}
	t.Logf("killed master %s after %d confirmations; sentinels promoted %s within %v; first confirmed Send after the kill at +%v, first run of a task sent after the kill at +%v; %d/%d tasks ran, 0 lost, %d duplicate runs, %d failed Sends (retried)",
		old.Addr(), killAt, newMaster.Addr(), failedOver.Round(time.Millisecond), firstConfirm.Round(time.Millisecond), firstRun.Round(time.Millisecond),
		len(runs), total, dups, sendErrs.Load())
}

// TestSentinelLossWindow measures what asynchronous replication loses when
// the master dies under a full-speed publish stream: publishers send as
// fast as they can (no consumer), the master is SIGKILLed, and after the
// failover every confirmed message missing from the new master's queue is
// lost. It runs with the replicas on loopback as they are, and with their
// replication link through a proxy that delays it by linkLag and drops
// what it holds when the master dies (a master host lost with the bytes in
// flight to a replica one linkLag away). With min_replicas=1 nothing may be
// lost; without, the figures are logged: how many were lost and how long
// before the kill the oldest lost one was confirmed (the loss window).
// TASKGEN_SENTINEL_LOSS_ROUNDS sets the rounds per case (default 1).
func TestSentinelLossWindow(t *testing.T) {
	t.Parallel()
	const linkLag = 10 * time.Millisecond
	rounds := 1
	if v := os.Getenv("TASKGEN_SENTINEL_LOSS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		rounds = n
	}
	for _, c := range []struct {
		minReplicas int
		lag         time.Duration
	}{{0, 0}, {1, 0}, {0, linkLag}, {1, linkLag}} {
		t.Run(fmt.Sprintf("min_replicas=%d/link_lag=%v", c.minReplicas, c.lag), func(t *testing.T) {
			t.Parallel()
			var totalLost, totalConfirmed int
			var windows []time.Duration
			for round := range rounds {
				r := lossRound(t, c.minReplicas, c.lag)
				totalLost += r.lost
				totalConfirmed += r.confirmed
				if r.lost > 0 {
					windows = append(windows, r.window.Round(100*time.Microsecond))
				}
				t.Logf("round %d: %d of %d messages confirmed in %v (%.0f/s) lost; oldest lost confirmed %v before the kill",
					round+1, r.lost, r.confirmed, r.ran.Round(time.Millisecond), float64(r.confirmed)/r.ran.Seconds(), r.window.Round(100*time.Microsecond))
				if c.minReplicas > 0 {
					require.Zero(t, r.lost, "confirmed messages lost with min_replicas=%d", c.minReplicas)
				}
			}
			slices.Sort(windows)
			t.Logf("min_replicas=%d, link lag %v: %d rounds, %d of %d confirmed messages lost, loss windows %v",
				c.minReplicas, c.lag, rounds, totalLost, totalConfirmed, windows)
		})
	}
}

type lossResult struct {
	lost, confirmed int
	window          time.Duration // oldest lost confirmation before the kill
	ran             time.Duration // publishing time before the kill
}

// lossRound runs one round of TestSentinelLossWindow on a fresh deployment.
func lossRound(t *testing.T, minReplicas int, lag time.Duration) lossResult {
	const publishers = 8
	cfg := testenv.SentinelConfig{}
	if lag > 0 {
		cfg.ReplicaLink = func(master string) string { return testenv.LagProxy(t, master, lag) }
	}
	d := testenv.NewRedisSentinel(t, cfg)
	b := openBroker(t, testURL(t, d.URL(), fmt.Sprintf("min_replicas=%d&publish_timeout=1s", minReplicas)))
	q := "loss." + randHex(4)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		mu     sync.Mutex
		conf   = map[string]time.Time{}
		killed time.Time
		next   atomic.Int64
		pubs   sync.WaitGroup
	)
	for range publishers {
		pubs.Go(func() {
			for ctx.Err() == nil {
				id := "l-" + strconv.FormatInt(next.Add(1), 10)
				m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8, DeliveryMode: 2,
					Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.loss", ID: id, RootID: id},
					Body:    []byte(`[[], {}, {}]`)}
				if b.Publish(ctx, q, m) == nil {
					at := time.Now()
					mu.Lock()
					if killed.IsZero() || at.Before(killed) {
						conf[id] = at
					}
					mu.Unlock()
				}
			}
		})
	}
	started := time.Now()
	time.Sleep(time.Second) // full speed
	old := d.Master()
	mu.Lock()
	killed = time.Now()
	mu.Unlock()
	old.Kill()
	stop()
	pubs.Wait()
	d.WaitFailover(old.Addr())

	rctx := ctxT(t, 30*time.Second)
	var envs []string
	require.Eventually(t, func() bool {
		var err error
		envs, err = b.Client().LRange(rctx, b.Options().GlobalKeyPrefix+q, 0, -1).Result()
		return err == nil
	}, 30*time.Second, 50*time.Millisecond)
	present := make(map[string]bool, len(envs))
	for _, e := range envs {
		var env struct {
			Headers struct{ ID string } `json:"headers"`
		}
		require.NoError(t, json.Unmarshal([]byte(e), &env))
		present[env.Headers.ID] = true
	}
	mu.Lock()
	defer mu.Unlock()
	r := lossResult{confirmed: len(conf), ran: killed.Sub(started)}
	for id, at := range conf {
		if !present[id] {
			r.lost++
			r.window = max(r.window, killed.Sub(at))
		}
	}
	return r
}
