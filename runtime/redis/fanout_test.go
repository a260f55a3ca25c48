package redis_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// Tests of events and remote control (fanout.go). Go-only tests use the
// shared Redis with a global_keyprefix of their own (channels are prefixed
// too); tests with Python use a private redis-server, some on database 13.

func readFanoutFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// withDB returns the private server's URL on database db.
func withDB(srv *testenv.RedisServer, db string) string {
	return strings.TrimSuffix(srv.URL(), "/0") + "/" + db
}

// jsonKeys returns the member names, in order, of the JSON object at path
// in raw.
func jsonKeys(t testing.TB, raw []byte, path ...string) []string {
	t.Helper()
	for _, p := range path {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &m))
		raw = m[p]
		require.NotNil(t, raw, "member %q", p)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}

type kombuEnvelope struct {
	Body            string         `json:"body"`
	ContentEncoding string         `json:"content-encoding"`
	ContentType     string         `json:"content-type"`
	Headers         map[string]any `json:"headers"`
	Properties      struct {
		DeliveryMode int `json:"delivery_mode"`
		DeliveryInfo struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"delivery_info"`
		Priority     int    `json:"priority"`
		BodyEncoding string `json:"body_encoding"`
		DeliveryTag  string `json:"delivery_tag"`
	} `json:"properties"`
}

func parseKombu(t testing.TB, raw []byte) (kombuEnvelope, []byte) {
	t.Helper()
	var env kombuEnvelope
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	body, err := base64.StdEncoding.DecodeString(env.Body)
	require.NoError(t, err)
	return env, body
}

// requireKombuShape checks that raw has the key order of the captured
// payload fixture and a uuid4 delivery tag.
func requireKombuShape(t testing.TB, fixture string, raw []byte) {
	t.Helper()
	want := readFanoutFixture(t, fixture)
	require.Equal(t, jsonKeys(t, want), jsonKeys(t, raw))
	require.Equal(t, jsonKeys(t, want, "properties"), jsonKeys(t, raw, "properties"))
	require.Equal(t, jsonKeys(t, want, "properties", "delivery_info"), jsonKeys(t, raw, "properties", "delivery_info"))
	env, _ := parseKombu(t, raw)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, env.Properties.DeliveryTag)
	require.Equal(t, "base64", env.Properties.BodyEncoding)
	require.Equal(t, 0, env.Properties.Priority)
}

// psubscribe returns a raw pub/sub listener on pattern.
func psubscribe(t testing.TB, c *goredis.Client, pattern string) <-chan *goredis.Message {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	ps := c.PSubscribe(ctx, pattern)
	_, err := ps.Receive(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { ps.Close() })
	return ps.Channel()
}

func recvMsg(t testing.TB, ch <-chan *goredis.Message) *goredis.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no pub/sub message")
		return nil
	}
}

func recvRaw(t testing.TB, ch <-chan *driver.RawMessage) *driver.RawMessage {
	t.Helper()
	select {
	case m, ok := <-ch:
		require.True(t, ok, "channel closed")
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func requireClosed(t testing.TB, ch <-chan *driver.RawMessage, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("channel not closed within %v", within)
		}
	}
}

// TestFanout_PublishedAsKombu: PublishEvent, PublishControl and Reply
// write what kombu writes (channel names with the database number and the
// global key prefix, envelope layout of the captured payloads, delivery
// modes, delivery_info), and Reply routes through the binding set.
func TestFanout_PublishedAsKombu(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	b := openBroker(t, withDB(srv, "13")+"?global_keyprefix=pfx:")
	c := b.Client()
	ctx := ctxT(t, 30*time.Second)

	evs := psubscribe(t, c, "pfx:/13.celeryev/*")
	body := []byte(`{"hostname": "w@h", "type": "worker-heartbeat"}`)
	require.NoError(t, b.PublishEvent(ctx, &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"hostname": "w@h"}, Body: body, Exchange: "celeryev", RoutingKey: "worker.heartbeat"}))
	m := recvMsg(t, evs)
	require.Equal(t, "pfx:/13.celeryev/worker.heartbeat", m.Channel)
	requireKombuShape(t, "redis_event_jsonrun_worker_heartbeat.bin", []byte(m.Payload))
	env, got := parseKombu(t, []byte(m.Payload))
	require.Equal(t, body, got)
	require.Equal(t, "application/json", env.ContentType)
	require.Equal(t, "utf-8", env.ContentEncoding)
	require.Equal(t, map[string]any{"hostname": "w@h"}, env.Headers)
	require.Equal(t, 1, env.Properties.DeliveryMode)
	require.Equal(t, "celeryev", env.Properties.DeliveryInfo.Exchange)
	require.Equal(t, "worker.heartbeat", env.Properties.DeliveryInfo.RoutingKey)
	// The exchange defaults to celeryev.
	require.NoError(t, b.PublishEvent(ctx, &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8",
		Body: []byte("[]"), RoutingKey: "task.multi"}))
	m = recvMsg(t, evs)
	require.Equal(t, "pfx:/13.celeryev/task.multi", m.Channel)
	env, got = parseKombu(t, []byte(m.Payload))
	require.Equal(t, "[]", string(got))
	require.Equal(t, map[string]any{}, env.Headers)

	ctl := psubscribe(t, c, "pfx:/13.celery.pidbox")
	req := []byte(`{"method": "ping", "arguments": {}, "destination": null, "pattern": null, "matcher": null, "ticket": "t1", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid1"}}`)
	require.NoError(t, b.PublishControl(ctx, &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"clock": int64(1), "expires": 1795462961.941098}, Body: req, Exchange: "celery.pidbox"}))
	m = recvMsg(t, ctl)
	require.Equal(t, "pfx:/13.celery.pidbox", m.Channel)
	requireKombuShape(t, "redis_pidbox_request_json_ping.bin", []byte(m.Payload))
	env, got = parseKombu(t, []byte(m.Payload))
	require.Equal(t, req, got)
	require.Equal(t, map[string]any{"clock": 1.0, "expires": 1795462961.941098}, env.Headers)
	require.Equal(t, 2, env.Properties.DeliveryMode)
	require.Equal(t, "celery.pidbox", env.Properties.DeliveryInfo.Exchange)
	require.Equal(t, "", env.Properties.DeliveryInfo.RoutingKey)

	// Reply: resolved through _kombu.binding.reply.celery.pidbox, as a
	// Python client binds its reply queue.
	oid := driver.NewID()
	list := oid + ".reply.celery.pidbox"
	require.NoError(t, c.SAdd(ctx, "pfx:_kombu.binding.reply.celery.pidbox", oid+"\x06\x16\x06\x16"+list, "other\x06\x16\x06\x16other.reply.celery.pidbox").Err())
	reply := []byte(`{"w@h": {"ok": "pong"}}`)
	require.NoError(t, b.Reply(ctx, "reply.celery.pidbox", oid, &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"ticket": "t1", "clock": int64(3)}, Body: reply}))
	vals, err := c.LRange(ctx, "pfx:"+list, 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, vals, 1)
	requireKombuShape(t, "redis_pidbox_reply_json_ping.bin", []byte(vals[0]))
	env, got = parseKombu(t, []byte(vals[0]))
	require.Equal(t, reply, got)
	require.Equal(t, map[string]any{"ticket": "t1", "clock": 3.0}, env.Headers)
	require.Equal(t, 1, env.Properties.DeliveryMode)
	require.Equal(t, "reply.celery.pidbox", env.Properties.DeliveryInfo.Exchange)
	require.Equal(t, oid, env.Properties.DeliveryInfo.RoutingKey)
	ttl, err := c.PTTL(ctx, "pfx:"+list).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 200*time.Second)
	require.Zero(t, c.Exists(ctx, "pfx:other.reply.celery.pidbox").Val())
	// Nobody bound for the oid any more: dropped, as kombu drops it.
	require.NoError(t, b.Reply(ctx, "reply.celery.pidbox", "gone", &driver.RawMessage{ContentType: "application/json", Body: reply}))
	require.Zero(t, c.Exists(ctx, "pfx:gone.reply.celery.pidbox", "gone.reply.celery.pidbox").Val())
	// No prefix leaks outside it.
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		require.True(t, strings.HasPrefix(k, "pfx:"), k)
	}
}

