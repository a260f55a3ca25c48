package amqp_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	_ "github.com/taskgen/taskgen/runtime/memory"
)

// addArgs is what taskgen generates for func add(ctx, x, y, z int) int.
type addArgs struct{ x, y, z int64 }

var addArgsNames = codegen.ArgNames{{"x"}, {"y"}, {"z"}}

func (*addArgs) ArgNames() codegen.ArgNames { return addArgsNames }
func (a *addArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.Int(a.x)
	w.Int(a.y)
	w.Int(a.z)
	return nil
}
func (a *addArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	switch i {
	case 0:
		a.x, err = r.Int(64)
	case 1:
		a.y, err = r.Int(64)
	case 2:
		a.z, err = r.Int(64)
	}
	return err
}

func addDef(queue string, run func(ctx context.Context, a *addArgs) (any, error)) *codegen.TaskDef {
	if run == nil {
		run = func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y + a.z, nil }
	}
	return &codegen.TaskDef{Name: "tasks.add", Queue: queue, Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run:     func(ctx context.Context, a codegen.Args) (any, error) { return run(ctx, a.(*addArgs)) }}
}

// testLogger shows warnings and errors only.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// queueName returns a queue name unique to the test run.
func queueName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "tg." + strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-") + "." + hex.EncodeToString(b[:])
}

// withQuery adds query options to a broker URL.
func withQuery(raw, query string) string {
	if query == "" {
		return raw
	}
	if strings.Contains(raw, "?") {
		return raw + "&" + query
	}
	return raw + "?" + query
}

func newApp(t testing.TB, brokerURL, ser string) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: brokerURL, Backend: "memory://" + queueName(t), Serializer: ser, PublishTimeout: 20 * time.Second, Logger: testLogger})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

func rawConn(t testing.TB, raw string) (*amqp091.Connection, *amqp091.Channel) {
	t.Helper()
	conn, err := amqp091.Dial(raw)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	return conn, ch
}

// runWorker runs a worker until the test ends.
func runWorker(t testing.TB, app *runtime.App, opts runtime.WorkerOptions, defs ...*codegen.TaskDef) *runtime.Worker {
	t.Helper()
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 2 * time.Second
	}
	w := app.NewWorker(opts)
	for _, d := range defs {
		w.Register(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// purgeLater deletes the test's queues when it ends.
func purgeLater(t testing.TB, raw string, queues ...string) {
	t.Cleanup(func() {
		conn, err := amqp091.Dial(raw)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, q := range queues {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.ExchangeDelete(q, false, false)
		}
	})
}

// getRaw fetches one message from queue with a raw amqp091 channel.
func getRaw(t testing.TB, ch *amqp091.Channel, queue string, within time.Duration) amqp091.Delivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d, ok, err := ch.Get(queue, true)
		require.NoError(t, err)
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in %s after %v", queue, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var masked = map[string]bool{"lang": true, "id": true, "root_id": true, "origin": true, "argsrepr": true, "kwargsrepr": true, "eta": true, "expires": true}

func TestPublish_HeadersTypedAsCelery(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	for _, name := range amqp.FixtureNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := amqp.LoadFixture(t, name)
			ser := "json"
			if strings.Contains(name, "msgpack") {
				ser = "msgpack"
			}
			q := queueName(t)
			purgeLater(t, raw, q)
			app := newApp(t, raw, ser)
			def := addDef(q, nil)
			var opts []runtime.Option
			if strings.Contains(name, "eta_expires_prio") {
				def.TimeLimit, def.SoftTimeLimit = 60*time.Second, 50*time.Second
				opts = append(opts, runtime.Countdown(30*time.Second), runtime.Expires(time.Now().Add(120*time.Second)), runtime.Priority(5))
			}
			res, err := runtime.NewStub[int](def).With(append(opts, runtime.WithApp(app))...).Send(ctxT(t, 10*time.Second), &addArgs{x: 2, y: 3, z: 1})
			require.NoError(t, err)
			_, ch := rawConn(t, raw)
			d := getRaw(t, ch, q, 5*time.Second)

			want := f.PyTable()
			require.Len(t, d.Headers, len(want), "same header names as Celery: %v", d.Headers)
			for k, w := range want {
				g, ok := d.Headers[k]
				require.True(t, ok, "header %q missing", k)
				require.IsType(t, w, g, "header %q: py-amqp type", k)
				if !masked[k] {
					require.Equal(t, w, g, "header %q", k)
				}
			}
			require.Equal(t, "go", d.Headers["lang"])
			require.Equal(t, res.ID(), d.Headers["id"])
			require.Equal(t, res.ID(), d.Headers["root_id"])
			require.Equal(t, res.ID(), d.CorrelationId)
			require.Equal(t, f.Delivery().ContentType, d.ContentType)
			require.Equal(t, f.Delivery().ContentEncoding, d.ContentEncoding)
			require.Equal(t, f.Delivery().Priority, d.Priority)
			require.Equal(t, uint8(2), d.DeliveryMode)
			require.Equal(t, "", d.Exchange, "published on the default exchange, as Celery")
			require.Equal(t, q, d.RoutingKey)
			if strings.Contains(name, "eta_expires_prio") {
				iso := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)
				require.Regexp(t, iso, d.Headers["eta"])
				require.Regexp(t, iso, d.Headers["expires"])
				require.Regexp(t, `^1(19|20)\d\d\d$`, d.Expiration)
			} else {
				require.Empty(t, d.Expiration)
				require.Nil(t, d.Headers["eta"])
			}
			// The body decodes as Celery's [args, kwargs, embed].
			var got addArgs
			_, err = codegen.DecodeBody(d.ContentType, "", d.Body, &got)
			require.NoError(t, err)
			require.Equal(t, addArgs{2, 3, 1}, got)
		})
	}
}

