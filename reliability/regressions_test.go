//go:build reliability

package reliability_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/reliability/internal/faultproxy"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
	rredis "github.com/taskgen/taskgen/runtime/redis"
)

// Regression tests of bugs this suite found (docs/RELIABILITY.md §Bugs found).

// TestRedisAuthFailureIsNotSilent: when Redis refuses the connection's AUTH
// (wrong password, user disabled), Publish must return an error. It used to
// return nil with the message not in the queue (silent loss): flushPublish
// ignored pipe.Exec's error, and go-redis leaves the commands' own Err() nil
// when the connection could not be initialised.
func TestRedisAuthFailureIsNotSilent(t *testing.T) {
	_, okURL := privateRedis(t)
	bad := strings.Replace(okURL, redisPassword, redisPassword+"-wrong", 1)
	log, f := logger(t, "authfail", -4)
	app, err := runtime.New(runtime.Config{Broker: bad, Logger: log, PublishTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer app.Close()
	good, err := runtime.New(runtime.Config{Broker: okURL, Logger: log})
	require.NoError(t, err)
	defer good.Close()
	ctx := ctxT(t, 10*time.Second)
	queue := "rel.authfail." + randID()
	_, err = tasks.Record.With(runtime.WithApp(app), runtime.Queue(queue)).Delay(ctx, "x", 0)
	n, lerr := good.Broker().(*rredis.Broker).QueueLength(ctx, queue)
	require.NoError(t, lerr)
	if err != nil {
		f.WriteString("auth failure error: " + err.Error() + "\n")
		require.NotContains(t, err.Error(), redisPassword)
	}
	require.Error(t, err, "Delay returned nil but the queue holds %d messages: silent loss", n)
}

// TestRedisIdlePopReplyLost: an idle consumer is blocked waiting for a
// message; Redis hands it one and the reply never arrives (the connection
// dies after Redis executed the pop: a Redis SIGKILLed between its AOF fsync
// and its reply, or a network cut). With BRPOP the popped message existed
// only in that reply and was lost (TestBrokerRestartRedis lost 2 of 8414 this
// way in CI); the consumer now moves it with BLMOVE into an inbox of its
// own, and takes it from there once it reconnects. The proxy holds Redis's
// reply (stall), then resets the connections (cut).
func TestRedisIdlePopReplyLost(t *testing.T) {
	srv, direct := privateRedis(t)
	proxy, err := faultproxy.New(srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { proxy.Close() })
	pu, err := url.Parse(direct)
	require.NoError(t, err)
	pu.Host = proxy.Addr()
	via := withQuery(pu.String(), "poll_timeout=5s&socket_timeout=2s")

	ctx := ctxT(t, 2*time.Minute)
	s := newSink(t)
	queue := "rel.replylost." + randID()
	wapp, _ := newApp(t, "worker", via)
	inProcessWorker(t, wapp, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 2})
	papp, _ := newApp(t, "producer", direct)
	stub := recordStub(papp, queue)
	for round := range 3 {
		id := fmt.Sprintf("replylost-%d", round)
		time.Sleep(500 * time.Millisecond) // the consumer is idle, blocked in Redis
		proxy.Stall(true)
		_, err := stub.Delay(ctx, id, 0)
		require.NoError(t, err)
		// Redis executes the blocked pop at once: the queue is empty, the
		// message is on its way back in a reply the proxy holds.
		require.Eventually(t, func() bool {
			n, err := papp.Broker().(*rredis.Broker).QueueLength(ctx, queue)
			return err == nil && n == 0
		}, 10*time.Second, 10*time.Millisecond, "the blocked consumer did not take the message")
		proxy.Cut()
		proxy.Stall(false)
		cut := time.Now()
		lost, dups := s.waitAll([]string{id}, 30*time.Second)
		t.Logf("round %d: ran %v after the cut", round, time.Since(cut).Round(time.Millisecond))
		require.Empty(t, lost, "round %d: the message popped for a lost reply never ran", round)
		require.Zero(t, dups)
	}
}
