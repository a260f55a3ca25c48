package amqp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// Wire-level tests of events and remote control (fanout.go): the entities
// declared and the messages sent and received, as Celery's. The app-level
// tests (Go and Python workers and clients), run once per broker, are in
// runtime/all.
//
// The control exchange and the event exchange are shared by every test of
// the vhost (and by other packages' tests): tests tell their own traffic
// apart by node names, tickets and hostname headers unique to the test.

// nodeName returns a worker node name unique to the test run.
func nodeName(t testing.TB, prefix string) string {
	return prefix + "-" + strings.ReplaceAll(queueName(t), ".", "-") + "@taskgen-test"
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// TestFanout_DeclaredAsCelery: every fanout entity has Celery's type, flags
// and arguments, so re-declaring them as Celery does succeeds.
func TestFanout_DeclaredAsCelery(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	b := openBroker(t, raw)
	ctx := ctxT(t, 30*time.Second)
	node := nodeName(t, "decl")
	oid := driver.NewID()
	_, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	_, err = b.ConsumeControl(ctx, node)
	require.NoError(t, err)
	_, err = b.ConsumeReplies(ctx, oid)
	require.NoError(t, err)

	// kombu's declarations, as py-amqp sends them (integer arguments as I).
	_, ch := rawConn(t, raw)
	require.NoError(t, ch.ExchangeDeclare("celeryev", "topic", true, false, false, false, nil))
	require.NoError(t, ch.ExchangeDeclare("celery.pidbox", "fanout", false, false, false, false, nil))
	require.NoError(t, ch.ExchangeDeclare("reply.celery.pidbox", "direct", false, false, false, false, nil))
	ctlArgs := amqp091.Table{"x-expires": int32(10000), "x-message-ttl": int32(300000)}
	_, err = ch.QueueDeclare(node+".celery.pidbox", false, true, false, false, ctlArgs)
	require.NoError(t, err)
	_, err = ch.QueueDeclare(oid+".reply.celery.pidbox", false, true, false, false, ctlArgs)
	require.NoError(t, err)

	out := testenv.RabbitMQCtl(t, "-q", "list_queues", "-p", b.Vhost(), "name", "durable", "auto_delete", "exclusive", "arguments", "consumers")
	seen := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "\t", 2)
		if len(f) == 2 {
			seen[f[0]] = f[1]
		}
	}
	// A Go map has no order: RabbitMQ lists the arguments in either order.
	ctlQueue := `^false	true	false	\[\{"x-(expires",10000\},\{"x-message-ttl",300000|message-ttl",300000\},\{"x-expires",10000)\}\]	1$`
	require.Regexp(t, ctlQueue, seen[node+".celery.pidbox"], out)
	require.Regexp(t, ctlQueue, seen[oid+".reply.celery.pidbox"], out)
	events := 0
	for name, v := range seen {
		if strings.HasPrefix(name, "celeryev.") {
			events++
			require.Regexp(t, `^false	true	false	\[\{"x-(message-ttl",5000\},\{"x-expires",60000|expires",60000\},\{"x-message-ttl",5000)\}\]	`, v, name)
		}
	}
	require.NotZero(t, events, out)
	out = testenv.RabbitMQCtl(t, "-q", "list_exchanges", "-p", b.Vhost(), "name", "type", "durable", "auto_delete", "arguments")
	require.Contains(t, out, "celeryev\ttopic\ttrue\tfalse\t[]")
	require.Contains(t, out, "celery.pidbox\tfanout\tfalse\tfalse\t[]")
	require.Contains(t, out, "reply.celery.pidbox\tdirect\tfalse\tfalse\t[]")
	out = testenv.RabbitMQCtl(t, "-q", "list_bindings", "-p", b.Vhost(), "source_name", "destination_name", "routing_key")
	require.Contains(t, out, "celery.pidbox\t"+node+".celery.pidbox\t\n")
	require.Contains(t, out, "reply.celery.pidbox\t"+oid+".reply.celery.pidbox\t"+oid+"\n")
	require.Regexp(t, `celeryev\tceleryev\.[0-9a-f-]{36}\t#\n`, out)
}