// TestFanout_CeleryPayloadsReceived: the captured payloads of a Celery
// 5.2.6 worker and client (events, control requests, a reply) reach
// SubscribeEvents, ConsumeControl and ConsumeReplies with body, headers,
// exchange and routing key intact; the kombu binding members exist while
// subscribed and are removed when ctx ends.
func TestFanout_CeleryPayloadsReceived(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	b := openBroker(t, raw)
	c := b.Client()
	p := b.Options().GlobalKeyPrefix
	db := "/" + strconv.Itoa(c.Options().DB)
	ctx := ctxT(t, 30*time.Second)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	events, err := b.SubscribeEvents(sctx)
	require.NoError(t, err)
	node := "w1@" + randHex(4)
	control, err := b.ConsumeControl(sctx, node)
	require.NoError(t, err)
	oid := driver.NewID()
	replies, err := b.ConsumeReplies(sctx, oid)
	require.NoError(t, err)

	members := func(ex string) []string { return c.SMembers(ctx, p+"_kombu.binding."+ex).Val() }
	require.Equal(t, []string{"\x06\x16\x06\x16" + node + ".celery.pidbox"}, members("celery.pidbox"))
	require.Equal(t, []string{oid + "\x06\x16\x06\x16" + oid + ".reply.celery.pidbox"}, members("reply.celery.pidbox"))
	evMembers := members("celeryev")
	require.Len(t, evMembers, 1)
	require.Regexp(t, "^#\x06\x16\x06\x16celeryev\\.[0-9a-f-]{36}$", evMembers[0])

	for _, f := range []struct{ file, key string }{
		{"redis_event_jsonrun_worker_heartbeat.bin", "worker.heartbeat"},
		{"redis_event_jsonrun_task_multi_task_received.bin", "task.multi"},
		{"redis_event_msgpackrun_worker_online.bin", "worker.online"},
	} {
		payload := readFanoutFixture(t, f.file)
		require.NoError(t, c.Publish(ctx, p+db+".celeryev/"+f.key, payload).Err())
		m := recvRaw(t, events)
		env, body := parseKombu(t, payload)
		require.Equal(t, body, m.Body)
		require.Equal(t, "application/json", m.ContentType)
		require.Equal(t, "utf-8", m.ContentEncoding)
		require.Equal(t, map[string]any{"hostname": "w1@localhost"}, m.Headers)
		require.Equal(t, "celeryev", m.Exchange)
		require.Equal(t, f.key, m.RoutingKey)
		require.Equal(t, env.Properties.DeliveryInfo.RoutingKey, m.RoutingKey)
	}
	for _, file := range []string{"redis_pidbox_request_json_ping.bin", "redis_pidbox_request_json_revoke.bin", "redis_pidbox_request_msgpack_ping.bin"} {
		payload := readFanoutFixture(t, file)
		require.NoError(t, c.Publish(ctx, p+db+".celery.pidbox", payload).Err())
		m := recvRaw(t, control)
		env, body := parseKombu(t, payload)
		require.Equal(t, body, m.Body)
		require.Equal(t, env.ContentType, m.ContentType)
		require.Equal(t, env.ContentEncoding, m.ContentEncoding)
		require.Equal(t, "celery.pidbox", m.Exchange)
		require.Equal(t, "", m.RoutingKey)
		require.Equal(t, int64(1), m.Headers["clock"])
		require.IsType(t, float64(0), m.Headers["expires"])
	}
	payload := readFanoutFixture(t, "redis_pidbox_reply_json_ping.bin")
	require.NoError(t, c.LPush(ctx, p+oid+".reply.celery.pidbox", payload).Err())
	m := recvRaw(t, replies)
	require.JSONEq(t, `{"w1@localhost": {"ok": "pong"}}`, string(m.Body))
	require.Equal(t, map[string]any{"ticket": "5568bd4d-13e7-4c74-aaf6-cbe1ab179fde", "clock": int64(3)}, m.Headers)
	require.Equal(t, "reply.celery.pidbox", m.Exchange)
	require.Equal(t, "e3fc70bf-af63-38b2-bf50-cef339f2faa9", m.RoutingKey)

	// Undecodable payloads are skipped.
	require.NoError(t, c.Publish(ctx, p+db+".celeryev/worker.heartbeat", "not json").Err())
	require.NoError(t, b.PublishEvent(ctx, &driver.RawMessage{ContentType: "application/json", Body: []byte(`{}`), RoutingKey: "worker.heartbeat"}))
	require.Equal(t, "{}", string(recvRaw(t, events).Body))

	cancel()
	requireClosed(t, events, 5*time.Second)
	requireClosed(t, control, 5*time.Second)
	requireClosed(t, replies, 5*time.Second)
	require.Empty(t, members("celery.pidbox"))
	require.Empty(t, members("reply.celery.pidbox"))
	require.Empty(t, members("celeryev"))
}

