package redis_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// addArgs is what taskgen generates for func add(ctx, x, y int).
type addArgs struct{ x, y int64 }

var addArgsNames = codegen.ArgNames{{"x"}, {"y"}}

func (*addArgs) ArgNames() codegen.ArgNames { return addArgsNames }
func (a *addArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.Int(a.x)
	w.Int(a.y)
	return nil
}
func (a *addArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	switch i {
	case 0:
		a.x, err = r.Int(64)
	case 1:
		a.y, err = r.Int(64)
	}
	return err
}

func addDef(name string, run func(ctx context.Context, a *addArgs) (any, error)) *codegen.TaskDef {
	return &codegen.TaskDef{Name: name, Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run:     func(ctx context.Context, a codegen.Args) (any, error) { return run(ctx, a.(*addArgs)) }}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testURL returns the shared test Redis URL with a key prefix of its own, so
// that tests running in parallel do not see each other's keys, plus query.
func testURL(t testing.TB, base string, query string) string {
	t.Helper()
	if base == "" {
		base = testenv.RedisURL(t)
	}
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("global_keyprefix", "t"+randHex(4)+":")
	extra, err := url.ParseQuery(query)
	require.NoError(t, err)
	for k, v := range extra {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func openBroker(t testing.TB, raw string) *redis.Broker {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	b, err := redis.Open(u, driver.TransportOptions{Hostname: "test@host"})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func newApp(t testing.TB, brokerURL, ser string) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: brokerURL, Backend: brokerURL, Serializer: ser, PublishTimeout: 3 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

func runWorker(t testing.TB, app *runtime.App, o runtime.WorkerOptions, defs ...*codegen.TaskDef) *runtime.Worker {
	t.Helper()
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 2 * time.Second
	}
	w := app.NewWorker(o)
	for _, d := range defs {
		w.Register(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return w
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func prefixOf(t testing.TB, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Query().Get("global_keyprefix")
}

func TestE2E_DelayRunGet(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			app := newApp(t, testURL(t, "", ""), ser)
			def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y, nil })
			runWorker(t, app, runtime.WorkerOptions{}, def)
			ctx := ctxT(t, 10*time.Second)
			stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
			var results []*runtime.AsyncResult[int64]
			for i := range int64(20) {
				res, err := stub.Send(ctx, &addArgs{x: i, y: 100})
				require.NoError(t, err)
				results = append(results, res)
			}
			for i, res := range results {
				got, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(i+100), got)
			}
			st, err := results[0].State(ctx)
			require.NoError(t, err)
			require.Equal(t, driver.StateSuccess, st)
			// Everything acknowledged: the bookkeeping is empty again.
			b := app.Broker().(*redis.Broker)
			p := b.Options().GlobalKeyPrefix
			require.Eventually(t, func() bool {
				n, _ := b.Client().HLen(ctx, p+"unacked").Result()
				z := indexTags(ctx, b.Client(), p)
				return n == 0 && z == 0
			}, 3*time.Second, 10*time.Millisecond)
			// The binding Python creates when declaring the queue.
			members, err := b.Client().SMembers(ctx, p+"_kombu.binding.celery").Result()
			require.NoError(t, err)
			require.Equal(t, []string{"celery\x06\x16\x06\x16celery"}, members)
		})
	}
}

