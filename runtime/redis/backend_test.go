package redis_test

import (
	"bytes"
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

func openBackend(t testing.TB, raw string) *redis.Backend {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	b, err := redis.OpenBackend(u, driver.TransportOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func cmdCalls(t testing.TB, c *goredis.Client, cmd string) int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

func TestBackendStoreLoad(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	b := openBackend(t, raw)
	ctx := ctxT(t, 10*time.Second)
	p := prefixOf(t, raw)
	doc, err := b.Load(ctx, "missing")
	require.NoError(t, err)
	require.Nil(t, doc)

	fixture := []byte(`{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-11-23T19:42:39.917492", "task_id": "t1"}`)
	require.NoError(t, b.Store(ctx, "t1", fixture, 24*time.Hour))
	doc, err = b.Load(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, fixture, doc)
	ttl := b.Client().TTL(ctx, p+"celery-task-meta-t1").Val()
	require.InDelta(t, (24 * time.Hour).Seconds(), ttl.Seconds(), 5)

	require.NoError(t, b.Store(ctx, "t2", []byte("\x8c\xa6status\xa7SUCCESS"), 0))
	require.Equal(t, time.Duration(-1), b.Client().TTL(ctx, p+"celery-task-meta-t2").Val())
	doc, err = b.Load(ctx, "t2")
	require.NoError(t, err)
	require.Equal(t, []byte("\x8c\xa6status\xa7SUCCESS"), doc)
}

// TestBackendWaitWakesOnPublish: a Wait started before the result exists
// returns as soon as it is stored, reading the key once or twice, not in a
// polling loop.
func TestBackendWaitWakesOnPublish(t *testing.T) {
	// Not parallel: it counts GET commands on the server.
	srv := testenv.NewRedisServer(t)
	b := openBackend(t, srv.URL())
	ctx := ctxT(t, 10*time.Second)
	ready := func(doc []byte) bool { return bytes.Contains(doc, []byte(`"SUCCESS"`)) }

	type result struct {
		doc []byte
		err error
		at  time.Time
	}
	const waiters = 5
	results := make(chan result, waiters)
	gets0 := cmdCalls(t, b.Client(), "get")
	for i := range waiters {
		id := "w1"
		if i == waiters-1 {
			id = "w2"
		}
		go func() {
			doc, err := b.Wait(ctx, id, ready)
			results <- result{doc, err, time.Now()}
		}()
	}
	// All subscribed over one shared connection.
	require.Eventually(t, func() bool {
		m := b.Client().PubSubNumSub(ctx, "celery-task-meta-w1", "celery-task-meta-w2").Val()
		return m["celery-task-meta-w1"] == 1 && m["celery-task-meta-w2"] == 1
	}, 3*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	// A RETRY document is not ready: waiters keep waiting.
	require.NoError(t, b.Store(ctx, "w1", []byte(`{"status": "RETRY"}`), time.Hour))
	time.Sleep(100 * time.Millisecond)
	stored := time.Now()
	require.NoError(t, b.Store(ctx, "w1", []byte(`{"status": "SUCCESS", "result": 1}`), time.Hour))
	for range waiters - 1 {
		r := <-results
		require.NoError(t, r.err)
		require.Equal(t, `{"status": "SUCCESS", "result": 1}`, string(r.doc))
		require.Less(t, r.at.Sub(stored), 500*time.Millisecond)
	}
	require.NoError(t, b.Store(ctx, "w2", []byte(`{"status": "SUCCESS", "result": 2}`), time.Hour))
	r := <-results
	require.NoError(t, r.err)
	require.Equal(t, `{"status": "SUCCESS", "result": 2}`, string(r.doc))
	// One GET per waiter (after subscribing), none while waiting; each of
	// the 3 stores reads the key too (in its script, to keep a SUCCESS).
	require.LessOrEqual(t, cmdCalls(t, b.Client(), "get")-gets0, int64(waiters+3))
	// Unsubscribed when done.
	require.Eventually(t, func() bool {
		m := b.Client().PubSubNumSub(ctx, "celery-task-meta-w1").Val()
		return m["celery-task-meta-w1"] == 0
	}, 3*time.Second, 10*time.Millisecond)

	// Already stored: returns at once; ctx ends: returns ctx's error.
	doc, err := b.Wait(ctx, "w1", ready)
	require.NoError(t, err)
	require.Contains(t, string(doc), "SUCCESS")
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = b.Wait(sctx, "never", ready)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestBackendWaitSurvivesRestart: a waiter subscribed before Redis restarts
// still gets the result stored after it comes back.
func TestBackendWaitSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	b := openBackend(t, srv.URL())
	ctx := ctxT(t, 30*time.Second)
	ready := func(doc []byte) bool { return bytes.Contains(doc, []byte(`"SUCCESS"`)) }
	var wg sync.WaitGroup
	var got []byte
	var werr error
	wg.Go(func() { got, werr = b.Wait(ctx, "r1", ready) })
	require.Eventually(t, func() bool {
		return b.Client().PubSubNumSub(ctx, "celery-task-meta-r1").Val()["celery-task-meta-r1"] == 1
	}, 3*time.Second, 10*time.Millisecond)
	srv.Restart()
	// Store through another client once the server is back.
	w := openBackend(t, srv.URL())
	require.Eventually(t, func() bool {
		return w.Store(ctx, "r1", []byte(`{"status": "SUCCESS"}`), time.Hour) == nil
	}, 10*time.Second, 50*time.Millisecond)
	wg.Wait()
	require.NoError(t, werr)
	require.Equal(t, `{"status": "SUCCESS"}`, string(got))
}

func TestURLOptionsAndRedaction(t *testing.T) {
	t.Parallel()
	open := func(raw string) (*redis.Broker, error) {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		return redis.Open(u, driver.TransportOptions{})
	}
	_, err := open("redis://:s3cret@127.0.0.1:1/0?bogus_option=1")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
	require.Contains(t, err.Error(), "bogus_option")
	_, err = open("redis://user:s3cret@127.0.0.1:1/0?visibility_timeout=soon")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
	_, err = open("redis://127.0.0.1:1/x")
	require.Error(t, err)

	b, err := open("redis://:pw@127.0.0.1:1/3?visibility_timeout=90&global_keyprefix=app:&fetch_batch=8&dead_letter_queue=dlq&socket_timeout=2.5&dial_timeout=1s")
	require.NoError(t, err)
	o := b.Options()
	require.Equal(t, 90*time.Second, o.VisibilityTimeout)
	require.Equal(t, "app:", o.GlobalKeyPrefix)
	require.Equal(t, 8, o.FetchBatch)
	require.Equal(t, "dlq", b.DeadLetterList("celery"))
	require.Equal(t, 10*time.Second, o.RestoreInterval) // min(visibility_timeout/2, 10s)
	co := b.Client().Options()
	require.Equal(t, 3, co.DB)
	require.Equal(t, "pw", co.Password)
	require.Equal(t, 2500*time.Millisecond, co.ReadTimeout)
	require.Equal(t, time.Second, co.DialTimeout)
	require.Nil(t, co.TLSConfig)
	require.NoError(t, b.Close())

	b, err = open("rediss://:pw@example.com:6380/0?ssl_cert_reqs=CERT_NONE&visibility_timeout=1h30m")
	require.NoError(t, err)
	co = b.Client().Options()
	require.NotNil(t, co.TLSConfig)
	require.True(t, co.TLSConfig.InsecureSkipVerify)
	require.Equal(t, "example.com", co.TLSConfig.ServerName)
	require.Equal(t, 90*time.Minute, b.Options().VisibilityTimeout)
	require.NoError(t, b.Close())

	b, err = open("rediss://example.com/0?ssl_cert_reqs=required")
	require.NoError(t, err)
	require.False(t, b.Client().Options().TLSConfig.InsecureSkipVerify)
	require.NoError(t, b.Close())
	_, err = open("redis://example.com/0?ssl_cert_reqs=required")
	require.ErrorContains(t, err, "rediss")

	// Through runtime.New: both schemes are registered for broker and backend.
	for _, scheme := range []string{"redis", "rediss"} {
		app, err := runtime.New(runtime.Config{Broker: scheme + "://:pw@127.0.0.1:1/0", Backend: scheme + "://:pw@127.0.0.1:1/1"})
		require.NoError(t, err)
		require.IsType(t, &redis.Broker{}, app.Broker())
		require.IsType(t, &redis.Backend{}, app.Backend())
		require.NoError(t, app.Close())
	}
}

// TestBackendKeepsSuccess: as Celery 5, a stored SUCCESS is never
// overwritten (a task run twice keeps its first result), in either
// serialization; other states are.
func TestBackendKeepsSuccess(t *testing.T) {
	t.Parallel()
	b := openBackend(t, testURL(t, "", ""))
	ctx := ctxT(t, 10*time.Second)
	for _, ser := range []string{"json", "msgpack"} {
		id := "keep-" + ser
		enc := func(st driver.State, result any) []byte {
			doc, err := driver.EncodeResultDoc(ser, &driver.ResultDoc{Status: st, Result: result, TaskID: id})
			require.NoError(t, err)
			return doc
		}
		started, success, failure := enc(driver.StateStarted, nil), enc(driver.StateSuccess, int64(5)), enc(driver.StateFailure, nil)
		require.NoError(t, b.Store(ctx, id, started, time.Hour))
		require.NoError(t, b.Store(ctx, id, success, time.Hour)) // STARTED is overwritten
		require.NoError(t, b.Store(ctx, id, failure, time.Hour)) // SUCCESS is not
		doc, err := b.Load(ctx, id)
		require.NoError(t, err)
		require.Equal(t, success, doc, ser)
	}
}