// TestFanout_SubscriptionsSurviveRestart: subscriptions re-subscribe (and
// re-add their binding members) after Redis restarts, and events published
// afterwards arrive; PublishEvent fails quickly while Redis is down.
func TestFanout_SubscriptionsSurviveRestart(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	b := openBroker(t, srv.URL()+"?publish_timeout=1s")
	c := b.Client()
	ctx := ctxT(t, 60*time.Second)
	events, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	control, err := b.ConsumeControl(ctx, "w@restart")
	require.NoError(t, err)
	replies, err := b.ConsumeReplies(ctx, "oid-restart")
	require.NoError(t, err)
	ev := func(key string) *driver.RawMessage {
		return &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8", Body: []byte(`"` + key + `"`), RoutingKey: key}
	}
	require.NoError(t, b.PublishEvent(ctx, ev("before")))
	require.Equal(t, "before", recvRaw(t, events).RoutingKey)

	srv.Stop()
	start := time.Now()
	require.Error(t, b.PublishEvent(ctx, ev("down")))
	require.Less(t, time.Since(start), 2*time.Second)
	start = time.Now()
	for range 100 {
		require.Error(t, b.PublishEvent(ctx, ev("down")))
	}
	require.Less(t, time.Since(start), 2*time.Second, "events fail fast while Redis is down")
	srv.Start()

	// Once re-subscribed, events and requests published after arrive.
	got := make(chan string, 100)
	go func() {
		for m := range events {
			got <- m.RoutingKey
		}
	}()
	require.Eventually(t, func() bool {
		if b.PublishEvent(ctx, ev("after")) != nil {
			return false
		}
		select {
		case k := <-got:
			return k == "after"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return c.SIsMember(ctx, "_kombu.binding.celery.pidbox", "\x06\x16\x06\x16w@restart.celery.pidbox").Val()
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, b.PublishControl(ctx, &driver.RawMessage{ContentType: "application/json", Body: []byte(`{"method": "ping"}`)}))
	require.Equal(t, `{"method": "ping"}`, string(recvRaw(t, control).Body))
	// The reply binding is back too.
	require.Eventually(t, func() bool {
		return c.SIsMember(ctx, "_kombu.binding.reply.celery.pidbox", "oid-restart\x06\x16\x06\x16oid-restart.reply.celery.pidbox").Val()
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, b.Reply(ctx, "reply.celery.pidbox", "oid-restart", &driver.RawMessage{ContentType: "application/json", Body: []byte(`{"w@restart": {"ok": "pong"}}`)}))
	require.Equal(t, `{"w@restart": {"ok": "pong"}}`, string(recvRaw(t, replies).Body))
}

// TestFanout_CloseEndsSubscriptions: Close closes every subscription's
// channel, removes the binding members and refuses new subscriptions.
func TestFanout_CloseEndsSubscriptions(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	b := openBroker(t, raw)
	watcher := openBroker(t, raw)
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 30*time.Second)
	events, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	control, err := b.ConsumeControl(ctx, "w@close")
	require.NoError(t, err)
	replies, err := b.ConsumeReplies(ctx, "oid-close")
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, b.Close())
	require.Less(t, time.Since(start), 5*time.Second)
	requireClosed(t, events, time.Second)
	requireClosed(t, control, time.Second)
	requireClosed(t, replies, time.Second)
	for _, ex := range []string{"celeryev", "celery.pidbox", "reply.celery.pidbox"} {
		require.Zero(t, watcher.Client().SCard(ctx, p+"_kombu.binding."+ex).Val(), ex)
	}
	_, err = b.SubscribeEvents(ctx)
	require.ErrorIs(t, err, redis.ErrClosed)
	_, err = b.ConsumeReplies(ctx, "x")
	require.ErrorIs(t, err, redis.ErrClosed)
	require.ErrorIs(t, b.PublishEvent(ctx, &driver.RawMessage{RoutingKey: "x"}), redis.ErrClosed)
}

// ---- Go worker and client ----

// eventLog collects the events of one hostname from a subscription.
type eventLog struct {
	mu     sync.Mutex
	events []map[string]any
	msgs   []*driver.RawMessage
	wake   chan struct{}
}

func decodeEvents(t testing.TB, m *driver.RawMessage) []map[string]any {
	body := bytes.TrimSpace(m.Body)
	if len(body) > 0 && body[0] == '[' {
		var list []map[string]any
		if json.Unmarshal(body, &list) != nil {
			t.Errorf("bad event list: %s", body)
		}
		return list
	}
	var ev map[string]any
	if json.Unmarshal(body, &ev) != nil {
		t.Errorf("bad event: %s", body)
	}
	return []map[string]any{ev}
}

func collectEvents(t testing.TB, ch <-chan *driver.RawMessage, hostname string) *eventLog {
	l := &eventLog{wake: make(chan struct{}, 1)}
	go func() {
		for m := range ch {
			if m.Headers["hostname"] != hostname {
				continue
			}
			evs := decodeEvents(t, m)
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.events = append(l.events, evs...)
			l.mu.Unlock()
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// wait returns the first event of type typ matching match (nil: any).
func (l *eventLog) wait(t testing.TB, typ string, within time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		l.mu.Lock()
		var types []any
		for _, ev := range l.events {
			if ev["type"] == typ && (match == nil || match(ev)) {
				l.mu.Unlock()
				return ev
			}
			types = append(types, ev["type"])
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s event within %v; got %v", typ, within, types)
		}
	}
}

func (l *eventLog) messages() []*driver.RawMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*driver.RawMessage(nil), l.msgs...)
}

// slowDef is a task that reports its start and runs until its ctx ends.
func slowDef(started chan<- string) *codegen.TaskDef {
	return &codegen.TaskDef{Name: "tasks.slow", Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			info, _ := runtime.TaskFromContext(ctx)
			started <- info.ID
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}}
}