// publishFixture publishes a Celery capture as py-amqp would.
func publishFixture(t testing.TB, ch *amqp091.Channel, queue string, f amqp.Fixture, mod func(p *amqp091.Publishing)) {
	t.Helper()
	d := f.Delivery()
	p := amqp091.Publishing{Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, Body: d.Body}
	if mod != nil {
		mod(&p)
	}
	require.NoError(t, ch.PublishWithContext(context.Background(), "", queue, false, false, p))
}

func openBroker(t testing.TB, raw string) *amqp.Broker {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	b, err := amqp.New(u, driver.TransportOptions{Hostname: "test@" + t.Name(), ConnectTimeout: 10 * time.Second, Logger: testLogger})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConsume_CeleryMessages(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	b := openBroker(t, raw)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds, err := b.Consume(ctx, []string{q}, 8)
	require.NoError(t, err)
	_, ch := rawConn(t, raw)
	for _, name := range amqp.FixtureNames {
		f := amqp.LoadFixture(t, name)
		publishFixture(t, ch, q, f, nil)
		var d driver.Delivery
		select {
		case d = <-ds:
		case <-time.After(5 * time.Second):
			t.Fatal("no delivery")
		}
		m := d.Message()
		require.NotNil(t, m, "%s: %v", name, d.DecodeError())
		require.Equal(t, "tasks.add", m.Headers.Task)
		require.Equal(t, f.Headers["id"], m.Headers.ID)
		require.Equal(t, q, m.RoutingKey)
		require.False(t, m.Redelivered)
		require.Equal(t, f.Body, m.Body)
		if strings.Contains(name, "eta") {
			require.Equal(t, [2]float64{60, 50}, m.Headers.TimeLimit)
		} else {
			var a addArgs
			_, err := codegen.DecodeBody(m.ContentType, "", m.Body, &a)
			require.NoError(t, err, name)
			require.Equal(t, addArgs{2, 3, 1}, a)
		}
		require.NoError(t, d.Ack())
		require.Error(t, d.Ack(), "a second ack is refused")
	}
	cancel()
	for range ds {
	}
	n, err := b.QueueLength(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestDeclare_EquivalentToCelery declares with Go, then with Celery's exact
// flags from a raw connection: no 406.
func TestDeclare_EquivalentToCelery(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q, qp := queueName(t), queueName(t)+".prio"
	purgeLater(t, raw, q, qp)
	app := newApp(t, raw, "json")
	_, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctxT(t, 10*time.Second), &addArgs{})
	require.NoError(t, err)
	appP := newApp(t, withQuery(raw, "max_priority=10"), "json")
	_, err = runtime.NewStub[int](addDef(qp, nil)).With(runtime.WithApp(appP)).Send(ctxT(t, 10*time.Second), &addArgs{})
	require.NoError(t, err)

	_, ch := rawConn(t, raw)
	// kombu: Exchange(q, 'direct', durable=True); Queue(q, durable=True, auto_delete=False, exclusive=False).
	require.NoError(t, ch.ExchangeDeclare(q, "direct", true, false, false, false, nil))
	got, err := ch.QueueDeclare(q, true, false, false, false, nil)
	require.NoError(t, err)
	require.Equal(t, 1, got.Messages)
	require.NoError(t, ch.QueueBind(q, q, q, false, nil))
	// task_queue_max_priority=10: py-amqp writes the int as I (int32).
	require.NoError(t, ch.ExchangeDeclare(qp, "direct", true, false, false, false, nil))
	_, err = ch.QueueDeclare(qp, true, false, false, false, amqp091.Table{"x-max-priority": int32(10)})
	require.NoError(t, err)
	// Without the argument RabbitMQ refuses: max_priority is really declared.
	_, err = ch.QueueDeclare(qp, true, false, false, false, nil)
	var ae *amqp091.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp091.PreconditionFailed, ae.Code)

	// Compare with what a Celery worker declared (rabbitmqctl listing).
	queues := testenv.RabbitMQCtl(t, "-q", "list_queues", "-p", "taskgen", "name", "durable", "auto_delete", "exclusive", "arguments")
	require.Contains(t, queues, q+"\ttrue\tfalse\tfalse\t[]\n")
	require.Regexp(t, regexp.QuoteMeta(qp)+`\ttrue\tfalse\tfalse\t\[\{"x-max-priority",10\}\]`, queues)
	exchanges := testenv.RabbitMQCtl(t, "-q", "list_exchanges", "-p", "taskgen", "name", "type", "durable", "auto_delete", "arguments")
	require.Contains(t, exchanges, q+"\tdirect\ttrue\tfalse\t[]\n")
	bindings := testenv.RabbitMQCtl(t, "-q", "list_bindings", "-p", "taskgen", "source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments")
	require.Contains(t, bindings, q+"\texchange\t"+q+"\tqueue\t"+q+"\t[]\n")
	require.Contains(t, bindings, "\texchange\t"+q+"\tqueue\t"+q+"\t[]\n")
}

// TestDeclare_ExistingPriorityQueue: a queue Python declared with
// x-max-priority is used by a Go side without max_priority (warning, no 406).
func TestDeclare_ExistingPriorityQueue(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	_, ch := rawConn(t, raw)
	require.NoError(t, ch.ExchangeDeclare(q, "direct", true, false, false, false, nil))
	_, err := ch.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-max-priority": int32(10)})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(q, q, q, false, nil))
	app := newApp(t, raw, "msgpack")
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2}, addDef(q, nil))
	res, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctxT(t, 10*time.Second), &addArgs{x: 1, y: 2})
	require.NoError(t, err)
	v, err := res.Get(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	require.Equal(t, 3, v)
}

