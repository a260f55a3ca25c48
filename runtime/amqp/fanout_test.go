package amqp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

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

// newSharedApp is newApp with a named memory:// result backend, so that two
// apps (a worker's and a client's) see the same results.
func newSharedApp(t testing.TB, brokerURL, backend string) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: brokerURL, Backend: "memory://" + backend, Serializer: "json", PublishTimeout: 20 * time.Second, Logger: testLogger})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

// decodeEvents returns the events of one message: a JSON object, or a list
// of them ("task.multi").
func decodeEvents(t testing.TB, m *driver.RawMessage) []map[string]any {
	t.Helper()
	body := bytes.TrimSpace(m.Body)
	if len(body) > 0 && body[0] == '[' {
		var list []map[string]any
		require.NoError(t, json.Unmarshal(body, &list), "%s", body)
		return list
	}
	var ev map[string]any
	require.NoError(t, json.Unmarshal(body, &ev), "%s", body)
	return []map[string]any{ev}
}

// eventLog collects the events of one hostname from a subscription.
type eventLog struct {
	mu     sync.Mutex
	events []map[string]any
	msgs   []*driver.RawMessage
	wake   chan struct{}
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
		for _, ev := range l.events {
			if ev["type"] == typ && (match == nil || match(ev)) {
				l.mu.Unlock()
				return ev
			}
		}
		var types []any
		for _, ev := range l.events {
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

// slowDef is a task that reports its start and runs until its ctx ends.
func slowDef(queue string, started chan<- string) *codegen.TaskDef {
	return &codegen.TaskDef{Name: "tasks.slow", Queue: queue, Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			info, _ := runtime.TaskFromContext(ctx)
			started <- info.ID
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}}
}

// TestControl_GoRoundTrip: a Go client inspects a Go worker over RabbitMQ
// (ping, stats, registered, active_queues, active) and revokes a running
// task (terminate) and a queued one.
func TestControl_GoRoundTrip(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	ctx := ctxT(t, 60*time.Second)
	node := nodeName(t, "w")
	q := queueName(t)
	purgeLater(t, raw, q)
	backend := queueName(t)
	wapp := newSharedApp(t, raw, backend)
	client := newSharedApp(t, raw, backend)
	started := make(chan string, 4)
	slow := slowDef(q, started)
	runWorker(t, wapp, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1, Hostname: node}, addDef(q, nil), slow)

	var replies map[string]any
	require.Eventually(t, func() bool {
		var err error
		replies, err = client.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		return err == nil && replies[node] != nil
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, map[string]any{"ok": "pong"}, replies[node])

	replies, err := client.Inspect(ctx, "registered", nil, time.Second)
	require.NoError(t, err)
	require.ElementsMatch(t, []any{"tasks.add", "tasks.slow"}, replies[node])

	replies, err = client.Inspect(ctx, "active_queues", nil, time.Second)
	require.NoError(t, err)
	qs := replies[node].([]any)
	require.Len(t, qs, 1)
	require.Equal(t, q, qs[0].(map[string]any)["name"])

	res, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(client)).Send(ctx, &addArgs{x: 1, y: 2, z: 3})
	require.NoError(t, err)
	n, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, n)

	replies, err = client.Inspect(ctx, "stats", nil, time.Second)
	require.NoError(t, err)
	stats := replies[node].(map[string]any)
	require.Contains(t, stats, "broker")
	require.EqualValues(t, 1, stats["total"].(map[string]any)["tasks.add"])

	stub := runtime.NewStub[int](slow).With(runtime.WithApp(client))
	running, err := stub.Send(ctx, &addArgs{})
	require.NoError(t, err)
	require.Equal(t, running.ID(), <-started)
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
}

// TestEvents_GoWorker: SubscribeEvents sees a Go worker's events with
// Celery's fields.
func TestEvents_GoWorker(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	ctx := ctxT(t, 60*time.Second)
	node := nodeName(t, "w")
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newApp(t, raw, "json")
	sub, err := app.Broker().(driver.EventTransport).SubscribeEvents(ctx)
	require.NoError(t, err)
	log := collectEvents(t, sub, node)
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1, Hostname: node, HeartbeatInterval: 500 * time.Millisecond}, addDef(q, nil))

	online := log.wait(t, driver.EventWorkerOnline, 10*time.Second, nil)
	require.Equal(t, node, online["hostname"])
	require.Equal(t, "taskgen", online["sw_ident"])
	require.Equal(t, 0.5, online["freq"])
	for _, k := range []string{"timestamp", "utcoffset", "pid", "clock", "active", "processed", "loadavg", "sw_ver", "sw_sys"} {
		require.Contains(t, online, k)
	}
	log.wait(t, driver.EventWorkerHeartbeat, 5*time.Second, nil)

	res, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3, z: 1})
	require.NoError(t, err)
	id := func(ev map[string]any) bool { return ev["uuid"] == res.ID() }
	rcv := log.wait(t, driver.EventTaskReceived, 10*time.Second, id)
	require.Equal(t, "tasks.add", rcv["name"])
	require.Equal(t, "(2, 3, 1)", rcv["args"])
	require.Contains(t, rcv, "kwargs")
	require.Contains(t, rcv, "retries")
	log.wait(t, driver.EventTaskStarted, 10*time.Second, id)
	ok := log.wait(t, driver.EventTaskSucceeded, 10*time.Second, id)
	require.Equal(t, "6", ok["result"])
	require.IsType(t, float64(0), ok["runtime"])
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