func sumDef() *codegen.TaskDef {
	return addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y, nil })
}

// waitPing waits until app's Inspect("ping") is answered by node.
func waitPing(t testing.TB, ctx context.Context, app *runtime.App, node string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, err := app.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		return err == nil && r[node] != nil
	}, 15*time.Second, 10*time.Millisecond)
}

// TestControl_GoRoundTrip: a Go client inspects a Go worker over Redis
// (ping, stats, registered, active_queues, active) from another app, and
// revokes a running task (terminate) and a queued one.
func TestControl_GoRoundTrip(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	ctx := ctxT(t, 60*time.Second)
	node := "w-" + randHex(4) + "@taskgen-test"
	wapp := newApp(t, raw, "json")
	client := newApp(t, raw, "json")
	started := make(chan string, 4)
	slow := slowDef(started)
	runWorker(t, wapp, runtime.WorkerOptions{Concurrency: 1, Hostname: node}, sumDef(), slow)
	waitPing(t, ctx, client, node)

	replies, err := client.Inspect(ctx, "ping", nil, time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string]any{node: map[string]any{"ok": "pong"}}, replies)

	replies, err = client.Inspect(ctx, "registered", nil, time.Second)
	require.NoError(t, err)
	require.ElementsMatch(t, []any{"tasks.add", "tasks.slow"}, replies[node])

	replies, err = client.Inspect(ctx, "active_queues", nil, time.Second)
	require.NoError(t, err)
	qs := replies[node].([]any)
	require.Len(t, qs, 1)
	require.Equal(t, "celery", qs[0].(map[string]any)["name"])

	res, err := runtime.NewStub[int64](sumDef()).With(runtime.WithApp(client)).Send(ctx, &addArgs{x: 2, y: 3})
	require.NoError(t, err)
	n, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), n)

	replies, err = client.Inspect(ctx, "stats", nil, time.Second)
	require.NoError(t, err)
	stats := replies[node].(map[string]any)
	require.Contains(t, stats, "broker")
	require.Equal(t, "redis", stats["broker"].(map[string]any)["transport"])
	require.EqualValues(t, 1, stats["total"].(map[string]any)["tasks.add"])

	stub := runtime.NewStub[int](slow).With(runtime.WithApp(client))
	running, err := stub.Send(ctx, &addArgs{})
	require.NoError(t, err)
	select {
	case id := <-started:
		require.Equal(t, running.ID(), id)
	case <-ctx.Done():
		t.Fatal("slow task never started")
	}
	queued, err := stub.Send(ctx, &addArgs{}) // waits: concurrency 1
	require.NoError(t, err)
	replies, err = client.Inspect(ctx, "active", nil, time.Second)
	require.NoError(t, err)
	active := replies[node].([]any)
	require.Len(t, active, 1)
	require.Equal(t, running.ID(), active[0].(map[string]any)["id"])

	require.NoError(t, queued.Revoke(ctx))
	require.NoError(t, running.Revoke(ctx, runtime.Terminate()))
	var te *runtime.TaskError
	_, err = running.Get(ctx)
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, driver.StateRevoked, te.State)
	_, err = queued.Get(ctx)
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, driver.StateRevoked, te.State)
	select {
	case id := <-started:
		t.Fatalf("revoked task %s ran", id)
	default:
	}

	// Concurrent inspections each get their own replies.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r, err := client.Inspect(ctx, "ping", nil, 2*time.Second)
			require.NoError(t, err)
			require.Equal(t, map[string]any{node: map[string]any{"ok": "pong"}}, r)
		})
	}
	wg.Wait()
	// The reply bindings are gone afterwards.
	b := client.Broker().(*redis.Broker)
	require.Eventually(t, func() bool {
		return b.Client().SCard(ctx, b.Options().GlobalKeyPrefix+"_kombu.binding.reply.celery.pidbox").Val() == 0
	}, 5*time.Second, 20*time.Millisecond)
}

