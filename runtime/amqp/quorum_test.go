package amqp_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/transporttest"
)

// quorumURL is the shared test RabbitMQ with queue_type=quorum and query.
func quorumURL(t testing.TB, query string) string {
	return withQuery(testenv.AMQPURL(t), strings.TrimSuffix("queue_type=quorum&"+query, "&"))
}

// deadLetters reads the dead letters of queue through raw (without
// acknowledging them: closing the channel requeues them).
func deadLetters(t *testing.T, raw, queue string) []transporttest.DeadLetter {
	conn, ch := rawConn(t, raw)
	defer conn.Close()
	var out []transporttest.DeadLetter
	for {
		d, ok, err := ch.Get(queue+amqp.DeadLetterQueueSuffix, false)
		require.NoError(t, err)
		if !ok {
			return out
		}
		reason, _ := d.Headers[amqp.HeaderDeadLetterReason].(string)
		out = append(out, transporttest.DeadLetter{TaskID: d.CorrelationId, Reason: reason})
	}
}

// TestConformance_Quorum runs the conformance suite on the shared RabbitMQ
// with quorum task queues (no restart: TestConformance_Cluster restarts a
// cluster of its own). Quorum queues have no priorities in RabbitMQ 3.x.
func TestConformance_Quorum(t *testing.T) {
	raw := quorumURL(t, "")
	transporttest.Run(t, transporttest.Harness{
		Open: func(t *testing.T) driver.Broker { return openBroker(t, raw) },
		DeadLetters: func(t *testing.T, _ driver.Broker, queue string) []transporttest.DeadLetter {
			return deadLetters(t, testenv.AMQPURL(t), queue)
		},
	})
}

// TestQuorum_Declarations: task queues are quorum queues with exactly the
// arguments Celery 5.5 declares with task_default_queue_type = "quorum"
// (and, with delivery_limit, the limit and taskgen's dead-letter exchange);
// kombu's native delayed delivery entities exist with kombu's arguments.
func TestQuorum_Declarations(t *testing.T) {
	t.Parallel()
	q, ql := queueName(t), queueName(t)+".limit"
	purgeLater(t, testenv.AMQPURL(t), q, ql, ql+amqp.DeadLetterQueueSuffix)
	msg := func(id string) *driver.Message {
		return &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: id, DeliveryMode: 2,
			Body: []byte(`[[], {}, {}]`), Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id, RootID: id}}
	}
	require.NoError(t, openBroker(t, quorumURL(t, "")).Publish(ctxT(t, 20*time.Second), q, msg("a")))
	require.NoError(t, openBroker(t, quorumURL(t, "delivery_limit=4")).Publish(ctxT(t, 20*time.Second), ql, msg("b")))

	_, ch := rawConn(t, testenv.AMQPURL(t))
	redeclare := func(name string, args amqp091.Table) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		if err != nil {
			_, ch = rawConn(t, testenv.AMQPURL(t)) // a 406 closes the channel
		}
		return err
	}
	// What kombu declares for Queue(q, queue_arguments={"x-queue-type": "quorum"}).
	require.NoError(t, redeclare(q, amqp091.Table{"x-queue-type": "quorum"}))
	require.Error(t, redeclare(q, nil), "the queue is a quorum queue: a classic declaration is refused")
	require.NoError(t, redeclare(ql, amqp091.Table{"x-queue-type": "quorum", "x-delivery-limit": int32(4),
		"x-dead-letter-exchange": amqp.DefaultDeadLetterExchange, "x-dead-letter-routing-key": ql}))
	require.NoError(t, redeclare(ql+amqp.DeadLetterQueueSuffix, amqp091.Table{"x-queue-type": "quorum"}), "the dead-letter queue exists before anything is dead-lettered")
	// kombu's declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum").
	for _, l := range []int{0, 1, 27} {
		name := fmt.Sprintf("celery_delayed_%d", l)
		require.NoError(t, ch.ExchangeDeclare(name, "topic", true, false, false, false, nil))
		dlx := "celery_delayed_delivery"
		if l > 0 {
			dlx = fmt.Sprintf("celery_delayed_%d", l-1)
		}
		require.NoError(t, redeclare(name, amqp091.Table{"x-queue-type": "quorum", "x-overflow": "reject-publish",
			"x-message-ttl": int64(1<<l) * 1000, "x-dead-letter-exchange": dlx, "x-dead-letter-strategy": "at-least-once"}), name)
	}
	require.NoError(t, ch.ExchangeDeclare("celery_delayed_delivery", "topic", true, false, false, false, nil))
	bindings := testenv.RabbitMQCtl(t, "-q", "list_bindings", "-p", "taskgen", "source_name", "destination_name", "routing_key")
	for _, want := range []string{
		"celery_delayed_27\tcelery_delayed_27\t1.#\n",
		"celery_delayed_27\tcelery_delayed_26\t0.#\n",
		"celery_delayed_0\tcelery_delayed_0\t" + strings.Repeat("*.", 27) + "1.#\n",
		"celery_delayed_0\tcelery_delayed_delivery\t" + strings.Repeat("*.", 27) + "0.#\n",
		"celery_delayed_delivery\t" + q + "\t" + strings.Repeat("*.", 28) + q + "\n",
	} {
		require.Contains(t, bindings, want)
	}
}