func TestWorker_EndToEnd(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, url string }{
		{"msgpack", ""}, {"json", ""}, {"json-guest-default-vhost", "guest"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			raw := testenv.AMQPURL(t) // user taskgen, vhost taskgen
			if c.url == "guest" {
				raw = testenv.AMQPGuestURL(t)
			}
			ser := strings.SplitN(c.name, "-", 2)[0]
			q := queueName(t)
			purgeLater(t, raw, q)
			app := newApp(t, raw, ser)
			def := addDef(q, nil)
			runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 4}, def)
			stub := runtime.NewStub[int](def).With(runtime.WithApp(app))
			ctx := ctxT(t, 20*time.Second)
			var results []*runtime.AsyncResult[int]
			for i := range 20 {
				res, err := stub.Send(ctx, &addArgs{x: int64(i), y: 1, z: 1})
				require.NoError(t, err)
				results = append(results, res)
			}
			for i, res := range results {
				v, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, i+2, v)
			}
		})
	}
}

// TestWorker_DeadConsumerRedelivers: a worker's connection dies while it
// runs an acks_late task; the message is redelivered to another worker.
func TestWorker_DeadConsumerRedelivers(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	var runs atomic.Int32
	var redelivered atomic.Bool
	slow := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		runs.Add(1)
		if info, _ := runtime.TaskFromContext(ctx); info.Redelivered {
			redelivered.Store(true)
			return a.x + a.y, nil
		}
		started <- struct{}{}
		<-release
		return nil, fmt.Errorf("worker A should be dead")
	})
	slow.AcksLate = true
	appA := newApp(t, raw, "msgpack")
	runWorker(t, appA, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1, Prefetch: 1}, slow)
	res, err := runtime.NewStub[int](slow).With(runtime.WithApp(appA)).Send(ctxT(t, 10*time.Second), &addArgs{x: 40, y: 2})
	require.NoError(t, err)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("worker A did not start the task")
	}
	require.NoError(t, appA.Broker().Close()) // worker A "dies": its connection closes un-acked

	appB := newApp(t, raw, "msgpack")
	appB2, err := runtime.New(runtime.Config{Broker: raw, Backend: "", Serializer: "msgpack"})
	require.NoError(t, err)
	defer appB2.Close()
	runWorker(t, appB, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 1}, slow)
	deadline := time.Now().Add(15 * time.Second)
	for !redelivered.Load() {
		require.True(t, time.Now().Before(deadline), "the un-acked task was not redelivered")
		time.Sleep(20 * time.Millisecond)
	}
	require.EqualValues(t, 2, runs.Load())
	_ = res
}