func pubMsg(id string, prio uint8) *driver.Message {
	return &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: id, DeliveryMode: 2, Priority: prio,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id, RootID: id, ArgsRepr: "(1, 2)", KwargsRepr: "{}"},
		Body:    []byte(`[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)}
}

func TestPrioritiesListsAndOrder(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	b := openBroker(t, raw)
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 10*time.Second)
	prios := []uint8{9, 0, 5, 3, 7, 1, 12}
	for i, pr := range prios {
		require.NoError(t, b.Publish(ctx, "pq", pubMsg(fmt.Sprintf("id-%d-prio-%d", i, pr), pr)))
	}
	c := b.Client()
	lens := map[string]int64{}
	for _, l := range []string{"pq", "pq\x06\x163", "pq\x06\x166", "pq\x06\x169"} {
		lens[l] = c.LLen(ctx, p+l).Val()
	}
	require.Equal(t, map[string]int64{"pq": 2, "pq\x06\x163": 2, "pq\x06\x166": 1, "pq\x06\x169": 2}, lens)
	n, err := b.QueueLength(ctx, "pq")
	require.NoError(t, err)
	require.EqualValues(t, len(prios), n)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"pq"}, 100)
	require.NoError(t, err)
	var got []string
	for range prios {
		d := <-ds
		require.NoError(t, d.DecodeError())
		require.Equal(t, "pq", d.Message().RoutingKey)
		got = append(got, d.Message().Headers.ID)
		require.NoError(t, d.Ack())
	}
	// Lower is higher on Redis; FIFO within a step.
	require.Equal(t, []string{"id-1-prio-0", "id-5-prio-1", "id-2-prio-5", "id-3-prio-3", "id-4-prio-7", "id-0-prio-9", "id-6-prio-12"}, got)
}

// TestFetchMixedSizes: the fetch script pops in chunks sized by the largest
// envelope seen so far; with sizes from 50 B to 700 KB on two priority lists
// every message still arrives once, in priority then FIFO order, with its
// body intact, and the unacked bookkeeping empties.
func TestFetchMixedSizes(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 20*time.Second)
	sizes := []int{100, 300_000, 1000, 700_000, 50, 20_000}
	var want []string
	bodies := map[string]int{}
	for _, prio := range []uint8{0, 9} {
		for i := range 24 {
			id := fmt.Sprintf("p%d-%02d", prio, i)
			m := pubMsg(id, prio)
			m.Body = bytes.Repeat([]byte{byte('a' + i%26)}, sizes[i%len(sizes)])
			bodies[id] = len(m.Body)
			require.NoError(t, b.Publish(ctx, "mix", m))
			want = append(want, id)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"mix"}, 64)
	require.NoError(t, err)
	var got []string
	for range want {
		d := <-ds
		require.NoError(t, d.DecodeError())
		m := d.Message()
		require.Len(t, m.Body, bodies[m.Headers.ID], m.Headers.ID)
		got = append(got, m.Headers.ID)
		require.NoError(t, d.Ack())
	}
	require.Equal(t, want, got)
	require.Eventually(t, func() bool {
		return b.Client().HLen(ctx, p+"unacked").Val() == 0 && indexTags(ctx, b.Client(), p) == 0
	}, 5*time.Second, 10*time.Millisecond)
	n, err := b.QueueLength(ctx, "mix")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestConsumeRoundRobinAcrossQueues(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", "fetch_batch=1"))
	ctx := ctxT(t, 10*time.Second)
	for i := range 3 {
		require.NoError(t, b.Publish(ctx, "qa", pubMsg(fmt.Sprintf("a%d", i), 0)))
		require.NoError(t, b.Publish(ctx, "qb", pubMsg(fmt.Sprintf("b%d", i), 0)))
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"qa", "qb"}, 1)
	require.NoError(t, err)
	var got []string
	for range 6 {
		d := <-ds
		got = append(got, d.Message().Headers.ID)
		require.NoError(t, d.Ack())
	}
	require.Equal(t, []string{"a0", "b0", "a1", "b1", "a2", "b2"}, got)
}

// publishN publishes messages with ids 0..n-1 onto queue, one at a time.
func publishN(ctx context.Context, t *testing.T, b *redis.Broker, queue string, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, b.Publish(ctx, queue, pubMsg(fmt.Sprint(i), 0)))
	}
}

func TestPrefetchBound(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 10*time.Second)
	publishN(ctx, t, b, "pf", 20)
	cctx, cancel := context.WithCancel(ctx)
	ds, err := b.Consume(cctx, []string{"pf"}, 3)
	require.NoError(t, err)
	var held []driver.Delivery
	for range 3 {
		held = append(held, <-ds)
	}
	select {
	case d := <-ds:
		t.Fatalf("a 4th delivery with prefetch 3: %s", d.Message().Headers.ID)
	case <-time.After(300 * time.Millisecond):
	}
	require.EqualValues(t, 3, b.Client().HLen(ctx, p+"unacked").Val())
	require.EqualValues(t, 17, b.Client().LLen(ctx, p+"pf").Val())
	require.NoError(t, held[0].Ack())
	select {
	case d := <-ds:
		held = append(held, d)
	case <-time.After(3 * time.Second):
		t.Fatal("no delivery after an ack")
	}
	require.ErrorContains(t, held[0].Ack(), "already settled")
	cancel()
	for d := range ds {
		require.NoError(t, d.Requeue())
	}
	for _, d := range held[1:] {
		require.NoError(t, d.Requeue())
	}
	require.Eventually(t, func() bool {
		return b.Client().HLen(ctx, p+"unacked").Val() == 0 && b.Client().LLen(ctx, p+"pf").Val() == 19
	}, 3*time.Second, 10*time.Millisecond)
	// Requeued messages are at the front, marked redelivered.
	front, err := b.Client().LIndex(ctx, p+"pf", -1).Result()
	require.NoError(t, err)
	require.Contains(t, front, `"redelivered": true`)
}

// TestCancelReturnsBufferedDeliveries: deliveries fetched ahead (up to the
// prefetch) but not yet taken from the channel go back to their list when
// the consumer's ctx ends, even if nobody reads the channel again.
func TestCancelReturnsBufferedDeliveries(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 10*time.Second)
	publishN(ctx, t, b, "buf", 20)
	cctx, cancel := context.WithCancel(ctx)
	ds, err := b.Consume(cctx, []string{"buf"}, 10)
	require.NoError(t, err)
	held := []driver.Delivery{<-ds, <-ds}
	require.Eventually(t, func() bool { // 8 more fetched ahead
		return b.Client().HLen(ctx, p+"unacked").Val() == 10
	}, 3*time.Second, 5*time.Millisecond)
	cancel()
	require.Eventually(t, func() bool {
		return b.Client().HLen(ctx, p+"unacked").Val() == 2 && b.Client().LLen(ctx, p+"buf").Val() == 18
	}, 3*time.Second, 10*time.Millisecond)
	_, open := <-ds
	require.False(t, open, "deliveries left in the channel after its consumer's end")
	for _, d := range held {
		require.NoError(t, d.Requeue())
	}
	require.Eventually(t, func() bool {
		return b.Client().HLen(ctx, p+"unacked").Val() == 0 && b.Client().LLen(ctx, p+"buf").Val() == 20
	}, 3*time.Second, 10*time.Millisecond)
}

// TestUnackedBookkeepingIsKombus checks the entries a Go consumer writes are
// those kombu writes: HSET unacked <tag> [envelope, "", queue] and ZADD
// unacked_index <delivery time> <tag>.
func TestUnackedBookkeepingIsKombus(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 10*time.Second)
	require.NoError(t, b.Publish(ctx, "celery", pubMsg("bk", 0)))
	env, err := b.Client().LIndex(ctx, p+"celery", 0).Result()
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"celery"}, 1)
	require.NoError(t, err)
	d := <-ds
	require.Equal(t, env, string(d.Raw()))
	tag := d.(interface{ Tag() string }).Tag()
	require.Contains(t, env, `"delivery_tag": "`+tag+`"`)
	entry, err := b.Client().HGet(ctx, p+"unacked", tag).Result()
	require.NoError(t, err)
	require.Equal(t, "["+env+`, "", "celery"]`, entry)
	score, err := b.Client().ZScore(ctx, p+"unacked_index", tag).Result()
	require.NoError(t, err)
	require.InDelta(t, float64(time.Now().UnixMicro())/1e6, score, 5)
	require.NoError(t, d.Ack())
	require.Eventually(t, func() bool {
		return b.Client().HExists(ctx, p+"unacked", tag).Val() == false && b.Client().ZScore(ctx, p+"unacked_index", tag).Err() == goredis.Nil
	}, 3*time.Second, 10*time.Millisecond)
}

// indexTags counts the delivery tags in unacked_index: every member but the
// keeper (score +inf).
func indexTags(ctx context.Context, c goredis.UniversalClient, prefix string) int64 {
	return c.ZCount(ctx, prefix+"unacked_index", "-inf", "(+inf").Val()
}

// TestUnackedIndexStaysASkiplist: the fetch script keeps its keeper member
// in unacked_index, so the set is a skiplist (ZADD and ZREM of a tag cost no
// scan of the set) even when it was a listpack a kombu worker created, and
// stays one once every delivery is settled; readers by score, kombu's
// restore_visible and taskgen's restore, never see the keeper.
func TestUnackedIndexStaysASkiplist(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", "visibility_timeout=1&restore_interval=1h"))
	p := b.Options().GlobalKeyPrefix
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	// A kombu worker's entry, as it writes it: a listpack set of short tags.
	require.NoError(t, c.ZAdd(ctx, p+"unacked_index", goredis.Z{Score: float64(time.Now().Unix()), Member: "kombu-tag"}).Err())
	require.Equal(t, "listpack", c.ObjectEncoding(ctx, p+"unacked_index").Val())
	for i := range 3 {
		require.NoError(t, b.Publish(ctx, "keep", pubMsg(fmt.Sprintf("k%d", i), 0)))
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"keep"}, 3)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, (<-ds).Ack())
	}
	require.NoError(t, c.ZRem(ctx, p+"unacked_index", "kombu-tag").Err())
	require.Eventually(t, func() bool {
		return c.HLen(ctx, p+"unacked").Val() == 0 && indexTags(ctx, c, p) == 0
	}, 3*time.Second, 10*time.Millisecond)
	require.Equal(t, "skiplist", c.ObjectEncoding(ctx, p+"unacked_index").Val())
	score, err := c.ZScore(ctx, p+"unacked_index", redis.IndexKeeper).Result()
	require.NoError(t, err, "the keeper is the member the fetch script writes")
	require.True(t, math.IsInf(score, 1), "keeper score %v", score)
	// kombu's restore_visible: ZREVRANGEBYSCORE unacked_index <ceil> 0.
	//lint:ignore SA1019 kombu's own command
	got, err := c.ZRevRangeByScore(ctx, p+"unacked_index", &goredis.ZRangeBy{Max: strconv.FormatInt(time.Now().Unix()+1, 10), Min: "0"}).Result()
	require.NoError(t, err)
	require.Empty(t, got)
	time.Sleep(1100 * time.Millisecond) // past the visibility timeout
	n, err := b.RestoreVisible(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, int64(1), c.ZCard(ctx, p+"unacked_index").Val(), "the keeper is left alone")
}

// TestVisibilityTimeoutRestoresCrashedConsumer: a consumer takes a message
// and dies without acknowledging; after the visibility timeout another
// consumer gets it back, marked redelivered.
func TestVisibilityTimeoutRestoresCrashedConsumer(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "visibility_timeout=1&restore_interval=200ms")
	ctx := ctxT(t, 20*time.Second)
	a := openBroker(t, raw)
	require.NoError(t, a.Publish(ctx, "vt", pubMsg("crash-me", 0)))
	actx, acancel := context.WithCancel(ctx)
	ds, err := a.Consume(actx, []string{"vt"}, 1)
	require.NoError(t, err)
	d := <-ds
	require.Equal(t, "crash-me", d.Message().Headers.ID)
	// "Crash": stop consuming and close without settling the delivery.
	acancel()
	for range ds {
	}
	require.NoError(t, a.Close())

	b := openBroker(t, raw)
	start := time.Now()
	ds2, err := b.Consume(ctx, []string{"vt"}, 1)
	require.NoError(t, err)
	select {
	case d2 := <-ds2:
		require.NoError(t, d2.DecodeError())
		require.Equal(t, "crash-me", d2.Message().Headers.ID)
		require.True(t, d2.Message().Redelivered)
		require.NotContains(t, d2.Message().Headers.Extra, "redelivered")
		require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
		require.NoError(t, d2.Ack())
	case <-ctx.Done():
		t.Fatal("message not restored")
	}
}

// TestAcksLateWorkerCrashRunsAgain goes through runtime.Worker: a worker
// that holds an acks_late task and "dies" (its broker closes without
// settling), then a second worker runs it after the visibility timeout.
func TestAcksLateWorkerCrashRunsAgain(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "visibility_timeout=1&restore_interval=200ms")
	ctx := ctxT(t, 20*time.Second)
	started := make(chan struct{})
	var once sync.Once
	block := make(chan struct{})
	defer close(block)
	var runs atomic.Int32
	def := addDef("tasks.slow", func(ctx context.Context, a *addArgs) (any, error) {
		runs.Add(1)
		info, _ := runtime.TaskFromContext(ctx)
		if !info.Redelivered {
			once.Do(func() { close(started) })
			<-block // never finishes in this test
			return nil, errors.New("unreachable")
		}
		return a.x * a.y, nil
	})
	def.AcksLate = true

	// Worker 1: its own app, stopped by closing its broker under it.
	app1, err := runtime.New(runtime.Config{Broker: raw, Backend: raw, PublishTimeout: time.Second})
	require.NoError(t, err)
	w1 := app1.NewWorker(runtime.WorkerOptions{Concurrency: 1, ShutdownTimeout: time.Hour})
	w1.Register(def)
	w1ctx, w1cancel := context.WithCancel(ctx)
	defer w1cancel()
	go func() { _ = w1.Run(w1ctx) }()

	res, err := runtime.NewStub[int64](def).With(runtime.WithApp(app1)).Send(ctx, &addArgs{x: 6, y: 7})
	require.NoError(t, err)
	<-started
	// Simulated crash: the broker's connections go away; the un-acked
	// delivery stays in kombu's unacked hash.
	require.NoError(t, app1.Broker().Close())

	app2 := newApp(t, raw, "msgpack")
	runWorker(t, app2, runtime.WorkerOptions{}, def)
	got, err := runtime.NewAsyncResult[int64](app2, res.ID()).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(42), got)
	require.EqualValues(t, 2, runs.Load())
}

func TestDeferRunsOnceDespiteVisibilityTimeout(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "visibility_timeout=1&restore_interval=100ms&delay_poll_interval=50ms")
	app := newApp(t, raw, "msgpack")
	b := app.Broker().(*redis.Broker)
	p := b.Options().GlobalKeyPrefix
	var runs atomic.Int32
	ran := make(chan time.Time, 10)
	def := addDef("tasks.later", func(ctx context.Context, a *addArgs) (any, error) {
		runs.Add(1)
		ran <- time.Now()
		return a.x + a.y, nil
	})
	runWorker(t, app, runtime.WorkerOptions{DelayHorizon: 300 * time.Millisecond}, def)
	ctx := ctxT(t, 20*time.Second)
	start := time.Now()
	res, err := runtime.NewStub[int64](def).With(runtime.WithApp(app), runtime.Countdown(2*time.Second)).Send(ctx, &addArgs{x: 1, y: 2})
	require.NoError(t, err)
	// Parked in the delayed set, not held un-acked.
	require.Eventually(t, func() bool {
		return b.Client().ZCard(ctx, p+"taskgen.delayed").Val() == 1 && b.Client().HLen(ctx, p+"unacked").Val() == 0
	}, 2*time.Second, 10*time.Millisecond)
	got, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), got)
	at := <-ran
	require.GreaterOrEqual(t, at.Sub(start), 1900*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // > visibility timeout + restore interval
	require.EqualValues(t, 1, runs.Load())
	require.Zero(t, b.Client().ZCard(ctx, p+"taskgen.delayed").Val())
}

// TestPoisonIsDeadLettered: every kind of bad input lands in the dead-letter
// list with its reason and original bytes; the worker keeps going.
func TestPoisonIsDeadLettered(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	app := newApp(t, raw, "json")
	b := app.Broker().(*redis.Broker)
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 20*time.Second)
	def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y, nil })

	good := func(id, task, body string) string {
		return `{"body": "` + b64(body) + `", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "` + task + `", "id": "` + id + `"}, "properties": {"correlation_id": "` + id + `", "reply_to": "", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "` + randHex(16) + `"}}`
	}
	okBody := `[[1, 2], {}, null]`
	poison := map[string]string{
		"not json":          "this is not json \xff",
		"no delivery_tag":   strings.Replace(good("p1", "tasks.add", okBody), `"delivery_tag"`, `"x_tag"`, 1),
		"no delivery_info":  strings.Replace(good("p2", "tasks.add", okBody), `"delivery_info"`, `"x_info"`, 1),
		"bad base64":        strings.Replace(good("p3", "tasks.add", okBody), `"body": "`, `"body": "!!`, 1),
		"unregistered task": good("p4", "tasks.nope", okBody),
		"undecodable body":  good("p5", "tasks.add", `[["one", 2], {}, null]`),
	}
	wantReason := map[string]string{
		"not json":          "kombu envelope",
		"no delivery_tag":   "delivery_tag",
		"no delivery_info":  "delivery_info",
		"bad base64":        "base64",
		"unregistered task": "unregistered task",
		"undecodable body":  "cannot decode arguments",
	}
	for _, name := range sortedKeys(poison) {
		require.NoError(t, b.Client().LPush(ctx, p+"celery", poison[name]).Err())
		require.NoError(t, b.Client().LPush(ctx, p+"celery", good("ok-"+strings.ReplaceAll(name, " ", "-"), "tasks.add", okBody)).Err())
	}
	w := runWorker(t, app, runtime.WorkerOptions{}, def)
	for _, name := range sortedKeys(poison) {
		v, err := runtime.NewAsyncResult[int64](app, "ok-"+strings.ReplaceAll(name, " ", "-")).Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(3), v)
	}
	var dls []redis.DeadLetter
	require.Eventually(t, func() bool {
		dls, _ = b.DeadLetters(ctx, "celery", 0)
		return len(dls) == len(poison)
	}, 5*time.Second, 20*time.Millisecond)
	require.EqualValues(t, len(poison), w.Stats().DeadLettered)
	byRaw := map[string]redis.DeadLetter{}
	for _, dl := range dls {
		byRaw[string(dl.Raw)] = dl
		require.Equal(t, "celery", dl.Queue)
		require.Equal(t, "celery.dead_letter", b.DeadLetterList("celery"))
		require.WithinDuration(t, time.Now(), dl.Time, time.Minute)
	}
	for name, raw := range poison {
		dl, ok := byRaw[raw]
		require.True(t, ok, "%s: original bytes not in the dead-letter list", name)
		require.Contains(t, dl.Reason, wantReason[name], name)
	}
	require.Zero(t, b.Client().HLen(ctx, p+"unacked").Val())
	require.Zero(t, b.Client().LLen(ctx, p+"celery").Val())
	// The unregistered task also got Celery's NotRegistered failure.
	_, err := runtime.NewAsyncResult[int64](app, "p4").Get(ctx)
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "NotRegistered", te.Exception.Type)
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestDuplicateTagsGetDistinctEntries: the same envelope pushed twice (same
// delivery tag) is delivered twice with distinct unacked entries, so
// settling one copy never drops the other's bookkeeping.
func TestDuplicateTagsGetDistinctEntries(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 10*time.Second)
	require.NoError(t, b.Publish(ctx, "dup", pubMsg("dup", 0)))
	env, err := b.Client().LIndex(ctx, p+"dup", 0).Result()
	require.NoError(t, err)
	require.NoError(t, b.Client().LPush(ctx, p+"dup", env).Err())
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"dup"}, 10)
	require.NoError(t, err)
	d1, d2 := <-ds, <-ds
	type tagger interface{ Tag() string }
	require.NotEqual(t, d1.(tagger).Tag(), d2.(tagger).Tag())
	require.EqualValues(t, 2, b.Client().HLen(ctx, p+"unacked").Val())
	cancel()
	for range ds {
	}
	require.NoError(t, d1.Ack())
	require.NoError(t, d2.Requeue())
	require.Eventually(t, func() bool {
		return b.Client().HLen(ctx, p+"unacked").Val() == 0 && b.Client().LLen(ctx, p+"dup").Val() == 1
	}, 3*time.Second, 10*time.Millisecond)
}

// TestRestoreKeepsPriorityBucket: a restored priority-7 message goes back to
// its own list (kombu 5.4+ behaviour), at the front.
func TestRestoreKeepsPriorityBucket(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "visibility_timeout=1h")
	b := openBroker(t, raw)
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 10*time.Second)
	require.NoError(t, b.Publish(ctx, "rp", pubMsg("p7", 7)))
	// Fake a stale entry: what a consumer that died an hour ago left behind.
	env, err := b.Client().RPop(ctx, p+"rp\x06\x166").Result()
	require.NoError(t, err)
	tag := "stale-tag"
	require.NoError(t, b.Client().HSet(ctx, p+"unacked", tag, "["+env+`, "", "rp"]`).Err())
	require.NoError(t, b.Client().ZAdd(ctx, p+"unacked_index", goredis.Z{Score: float64(time.Now().Add(-2 * time.Hour).Unix()), Member: tag}).Err())
	require.NoError(t, b.Publish(ctx, "rp", pubMsg("other", 7)))
	n, err := b.RestoreVisible(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	front, err := b.Client().LIndex(ctx, p+"rp\x06\x166", -1).Result()
	require.NoError(t, err)
	require.Contains(t, front, `"id": "p7"`)
	require.Contains(t, front, `"redelivered": true`)
	require.Zero(t, b.Client().HLen(ctx, p+"unacked").Val())
	require.Zero(t, indexTags(ctx, b.Client(), p))
	// The lock was released.
	require.Zero(t, b.Client().Exists(ctx, p+"unacked_mutex").Val())
}

// TestLongTaskOnLiveWorkerRunsOnce: an acks_late task running longer than
// the visibility timeout on a live worker is not restored to another worker
// (the consumer refreshes its deliveries); with visibility_heartbeat=false
// it is, as with kombu.
func TestLongTaskOnLiveWorkerRunsOnce(t *testing.T) {
	t.Parallel()
	for _, hb := range []bool{true, false} {
		t.Run(fmt.Sprint("heartbeat=", hb), func(t *testing.T) {
			t.Parallel()
			raw := testURL(t, "", fmt.Sprintf("visibility_timeout=1&restore_interval=100ms&visibility_heartbeat=%v", hb))
			var runs atomic.Int32
			def := addDef("tasks.long", func(ctx context.Context, a *addArgs) (any, error) {
				runs.Add(1)
				time.Sleep(2500 * time.Millisecond)
				return a.x, nil
			})
			def.AcksLate = true
			app1 := newApp(t, raw, "msgpack")
			app2 := newApp(t, raw, "msgpack")
			runWorker(t, app1, runtime.WorkerOptions{Concurrency: 1}, def)
			runWorker(t, app2, runtime.WorkerOptions{Concurrency: 1}, def)
			ctx := ctxT(t, 20*time.Second)
			res, err := runtime.NewStub[int64](def).With(runtime.WithApp(app1)).Send(ctx, &addArgs{x: 9})
			require.NoError(t, err)
			v, err := res.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(9), v)
			time.Sleep(300 * time.Millisecond)
			if hb {
				require.EqualValues(t, 1, runs.Load())
			} else {
				require.GreaterOrEqual(t, runs.Load(), int32(2))
			}
		})
	}
}

// TestDeferStartsAtDueTime: a consumer moves a parked message when it is
// due, not at its next delay_poll_interval (here far longer than the
// countdown), and a message parked while the mover sleeps wakes it.
func TestDeferStartsAtDueTime(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "delay_poll_interval=1h")
	app := newApp(t, raw, "msgpack")
	ran := make(chan time.Time, 10)
	def := addDef("tasks.due", func(ctx context.Context, a *addArgs) (any, error) {
		ran <- time.Now()
		return a.x + a.y, nil
	})
	runWorker(t, app, runtime.WorkerOptions{DelayHorizon: 100 * time.Millisecond}, def)
	ctx := ctxT(t, 30*time.Second)
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
	for _, countdown := range []time.Duration{1500 * time.Millisecond, 700 * time.Millisecond} {
		start := time.Now()
		res, err := stub.With(runtime.Countdown(countdown)).Send(ctx, &addArgs{x: 1, y: 2})
		require.NoError(t, err)
		got, err := res.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(3), got)
		at := <-ran
		require.GreaterOrEqual(t, at.Sub(start), countdown-50*time.Millisecond, "ran before it was due")
	}
}

// TestConcurrentPublishesLandOnce: many concurrent Publish calls, written
// as several batches in flight at once on separate connections, each land
// exactly once on their queue's list, and each caller's messages in the
// order it published them.
func TestConcurrentPublishesLandOnce(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	prefix := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 20*time.Second)
	const producers, each, queues = 32, 100, 3
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			q := fmt.Sprintf("many%d", p%queues)
			for j := range each {
				if err := b.Publish(ctx, q, pubMsg(fmt.Sprintf("%d-%d", p, j), 0)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	next := make([]int, producers) // per producer, the next j expected
	for q := range queues {
		// LPUSH: the oldest message is at the right end.
		envs, err := b.Client().LRange(ctx, fmt.Sprintf("%smany%d", prefix, q), 0, -1).Result()
		require.NoError(t, err)
		for _, env := range slices.Backward(envs) {
			var e struct {
				Headers struct{ ID string } `json:"headers"`
			}
			require.NoError(t, json.Unmarshal([]byte(env), &e))
			var p, j int
			_, err := fmt.Sscanf(e.Headers.ID, "%d-%d", &p, &j)
			require.NoError(t, err)
			require.Equal(t, q, p%queues, "message %s on the wrong queue", e.Headers.ID)
			require.Equal(t, next[p], j, "producer %d's messages out of order, missing or repeated", p)
			next[p]++
		}
	}
	for p, n := range next {
		require.Equal(t, each, n, "producer %d: messages missing", p)
	}
}