// TestQuorum_NativeDelay: a deferred message travels through kombu's
// levels (6 s: the 4 s and the 2 s queues) and reaches its queue from the
// delivery exchange, not early; a message a Celery 5.5 producer delays
// (published to celery_delayed_27 with kombu's routing key) reaches a queue
// a Go consumer consumes. Both arrive as published by the last level's
// exchange, which sent them on to the delivery exchange.
func TestQuorum_NativeDelay(t *testing.T) {
	t.Parallel()
	raw := quorumURL(t, "")
	q := queueName(t)
	purgeLater(t, testenv.AMQPURL(t), q)
	b := openBroker(t, raw)
	body, err := codegen.AppendBody(nil, "json", &addArgs{x: 1}, nil)
	require.NoError(t, err)
	m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: "n1", DeliveryMode: 2, Body: body,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: "n1", RootID: "n1"}}
	start := time.Now()
	require.NoError(t, b.Defer(ctxT(t, 20*time.Second), q, m, start.Add(6500*time.Millisecond)))
	n, err := b.QueueLength(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, n)

	ds, err := b.Consume(ctxT(t, time.Minute), []string{q}, 4)
	require.NoError(t, err)
	// What Celery 5.5's send_task does for countdown=2 on a quorum queue.
	_, ch := rawConn(t, testenv.AMQPURL(t))
	require.NoError(t, ch.PublishWithContext(ctxT(t, 10*time.Second), "celery_delayed_27",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0."+q, false, false,
		amqp091.Publishing{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationId: "py1", DeliveryMode: 2, Body: body,
			Headers: amqp091.Table{"lang": "py", "task": "tasks.add", "id": "py1", "root_id": "py1"}}))
	got := map[string]time.Duration{}
	for len(got) < 2 {
		select {
		case d := <-ds:
			msg := d.Message()
			require.NotNil(t, msg, "%v", d.DecodeError())
			require.True(t, strings.HasPrefix(msg.Exchange, amqp.NativeDelayLevelPrefix), "dead-lettered by a level: %s", msg.Exchange)
			require.NotContains(t, msg.Headers.Extra, "x-death")
			got[msg.Headers.ID] = time.Since(start)
			require.NoError(t, d.Ack())
		case <-time.After(20 * time.Second):
			t.Fatalf("delayed messages missing; got %v", got)
		}
	}
	require.GreaterOrEqual(t, got["n1"], 6*time.Second, "the 6 s delay")
	require.GreaterOrEqual(t, got["py1"], 2*time.Second, "the 2 s delay")
	require.Less(t, got["py1"], got["n1"])
}

// TestQuorum_LongDelay: a delay beyond 2^27 s waits in the level-27 queue
// (x-message-ttl 2^27 s, above Erlang's 2^32 ms timer limit), which keeps
// it and keeps working.
func TestQuorum_LongDelay(t *testing.T) {
	t.Parallel()
	q := queueName(t)
	purgeLater(t, testenv.AMQPURL(t), q)
	b := openBroker(t, quorumURL(t, ""))
	id := driver.NewID()
	m := &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: id, DeliveryMode: 2,
		Body: []byte(`[[], {}, {}]`), Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id, RootID: id}}
	require.NoError(t, b.Defer(ctxT(t, 20*time.Second), q, m, time.Now().Add(5*365*24*time.Hour)))
	time.Sleep(2 * time.Second)
	_, ch := rawConn(t, testenv.AMQPURL(t))
	found := false
	for !found {
		d, ok, err := ch.Get(amqp.NativeDelayLevelPrefix+"27", true)
		require.NoError(t, err)
		require.True(t, ok, "the message is not in the level-27 queue")
		found = d.CorrelationId == id
	}
}