// TestPoison: messages that are not tasks, do not decode or name no
// registered task are dead-lettered with the reason; the worker goes on.
func TestWorker_PoisonDeadLettered(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	dlq := q + amqp.DeadLetterQueueSuffix
	purgeLater(t, raw, q, dlq)
	app := newApp(t, raw, "msgpack")
	w := runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2}, addDef(q, nil))
	_, ch := rawConn(t, raw)
	_, err := ch.QueueDeclare(q, true, false, false, false, nil) // as Celery, before the worker may have
	require.NoError(t, err)
	f := amqp.LoadFixture(t, "amqp_task_json_basic")
	cases := map[string]func(p *amqp091.Publishing){
		"pickle":       func(p *amqp091.Publishing) { p.ContentType = "application/x-python-serialize" },
		"no task":      func(p *amqp091.Publishing) { delete(p.Headers, "task") },
		"garbage body": func(p *amqp091.Publishing) { p.Body = []byte("[[1, 2], {}, {") },
		"unregistered": func(p *amqp091.Publishing) { p.Headers["task"] = "tasks.nope" },
	}
	for name, mod := range cases {
		publishFixture(t, ch, q, f, func(p *amqp091.Publishing) {
			h := amqp091.Table{}
			for k, v := range p.Headers {
				h[k] = v
			}
			p.Headers = h
			p.CorrelationId = name
			mod(p)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().DeadLettered < int64(len(cases)) {
		require.True(t, time.Now().Before(deadline), "dead-lettered %d", w.Stats().DeadLettered)
		time.Sleep(10 * time.Millisecond)
	}
	reasons := map[string]string{}
	for range cases {
		d := getRaw(t, ch, dlq, 10*time.Second)
		require.Equal(t, q, d.Headers[amqp.HeaderDeadLetterQueue])
		reasons[d.CorrelationId], _ = d.Headers[amqp.HeaderDeadLetterReason].(string)
	}
	require.Contains(t, reasons["pickle"], "unsupported content type")
	require.Contains(t, reasons["no task"], `"task" missing`)
	require.Contains(t, reasons["garbage body"], "cannot decode arguments")
	require.Contains(t, reasons["unregistered"], `unregistered task "tasks.nope"`)
	require.EqualValues(t, 4, w.Stats().DeadLettered)
	// Still alive.
	res, err := runtime.NewStub[int](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctxT(t, 10*time.Second), &addArgs{x: 1})
	require.NoError(t, err)
	v, err := res.Get(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, v)
	n, err := app.Broker().(driver.QueueInspector).QueueLength(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestDefer_WaitsInRabbitMQ: Defer parks the message in a TTL wait queue
// (nothing un-acked, nothing in worker memory) and it lands in its queue
// when due.
func TestDefer_WaitsInRabbitMQ(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	wait := "taskgen.delay." + q + ".4s"
	purgeLater(t, raw, q, wait)
	b := openBroker(t, raw)
	body, err := codegen.AppendBody(nil, "json", &addArgs{x: 1}, nil)
	require.NoError(t, err)
	m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: "d1", DeliveryMode: 2, Body: body,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: "d1", RootID: "d1"}}
	start := time.Now()
	require.NoError(t, b.Defer(ctxT(t, 10*time.Second), q, m, start.Add(4500*time.Millisecond)))
	n, err := b.QueueLength(context.Background(), wait)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "parked in %s", wait)
	n, err = b.QueueLength(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, n)
	// A delay of a year waits in the largest wait queue (2^22 s).
	longWait := "taskgen.delay." + q + ".4194304s"
	purgeLater(t, raw, longWait)
	require.NoError(t, b.Defer(ctxT(t, 10*time.Second), q, m, start.Add(365*24*time.Hour)))
	n, err = b.QueueLength(context.Background(), longWait)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	_, ch := rawConn(t, raw)
	d := getRaw(t, ch, q, 10*time.Second)
	require.GreaterOrEqual(t, time.Since(start), 4*time.Second)
	require.Equal(t, "d1", d.Headers["id"])
	require.Contains(t, d.Headers, "x-death", "dead-lettered by the wait queue's TTL")
}

// TestWorker_CountdownParkedInBroker: a task due in 3 s, beyond the
// worker's 1 s horizon, hops through a wait queue and runs once, not early.
func TestWorker_CountdownParkedInBroker(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q, "taskgen.delay."+q+".2s")
	var runs atomic.Int32
	var ranAt atomic.Int64
	def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		runs.Add(1)
		ranAt.Store(time.Now().UnixNano())
		return a.x, nil
	})
	app := newApp(t, raw, "msgpack")
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2, DelayHorizon: time.Second}, def)
	start := time.Now()
	res, err := runtime.NewStub[int](def).With(runtime.WithApp(app), runtime.Countdown(3*time.Second)).Send(ctxT(t, 10*time.Second), &addArgs{x: 7})
	require.NoError(t, err)
	time.Sleep(time.Second)
	n, err := app.Broker().(driver.QueueInspector).QueueLength(context.Background(), "taskgen.delay."+q+".2s")
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "parked in the 2 s wait queue")
	v, err := res.Get(ctxT(t, 15*time.Second))
	require.NoError(t, err)
	require.Equal(t, 7, v)
	require.GreaterOrEqual(t, time.Unix(0, ranAt.Load()).Sub(start), 3*time.Second)
	time.Sleep(500 * time.Millisecond)
	require.EqualValues(t, 1, runs.Load())
}