// TestEvents_GoWorker: SubscribeEvents sees a Go worker's events with
// Celery's fields: online, heartbeats, task events, offline.
func TestEvents_GoWorker(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "")
	ctx := ctxT(t, 60*time.Second)
	node := "w-" + randHex(4) + "@taskgen-test"
	mon := newApp(t, raw, "json")
	sub, err := mon.Broker().(driver.EventTransport).SubscribeEvents(ctx)
	require.NoError(t, err)
	log := collectEvents(t, sub, node)

	app := newApp(t, raw, "json")
	wctx, stopWorker := context.WithCancel(ctx)
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 1, Hostname: node, HeartbeatInterval: 300 * time.Millisecond, ShutdownTimeout: 2 * time.Second})
	w.Register(sumDef())
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stopWorker()
		<-done
	}()

	online := log.wait(t, driver.EventWorkerOnline, 10*time.Second, nil)
	require.Equal(t, node, online["hostname"])
	require.Equal(t, "taskgen", online["sw_ident"])
	require.Equal(t, 0.3, online["freq"])
	for _, k := range []string{"timestamp", "utcoffset", "pid", "clock", "active", "processed", "loadavg", "sw_ver", "sw_sys"} {
		require.Contains(t, online, k)
	}
	log.wait(t, driver.EventWorkerHeartbeat, 5*time.Second, nil)

	res, err := runtime.NewStub[int64](sumDef()).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3})
	require.NoError(t, err)
	id := func(ev map[string]any) bool { return ev["uuid"] == res.ID() }
	rcv := log.wait(t, driver.EventTaskReceived, 10*time.Second, id)
	require.Equal(t, "tasks.add", rcv["name"])
	require.Equal(t, "(2, 3)", rcv["args"])
	log.wait(t, driver.EventTaskStarted, 10*time.Second, id)
	ok := log.wait(t, driver.EventTaskSucceeded, 10*time.Second, id)
	require.Equal(t, "5", ok["result"])
	require.IsType(t, float64(0), ok["runtime"])

	stopWorker()
	require.NoError(t, <-done)
	done <- nil
	log.wait(t, driver.EventWorkerOffline, 10*time.Second, nil)
	for _, m := range log.messages() {
		require.Equal(t, "celeryev", m.Exchange)
		require.Equal(t, "application/json", m.ContentType)
		if bytes.HasPrefix(m.Body, []byte("[")) {
			require.Equal(t, "task.multi", m.RoutingKey)
		} else {
			var ev map[string]any
			require.NoError(t, json.Unmarshal(m.Body, &ev))
			require.Equal(t, driver.EventRoutingKey(ev["type"].(string)), m.RoutingKey)
		}
	}
}

