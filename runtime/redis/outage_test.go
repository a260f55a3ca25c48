package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// TestPublishDuringOutageFailsBounded: with Redis down, Publish returns an
// error within publish_timeout, never hangs, and works again afterwards.
func TestPublishDuringOutageFailsBounded(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	b := openBroker(t, srv.URL()+"?publish_timeout=1s")
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, b.Publish(ctx, "q", pubMsg("before", 0)))
	srv.Stop()
	start := time.Now()
	err := b.Publish(ctx, "q", pubMsg("during", 0))
	require.Error(t, err)
	require.Less(t, time.Since(start), 3*time.Second)
	// The caller's own deadline bounds it too.
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	require.Error(t, b.Publish(sctx, "q", pubMsg("during2", 0)))
	require.Less(t, time.Since(start), 2*time.Second)
	srv.Start()
	require.Eventually(t, func() bool { return b.Publish(ctx, "q", pubMsg("after", 0)) == nil }, 10*time.Second, 50*time.Millisecond)
	// The server keeps no data across restarts here: only "after" is left.
	n, err := b.QueueLength(ctx, "q")
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, int64(1))
}

// TestConsumerSurvivesRedisCrash (Celery #8030 family): Redis with
// appendonly and appendfsync always is killed mid-stream and restarted; the
// consumer resumes by itself, every message whose Publish returned nil is
// consumed, and messages published after the restart are consumed too.
func TestConsumerSurvivesRedisCrash(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t, "appendonly yes", "appendfsync always")
	raw := srv.URL() + "?visibility_timeout=2&restore_interval=300ms&publish_timeout=1s"
	b := openBroker(t, raw)
	ctx := ctxT(t, 60*time.Second)

	var mu sync.Mutex
	confirmed := map[string]bool{}
	seen := map[string]int{}
	publish := func(prefix string, n int) {
		for i := range n {
			id := fmt.Sprintf("%s-%d", prefix, i)
			if b.Publish(ctx, "crash", pubMsg(id, 0)) == nil {
				mu.Lock()
				confirmed[id] = true
				mu.Unlock()
			}
		}
	}
	publish("before", 300)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"crash"}, 16)
	require.NoError(t, err)
	consumed := make(chan struct{}, 10000)
	go func() {
		for d := range ds {
			if m := d.Message(); m != nil {
				mu.Lock()
				seen[m.Headers.ID]++
				mu.Unlock()
			}
			time.Sleep(200 * time.Microsecond) // a little work
			_ = d.Ack()
			consumed <- struct{}{}
		}
	}()
	for range 100 {
		<-consumed
	}
	srv.Kill()
	// Publishing while Redis is down fails (and is not counted).
	publish("down", 5)
	time.Sleep(500 * time.Millisecond)
	srv.Start()
	publish("after", 300)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range confirmed {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "some confirmed messages were never consumed")
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(confirmed), 600)
	for id := range seen {
		require.True(t, confirmed[id] || id[:4] == "down", "consumed a message never confirmed: %s", id)
	}
}

// TestWorkerResumesAfterRedisRestart goes through runtime.App and Worker.
func TestWorkerResumesAfterRedisRestart(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t, "appendonly yes")
	raw := srv.URL() + "?publish_timeout=2s"
	app := newApp(t, raw, "msgpack")
	def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y, nil })
	runWorker(t, app, runtime.WorkerOptions{Concurrency: 2}, def)
	ctx := ctxT(t, 60*time.Second)
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
	res, err := stub.Send(ctx, &addArgs{x: 1, y: 1})
	require.NoError(t, err)
	v, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), v)

	srv.Restart()
	var res2 *runtime.AsyncResult[int64]
	require.Eventually(t, func() bool {
		res2, err = stub.Send(ctx, &addArgs{x: 20, y: 22})
		return err == nil
	}, 10*time.Second, 100*time.Millisecond)
	v, err = res2.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(42), v)
}

// TestPublishAndCloseRace: Publish calls racing with Close all return.
func TestPublishAndCloseRace(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	ctx := ctxT(t, 20*time.Second)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 50 {
				_ = b.Publish(ctx, "race", pubMsg(fmt.Sprint(i, "-", j), 0))
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, b.Close())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Publish hung after Close")
	}
	require.ErrorIs(t, b.Publish(ctx, "race", pubMsg("late", 0)), redis.ErrClosed)
}

// TestDelayDuringOutageIsBoundedByTheApp: App adds no deadline of its own
// around a Redis publish (runtime.PublishBounder), so the broker's bound
// must hold for Delay with a context that has none: 8 concurrent Delays on
// a stopped Redis all fail, none hangs.
func TestDelayDuringOutageIsBoundedByTheApp(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	app, err := runtime.New(runtime.Config{Broker: srv.URL(), PublishTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	require.Implements(t, (*driver.PublishBounder)(nil), app.Broker())
	def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return nil, nil })
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
	_, err = stub.Send(context.Background(), &addArgs{x: 1, y: 2})
	require.NoError(t, err)
	srv.Stop()
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := stub.Send(context.Background(), &addArgs{x: 1, y: 2})
			errs <- err
		}()
	}
	deadline := time.After(15 * time.Second) // publish_timeout is 1 s: twice that at most, plus slack
	for range 8 {
		select {
		case err := <-errs:
			require.Error(t, err)
		case <-deadline:
			t.Fatal("a Delay hung on a stopped Redis")
		}
	}
}