// TestConsume_OutOfOrderAcks settles deliveries concurrently in random order
// (acks, requeues, slow stragglers): every message ends acknowledged exactly
// once and nothing stays behind.
func TestConsume_OutOfOrderAcks(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	b := openBroker(t, raw)
	const n = 600
	body, err := codegen.AppendBody(nil, "msgpack", &addArgs{}, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint(i)
			m := &driver.Message{ContentType: driver.ContentTypeMsgpack, ContentEncoding: "binary", CorrelationID: id, Body: body,
				Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id}}
			require.NoError(t, b.Publish(ctxT(t, 20*time.Second), q, m))
		})
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	ds, err := b.Consume(ctx, []string{q}, 64)
	require.NoError(t, err)
	var mu sync.Mutex
	acked := map[string]int{}
	requeued := map[string]bool{}
	var settle sync.WaitGroup
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	deadline := time.Now().Add(20 * time.Second)
	for ackedN() < n {
		var d driver.Delivery
		select {
		case d = <-ds:
		case <-time.After(50 * time.Millisecond):
			require.True(t, time.Now().Before(deadline), "stalled after %d acks", ackedN())
			continue // re-check the count
		}
		id := d.Message().Headers.ID
		settle.Go(func() {
			var i int
			_, _ = fmt.Sscan(id, &i)
			switch {
			case i%10 == 3 && !d.Message().Redelivered:
				mu.Lock()
				requeued[id] = true
				mu.Unlock()
				require.NoError(t, d.Requeue())
				return
			case i%50 == 7:
				time.Sleep(100 * time.Millisecond) // a straggler holds the watermark
			default:
				time.Sleep(time.Duration(i%5) * time.Millisecond)
			}
			require.NoError(t, d.Ack())
			mu.Lock()
			acked[id]++
			mu.Unlock()
		})
	}
	settle.Wait()
	cancel()
	for d := range ds {
		require.NoError(t, d.Requeue())
	}
	require.Len(t, acked, n)
	for id, c := range acked {
		require.Equal(t, 1, c, id)
	}
	require.Len(t, requeued, n/10)
	// Everything was acknowledged on the broker: after the consumer's
	// connection closes nothing comes back.
	require.NoError(t, b.Close())
	b2 := openBroker(t, raw)
	time.Sleep(200 * time.Millisecond)
	left, err := b2.QueueLength(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, left)
}