// ---- Python interop (Celery 5.2.6, kombu 5.2.4) ----

// runPython runs py with args and returns its combined output.
func runPython(t testing.TB, within time.Duration, py string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	return string(out), err
}

// celeryJSON runs `celery -b <url> <args> --json` and decodes the JSON line
// it prints: an object (inspect) or a list of one-key objects (control).
func celeryJSON(t testing.TB, py, url string, args ...string) map[string]any {
	t.Helper()
	cmd := append([]string{"-m", "celery", "-b", url}, args...)
	out, err := runPython(t, time.Minute, py, append(cmd, "--json")...)
	require.NoError(t, err, "celery %v: %s", args, out)
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "{"):
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m), line)
			return m
		case strings.HasPrefix(line, "["):
			var list []map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &list), line)
			m := map[string]any{}
			for _, e := range list {
				for k, v := range e {
					m[k] = v
				}
			}
			return m
		}
	}
	t.Fatalf("celery %v printed no JSON: %s", args, out)
	return nil
}

// TestInterop_PythonInspectGoWorker: Celery's CLI inspects and controls a
// Go worker on database 13.
func TestInterop_PythonInspectGoWorker(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t)
	srv := testenv.NewRedisServer(t)
	raw := withDB(srv, "13")
	ctx := ctxT(t, 2*time.Minute)
	node := "w1@taskgen-test"
	app := newApp(t, raw, "json")
	runWorker(t, app, runtime.WorkerOptions{Concurrency: 2, Hostname: node}, sumDef())
	waitPing(t, ctx, app, node)

	out, err := runPython(t, time.Minute, py, "-m", "celery", "-b", raw, "inspect", "ping", "-t", "3")
	require.NoError(t, err, out)
	require.Contains(t, out, node+": OK")
	require.Contains(t, out, "pong")

	r := celeryJSON(t, py, raw, "inspect", "ping", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{node: map[string]any{"ok": "pong"}}, r)
	r = celeryJSON(t, py, raw, "inspect", "registered", "-t", "3", "-d", node)
	require.Equal(t, []any{"tasks.add"}, r[node])
	r = celeryJSON(t, py, raw, "inspect", "stats", "-t", "3", "-d", node)
	stats := r[node].(map[string]any)
	require.Contains(t, stats, "total")
	require.Contains(t, stats, "broker")
	require.EqualValues(t, 2, stats["pool"].(map[string]any)["max-concurrency"])
	r = celeryJSON(t, py, raw, "inspect", "active_queues", "-t", "3", "-d", node)
	qs := r[node].([]any)
	require.Len(t, qs, 1)
	require.Equal(t, "celery", qs[0].(map[string]any)["name"])

	r = celeryJSON(t, py, raw, "control", "disable_events", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{"ok": "task events disabled"}, r[node])
	r = celeryJSON(t, py, raw, "control", "enable_events", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{"ok": "task events enabled"}, r[node])
	r = celeryJSON(t, py, raw, "control", "enable_events", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{"ok": "task events already enabled"}, r[node])

	// The Python client left no binding or reply list behind.
	c := app.Broker().(*redis.Broker).Client()
	require.Zero(t, c.SCard(ctx, "_kombu.binding.reply.celery.pidbox").Val())
	keys, err := c.Keys(ctx, "*reply.celery.pidbox*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)
}