// ---- Python interop (Celery 5.2.6) ----

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
// Go worker.
func TestInterop_PythonInspectGoWorker(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	py := testenv.Python(t)
	ctx := ctxT(t, 2*time.Minute)
	node := nodeName(t, "w")
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newApp(t, raw, "json")
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2, Hostname: node}, addDef(q, nil))
	require.Eventually(t, func() bool {
		r, err := app.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		return err == nil && r[node] != nil
	}, 10*time.Second, 10*time.Millisecond)

	// Without a destination: every worker of the vhost answers, ours among them.
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
	require.Equal(t, q, qs[0].(map[string]any)["name"])

	r = celeryJSON(t, py, raw, "control", "disable_events", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{"ok": "task events disabled"}, r[node])
	r = celeryJSON(t, py, raw, "control", "enable_events", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{"ok": "task events enabled"}, r[node])
	r = celeryJSON(t, py, raw, "control", "enable_events", "-t", "3", "-d", node)
	require.Equal(t, map[string]any{"ok": "task events already enabled"}, r[node])
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
	raw := testenv.AMQPURL(t)
	py := testenv.Python(t)
	ctx := ctxT(t, time.Minute)
	node := nodeName(t, "w")
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newApp(t, raw, "json")
	var ran sync.Map
	def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		info, _ := runtime.TaskFromContext(ctx)
		ran.Store(info.ID, true)
		return a.x + a.y + a.z, nil
	})
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1, Hostname: node}, def)
	require.Eventually(t, func() bool {
		r, err := app.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		return err == nil && r[node] != nil
	}, 10*time.Second, 10*time.Millisecond)

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

	stub := runtime.NewStub[int](def).With(runtime.WithApp(app))
	res, err := stub.With(runtime.TaskID(id)).Send(ctx, &addArgs{x: 1})
	require.NoError(t, err)
	_, err = res.Get(ctx)
	var te *runtime.TaskError
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, driver.StateRevoked, te.State)
	_, ran1 := ran.Load(id)
	require.False(t, ran1, "the revoked task ran")
	// Others still run.
	other, err := stub.Send(ctx, &addArgs{x: 1, y: 1})
	require.NoError(t, err)
	n, err := other.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// pythonTasks is the tasks module of the Python worker.
const pythonTasks = `
from celery import Celery
app = Celery('tasks')
app.conf.update(task_serializer='json', accept_content=['json'], result_backend=None)

@app.task(name='tasks.add')
def add(x, y, z=0):
    return x + y + z
`

// TestInterop_PythonWorkerEvents: a Go subscriber receives the events of a
// Celery 5.2.6 worker (-E, solo pool): worker-online, worker-heartbeat,
// task-received/started/succeeded (often as task.multi lists) and
// worker-offline.
func TestInterop_PythonWorkerEvents(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	py := testenv.Python(t)
	ctx := ctxT(t, 2*time.Minute)
	node := nodeName(t, "py")
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newApp(t, raw, "json")
	sub, err := app.Broker().(driver.EventTransport).SubscribeEvents(ctx)
	require.NoError(t, err)
	log := collectEvents(t, sub, node)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tasks.py"), []byte(pythonTasks), 0o644))
	cmd := exec.Command(py, "-m", "celery", "-b", raw, "-A", "tasks", "worker", "-E", "-P", "solo", "-Q", q, "-n", node,
		"--without-mingle", "--without-gossip", "-l", "info")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
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
			t.Logf("python worker output:\n%s", output.String())
		}
	})

	online := log.wait(t, driver.EventWorkerOnline, 60*time.Second, nil)
	require.Equal(t, "py-celery", online["sw_ident"])
	require.Equal(t, 2.0, online["freq"])
	log.wait(t, driver.EventWorkerHeartbeat, 10*time.Second, nil)

	res, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3, z: 1})
	require.NoError(t, err)
	id := func(ev map[string]any) bool { return ev["uuid"] == res.ID() }
	rcv := log.wait(t, driver.EventTaskReceived, 30*time.Second, id)
	require.Equal(t, "tasks.add", rcv["name"])
	log.wait(t, driver.EventTaskStarted, 30*time.Second, id)
	ok := log.wait(t, driver.EventTaskSucceeded, 30*time.Second, id)
	require.Equal(t, "6", ok["result"])

	// A Python worker answers a Go client's inspect too.
	r, err := app.Inspect(ctx, "ping", nil, time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"ok": "pong"}, r[node])

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
		sawMulti = sawMulti || m.RoutingKey == "task.multi"
	}
	t.Logf("task events as task.multi lists: %v", sawMulti)
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
	raw := testenv.AMQPURL(t)
	py := testenv.Python(t)
	ctx := ctxT(t, 2*time.Minute)
	node := nodeName(t, "w")
	q := queueName(t)
	purgeLater(t, raw, q)

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
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1, Hostname: node}, addDef(q, nil))
	res, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 2, y: 3, z: 1})
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
	require.Equal(t, "6", seen[driver.EventTaskSucceeded]["result"])
}