// TestFanout_CeleryEventsReceived: events published as a Celery 5.2.6
// worker publishes them (captured bodies, py-amqp properties) reach
// SubscribeEvents with body, headers and routing key intact, including an
// empty task.multi list.
func TestFanout_CeleryEventsReceived(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	b := openBroker(t, raw)
	ctx := ctxT(t, 30*time.Second)
	host := nodeName(t, "py")
	sub, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	_, ch := rawConn(t, raw)
	fixtures := []struct{ file, key string }{
		{"amqp_event_jsonrun_worker_heartbeat.bin", "worker.heartbeat"},
		{"amqp_event_jsonrun_task_multi_task_received+task_started+task_succeeded.bin", "task.multi"},
		{"amqp_event_msgpackrun_task_multi_EMPTY_LIST.bin", "task.multi"},
	}
	for _, f := range fixtures {
		require.NoError(t, ch.PublishWithContext(ctx, "celeryev", f.key, false, false, amqp091.Publishing{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 1,
			Headers: amqp091.Table{"hostname": host}, Body: readFixture(t, f.file)}))
	}
	for i := 0; i < len(fixtures); {
		select {
		case m := <-sub:
			if m.Headers["hostname"] != host {
				continue
			}
			f := fixtures[i]
			require.Equal(t, "application/json", m.ContentType)
			require.Equal(t, "utf-8", m.ContentEncoding)
			require.Equal(t, map[string]any{"hostname": host}, m.Headers)
			require.Equal(t, "celeryev", m.Exchange)
			require.Equal(t, f.key, m.RoutingKey)
			require.Equal(t, readFixture(t, f.file), m.Body)
			i++
		case <-ctx.Done():
			t.Fatalf("received %d of %d events", i, len(fixtures))
		}
	}
}

// TestFanout_PublishEventAsCelery: PublishEvent sends what a Celery worker
// sends: exchange celeryev, routing key = type, delivery_mode 1, headers
// {"hostname": <string>}, JSON.
func TestFanout_PublishEventAsCelery(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	b := openBroker(t, raw)
	ctx := ctxT(t, 30*time.Second)
	host := nodeName(t, "go")
	_, ch := rawConn(t, raw)
	q := queueName(t)
	_, err := ch.QueueDeclare(q, false, true, true, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare("celeryev", "topic", true, false, false, false, nil))
	require.NoError(t, ch.QueueBind(q, "worker.#", "celeryev", false, nil))
	body := readFixture(t, "amqp_event_jsonrun_worker_heartbeat.bin")
	require.NoError(t, b.PublishEvent(ctx, &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"hostname": host}, Body: body, Exchange: "celeryev", RoutingKey: "worker.heartbeat"}))
	for {
		d := getRaw(t, ch, q, 10*time.Second)
		if d.Headers["hostname"] != host {
			continue
		}
		require.Equal(t, amqp091.Table{"hostname": host}, d.Headers)
		require.Equal(t, "celeryev", d.Exchange)
		require.Equal(t, "worker.heartbeat", d.RoutingKey)
		require.Equal(t, uint8(1), d.DeliveryMode)
		require.Equal(t, "application/json", d.ContentType)
		require.Equal(t, "utf-8", d.ContentEncoding)
		require.Equal(t, body, d.Body)
		break
	}
}