// pythonRevoke revokes a task id as a Python client does (a cast: no reply).
const pythonRevoke = `
import sys
from celery import Celery
app = Celery('ctl', broker=sys.argv[1])
app.conf.update(broker_connection_retry=False)
app.control.revoke(sys.argv[2])
print('revoked', sys.argv[2])
`

// TestInterop_PythonRevokeGoWorker: app.control.revoke(id) from Python is
// honoured by a Go worker: the task is skipped, REVOKED.
func TestInterop_PythonRevokeGoWorker(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t)
	srv := testenv.NewRedisServer(t)
	raw := srv.URL()
	ctx := ctxT(t, time.Minute)
	node := "w1@taskgen-test"
	app := newApp(t, raw, "json")
	var ran sync.Map
	def := addDef("tasks.add", func(ctx context.Context, a *addArgs) (any, error) {
		info, _ := runtime.TaskFromContext(ctx)
		ran.Store(info.ID, true)
		return a.x + a.y, nil
	})
	runWorker(t, app, runtime.WorkerOptions{Concurrency: 1, Hostname: node}, def)
	waitPing(t, ctx, app, node)

	id := driver.NewID()
	out, err := runPython(t, time.Minute, py, "-c", pythonRevoke, raw, id)
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		r, err := app.Inspect(ctx, "revoked", nil, 300*time.Millisecond)
		ids, _ := r[node].([]any)
		for _, x := range ids {
			if x == id {
				return err == nil
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)

	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
	res, err := stub.With(runtime.TaskID(id)).Send(ctx, &addArgs{x: 1})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	var te *runtime.TaskError
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, driver.StateRevoked, te.State)
	_, ran1 := ran.Load(id)
	require.False(t, ran1, "the revoked task ran")
	other, err := stub.Send(ctx, &addArgs{x: 1, y: 1})
	require.NoError(t, err)
	n, err := other.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
}

// pythonTasks is the tasks module of the Python worker.
const pythonTasks = `
from celery import Celery
app = Celery('tasks')
app.conf.update(task_serializer='json', accept_content=['json'], result_backend=None)

@app.task(name='tasks.add')
def add(x, y):
    return x + y
`