// TestRabbitMQRestart restarts RabbitMQ while producers publish and a worker
// consumes: producers get errors during the outage or succeed after, no
// confirmed task is lost, and the worker resumes consuming.
// It is not parallel: it stops the shared server.
func TestRabbitMQRestart(t *testing.T) {
	testenv.SkipIfShort(t, "restarts RabbitMQ")
	testenv.PrivateEnv(t) // restarts the node: a private one, not the node other packages share
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	var mu sync.Mutex
	ran := map[int64]int{}
	def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		mu.Lock()
		ran[a.x]++
		mu.Unlock()
		return nil, nil
	})
	def.IgnoreResult = true
	app := newApp(t, raw, "msgpack")
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 4}, def)
	stub := runtime.NewStub[int](def).With(runtime.WithApp(app))

	stop := make(chan struct{})
	var confirmed sync.Map
	var okN, errN atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				x := next.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err := stub.Send(ctx, &addArgs{x: x})
				cancel()
				if err == nil {
					confirmed.Store(x, true)
					okN.Add(1)
				} else {
					errN.Add(1)
					require.NotContains(t, err.Error(), "taskgen-secret")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	before := okN.Load()
	testenv.RestartRabbitMQ(t)
	afterRestart := okN.Load()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("confirmed %d (before restart %d, during %d), errors %d", okN.Load(), before, afterRestart-before, errN.Load())
	require.Greater(t, okN.Load(), afterRestart, "producers succeed after the restart")
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		confirmed.Range(func(k, _ any) bool {
			mu.Lock()
			if ran[k.(int64)] == 0 {
				missing++
			}
			mu.Unlock()
			return true
		})
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d confirmed tasks never ran", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pythonSend is a Celery 5 producer: it declares the queue as Celery does
// (task_create_missing_queues) and sends tasks.add(2, 3, z=1) to it.
const pythonSend = `
import sys
from celery import Celery
app = Celery('interop', broker=sys.argv[1])
app.conf.update(task_serializer='json', accept_content=['json'], broker_connection_retry=False)
r = app.send_task('tasks.add', args=(2, 3), kwargs={'z': 1}, queue=sys.argv[2])
print(r.id)
`

// TestInterop_PythonCelery: Go and Python Celery declare and use the same
// queue (no 406 either way) and a Go worker runs the Python task.
func TestInterop_PythonCelery(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	py := testenv.Python(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	var mu sync.Mutex
	got := map[int64]bool{}
	def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		mu.Lock()
		got[a.x+a.y+a.z] = true
		mu.Unlock()
		return a.x + a.y + a.z, nil
	})
	app := newApp(t, raw, "json")
	// Go declares first, then Python declares the same entities.
	_, err := runtime.NewStub[int](def).With(runtime.WithApp(app)).Send(ctxT(t, 10*time.Second), &addArgs{x: 10})
	require.NoError(t, err)
	out, err := exec.CommandContext(ctxT(t, time.Minute), py, "-c", pythonSend, raw, q).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// And the other way round: a queue Python declared first.
	q2 := queueName(t)
	purgeLater(t, raw, q2)
	out, err = exec.CommandContext(ctxT(t, time.Minute), py, "-c", pythonSend, raw, q2).CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = runtime.NewStub[int](def).With(runtime.WithApp(app), runtime.Queue(q2)).Send(ctxT(t, 10*time.Second), &addArgs{x: 20})
	require.NoError(t, err)

	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q, q2}, Concurrency: 2}, def)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 {
			break
		}
		require.True(t, time.Now().Before(deadline), "ran %v", got)
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, map[int64]bool{10: true, 6: true, 20: true}, got)
}