// TestQuorum_DeliveryLimit: with delivery_limit=2 a message whose consumer
// dies every time (a task that crashes its worker) is delivered three
// times, then RabbitMQ dead-letters it into <queue>.dead_letter through
// taskgen's dead-letter exchange, where the worker's own dead letters go;
// other messages go on.
func TestQuorum_DeliveryLimit(t *testing.T) {
	t.Parallel()
	raw := quorumURL(t, "delivery_limit=2")
	q := queueName(t)
	purgeLater(t, testenv.AMQPURL(t), q, q+amqp.DeadLetterQueueSuffix)
	msg := func(id string) *driver.Message {
		return &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: id, DeliveryMode: 2,
			Body: []byte(`[[], {}, {}]`), Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id, RootID: id}}
	}
	require.NoError(t, openBroker(t, raw).Publish(ctxT(t, 20*time.Second), q, msg("poison")))
	deliveries := 0
	for range 4 {
		b := openBroker(t, raw)
		ds, err := b.Consume(ctxT(t, time.Minute), []string{q}, 1)
		require.NoError(t, err)
		select {
		case d := <-ds:
			require.Equal(t, "poison", d.Message().Headers.ID)
			require.Equal(t, deliveries > 0, d.Message().Redelivered)
			deliveries++
		case <-time.After(2 * time.Second):
		}
		require.NoError(t, b.Close()) // dies without settling it
	}
	require.Equal(t, 3, deliveries, "the first delivery and delivery_limit redeliveries")
	_, ch := rawConn(t, testenv.AMQPURL(t))
	d := getRaw(t, ch, q+amqp.DeadLetterQueueSuffix, 10*time.Second)
	require.Equal(t, "poison", d.CorrelationId)
	require.Equal(t, "delivery_limit", d.Headers["x-first-death-reason"])
	require.Equal(t, q, d.Headers["x-first-death-queue"])

	// Worker-side dead letters of such a queue go to the same place.
	require.NoError(t, openBroker(t, raw).Publish(ctxT(t, 20*time.Second), q, msg("bad")))
	b := openBroker(t, raw)
	ds, err := b.Consume(ctxT(t, time.Minute), []string{q}, 1)
	require.NoError(t, err)
	require.NoError(t, (<-ds).Reject("cannot decode arguments"))
	require.Eventually(t, func() bool {
		return len(deadLetters(t, testenv.AMQPURL(t), q)) == 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, []transporttest.DeadLetter{{TaskID: "bad", Reason: "cannot decode arguments"}}, deadLetters(t, testenv.AMQPURL(t), q))
}

// TestQuorum_Worker: a worker on a quorum queue runs tasks, and a countdown
// beyond its horizon is parked through the native delayed delivery.
func TestQuorum_Worker(t *testing.T) {
	t.Parallel()
	raw := quorumURL(t, "")
	q := queueName(t)
	purgeLater(t, testenv.AMQPURL(t), q)
	var mu sync.Mutex
	ran := map[int64]time.Time{}
	def := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
		mu.Lock()
		ran[a.x] = time.Now()
		mu.Unlock()
		return a.x, nil
	})
	app := newApp(t, raw, "msgpack")
	runWorker(t, app, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2, DelayHorizon: time.Second}, def)
	stub := runtime.NewStub[int](def)
	start := time.Now()
	res, err := stub.With(runtime.WithApp(app)).Send(ctxT(t, 20*time.Second), &addArgs{x: 1})
	require.NoError(t, err)
	v, err := res.Get(ctxT(t, 20*time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, v)
	_, err = stub.With(runtime.WithApp(app), runtime.Countdown(3*time.Second)).Send(ctxT(t, 20*time.Second), &addArgs{x: 2})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !ran[2].IsZero()
	}, 20*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, ran[2].Sub(start), 3*time.Second)
}