// TestInterop_PythonWorkerEvents: a Go subscriber receives the events of a
// Celery 5.2.6 worker (-E, solo pool) on database 13: worker-online,
// worker-heartbeat, task-received/started/succeeded (as task.multi lists)
// and worker-offline; and the Python worker answers a Go Inspect.
func TestInterop_PythonWorkerEvents(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t)
	srv := testenv.NewRedisServer(t)
	raw := withDB(srv, "13")
	ctx := ctxT(t, 2*time.Minute)
	node := "py1@taskgen-test"
	app := newApp(t, raw, "json")
	sub, err := app.Broker().(driver.EventTransport).SubscribeEvents(ctx)
	require.NoError(t, err)
	log := collectEvents(t, sub, node)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tasks.py"), []byte(pythonTasks), 0o644))
	cmd := exec.Command(py, "-m", "celery", "-b", raw, "-A", "tasks", "worker", "-E", "-P", "solo", "-n", node,
		"--without-mingle", "--without-gossip", "-l", "info")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	var output bytes.Buffer
	var outMu sync.Mutex
	cmd.Stdout = lockedWriter{&outMu, &output}
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			outMu.Lock()
			t.Logf("python worker output:\n%s", output.String())
			outMu.Unlock()
		}
	})

	online := log.wait(t, driver.EventWorkerOnline, 60*time.Second, nil)
	require.Equal(t, "py-celery", online["sw_ident"])
	require.Equal(t, 2.0, online["freq"])
	log.wait(t, driver.EventWorkerHeartbeat, 10*time.Second, nil)

	res, err := runtime.NewStub[int64](sumDef()).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3})
	require.NoError(t, err)
	id := func(ev map[string]any) bool { return ev["uuid"] == res.ID() }
	rcv := log.wait(t, driver.EventTaskReceived, 30*time.Second, id)
	require.Equal(t, "tasks.add", rcv["name"])
	log.wait(t, driver.EventTaskStarted, 30*time.Second, id)
	ok := log.wait(t, driver.EventTaskSucceeded, 30*time.Second, id)
	require.Equal(t, "5", ok["result"])

	// The Python worker answers a Go client's inspect.
	r, err := app.Inspect(ctx, "ping", nil, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"ok": "pong"}, r[node])
	r, err = app.Inspect(ctx, "registered", nil, 2*time.Second)
	require.NoError(t, err)
	require.Contains(t, r[node], "tasks.add")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatal("python worker did not stop")
	}
	log.wait(t, driver.EventWorkerOffline, 10*time.Second, nil)
	sawMulti := false
	for _, m := range log.messages() {
		require.Equal(t, "celeryev", m.Exchange)
		if m.RoutingKey == "task.multi" {
			sawMulti = true
			require.True(t, bytes.HasPrefix(m.Body, []byte("[")))
		}
	}
	require.True(t, sawMulti, "task events come as task.multi lists")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// pythonReceiver is Celery's EventReceiver (what Flower runs): it prints
// the events of hostname argv[2] as JSON lines until it has seen
// worker-heartbeat and task-succeeded, or argv[3] seconds pass.
const pythonReceiver = `
import json, socket, sys, time
from celery import Celery
url, host, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
app = Celery('recv', broker=url)
want = {'worker-heartbeat', 'task-succeeded'}
seen = set()
deadline = time.time() + secs

def on_event(ev):
    if ev.get('hostname') == host:
        print(json.dumps(ev), flush=True)
        seen.add(ev.get('type'))
    if want <= seen or time.time() > deadline:
        recv.should_stop = True

with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={'*': on_event})
    orig = recv.on_consume_ready
    def ready(*a, **kw):
        orig(*a, **kw)
        print('READY', flush=True)
    recv.on_consume_ready = ready
    try:
        recv.capture(limit=None, timeout=secs, wakeup=True)
    except socket.timeout:
        pass
print('DONE', sorted(seen), flush=True)
`

// TestInterop_PythonEventReceiverGoWorker: Celery's EventReceiver sees a
// Go worker's worker-heartbeat and task-succeeded events.
func TestInterop_PythonEventReceiverGoWorker(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t)
	srv := testenv.NewRedisServer(t)
	raw := srv.URL()
	ctx := ctxT(t, 2*time.Minute)
	node := "w1@taskgen-test"

	cmd := exec.Command(py, "-c", pythonReceiver, raw, node, "60")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("receiver stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "receiver exited early")
			return l
		case <-ctx.Done():
			t.Fatal("receiver: no output")
			return ""
		}
	}
	for l := next(); l != "READY"; l = next() {
		t.Logf("receiver: %s", l)
	}

	app := newApp(t, raw, "json")
	runWorker(t, app, runtime.WorkerOptions{Concurrency: 1, Hostname: node}, sumDef())
	res, err := runtime.NewStub[int64](sumDef()).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	require.NoError(t, err)

	seen := map[string]map[string]any{}
	for {
		l := next()
		if strings.HasPrefix(l, "DONE") {
			break
		}
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
		typ, _ := ev["type"].(string)
		if typ == driver.EventTaskSucceeded && ev["uuid"] != res.ID() {
			continue
		}
		seen[typ] = ev
	}
	require.Contains(t, seen, driver.EventWorkerHeartbeat)
	require.Contains(t, seen, driver.EventTaskSucceeded)
	hb := seen[driver.EventWorkerHeartbeat]
	require.Equal(t, node, hb["hostname"])
	require.Equal(t, "taskgen", hb["sw_ident"])
	require.Contains(t, hb, "local_received")
	require.Equal(t, "5", seen[driver.EventTaskSucceeded]["result"])
}