// TestFanout_PidboxAsCelery: a Go worker answers the captured Celery
// requests (ping, stats) as a Celery worker does: reply on
// reply.celery.pidbox with routing key = the client's oid, headers
// {ticket: str, clock: int}, delivery_mode 1, body {nodename: reply}; and
// PublishControl sends requests as kombu does.
func TestFanout_PidboxAsCelery(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	ctx := ctxT(t, 30*time.Second)
	node := nodeName(t, "w")
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newApp(t, raw, "json")
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1, Hostname: node}, addDef(q, nil))
	require.Eventually(t, func() bool {
		r, err := app.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		return err == nil && r[node] != nil
	}, 10*time.Second, 10*time.Millisecond)

	// A client as kombu's Mailbox: its reply queue, then the request.
	_, ch := rawConn(t, raw)
	oid := driver.NewID()
	replyQ := oid + ".reply.celery.pidbox"
	_, err := ch.QueueDeclare(replyQ, false, true, false, false, amqp091.Table{"x-expires": int32(10000), "x-message-ttl": int32(300000)})
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare("reply.celery.pidbox", "direct", false, false, false, false, nil))
	require.NoError(t, ch.QueueBind(replyQ, oid, "reply.celery.pidbox", false, nil))
	for i, file := range []string{"amqp_pidbox_request_json_0.bin", "amqp_pidbox_request_json_1.bin"} {
		body := readFixture(t, file)
		body = bytes.Replace(body, []byte(`"captureoid"`), []byte(`"`+oid+`"`), 1)
		body = bytes.Replace(body, []byte(`"destination": null`), []byte(`"destination": ["`+node+`"]`), 1)
		require.NoError(t, ch.PublishWithContext(ctx, "celery.pidbox", "", false, false, amqp091.Publishing{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2,
			Headers: amqp091.Table{"clock": int32(1), "expires": float64(time.Now().Add(5*time.Second).UnixNano()) / 1e9}, Body: body}))
		d := getRaw(t, ch, replyQ, 5*time.Second)
		require.Equal(t, "reply.celery.pidbox", d.Exchange)
		require.Equal(t, oid, d.RoutingKey)
		require.Equal(t, uint8(1), d.DeliveryMode)
		require.Equal(t, "application/json", d.ContentType)
		require.Equal(t, "utf-8", d.ContentEncoding)
		require.Len(t, d.Headers, 2, "%v", d.Headers)
		require.Equal(t, fmt.Sprintf("ticket-%d", i+1), d.Headers["ticket"])
		require.IsType(t, int32(0), d.Headers["clock"], "clock typed as py-amqp writes an int")
		var reply map[string]map[string]any
		require.NoError(t, json.Unmarshal(d.Body, &reply))
		require.Len(t, reply, 1)
		if i == 0 {
			var want map[string]any
			require.NoError(t, json.Unmarshal(readFixture(t, "amqp_pidbox_reply_json_0.bin"), &want))
			require.Equal(t, want["w2@localhost"], any(reply[node]))
		} else {
			for _, k := range []string{"total", "pid", "clock", "uptime", "pool", "broker", "prefetch_count", "rusage"} {
				require.Contains(t, reply[node], k)
			}
		}
	}

	// PublishControl: as kombu's Mailbox._publish.
	capQ := queueName(t)
	_, err = ch.QueueDeclare(capQ, false, true, true, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(capQ, "", "celery.pidbox", false, nil))
	b := openBroker(t, raw)
	ticket := driver.NewID()
	body := []byte(`{"method": "ping", "arguments": {}, "destination": ["nobody@nowhere"], "pattern": null, "matcher": null, "ticket": "` + ticket + `", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "x"}}`)
	require.NoError(t, b.PublishControl(ctx, &driver.RawMessage{ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"clock": int64(7), "expires": 1795463139.3645277}, Body: body, Exchange: "celery.pidbox"}))
	for {
		d := getRaw(t, ch, capQ, 5*time.Second)
		if !bytes.Equal(d.Body, body) {
			continue
		}
		require.Equal(t, "celery.pidbox", d.Exchange)
		require.Equal(t, "", d.RoutingKey)
		require.Equal(t, amqp091.Table{"clock": int32(7), "expires": 1795463139.3645277}, d.Headers)
		require.Equal(t, uint8(2), d.DeliveryMode)
		require.Equal(t, "application/json", d.ContentType)
		break
	}
}
