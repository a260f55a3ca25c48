package redis_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// Wire-level tests of events and remote control (fanout.go): what is
// written to and read from Redis, as kombu does. Tests use the shared Redis
// with a global_keyprefix of their own (channels are prefixed too), or a
// private redis-server on database 13. The app-level tests (Go and Python
// workers and clients), run once per broker, are in runtime/all.

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

// TestFanout_CloseRemovesBindings: what Close does beyond the transport
// conformance suite's Close test (channels closed, Publish refused): the
// subscriptions' kombu binding members are removed, and subscribing or
// publishing events afterwards fails with ErrClosed.
func TestFanout_CloseRemovesBindings(t *testing.T) {
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
	for _, ex := range []string{"celeryev", "celery.pidbox", "reply.celery.pidbox"} {
		require.NotZero(t, watcher.Client().SCard(ctx, p+"_kombu.binding."+ex).Val(), ex)
	}
	require.NoError(t, b.Close())
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
