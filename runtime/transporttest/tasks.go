package transporttest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// testPublishConsume: a published message comes back with its properties,
// headers and body, its queue as routing key, not marked redelivered.
func (s *suite) testPublishConsume(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	sent := taskMessage(driver.NewID(), 0)
	sent.Headers.ParentID = driver.NewID()
	sent.Headers.Retries = 2
	sent.Headers.Group = "g1"
	sent.Headers.Extra = map[string]any{"custom": "kept"}
	require.NoError(t, b.Publish(ctxT(t, wait), q, sent))

	ds, _ := consume(t, b, 1, q)
	d := next(t, ds)
	m := d.Message()
	require.Equal(t, sent.ContentType, m.ContentType)
	require.Equal(t, sent.ContentEncoding, m.ContentEncoding)
	require.Equal(t, sent.CorrelationID, m.CorrelationID)
	require.Equal(t, sent.Body, m.Body)
	require.Equal(t, q, m.RoutingKey)
	require.False(t, m.Redelivered)
	h := m.Headers
	require.Equal(t, sent.Headers.Task, h.Task)
	require.Equal(t, sent.Headers.ID, h.ID)
	require.Equal(t, sent.Headers.RootID, h.RootID)
	require.Equal(t, sent.Headers.ParentID, h.ParentID)
	require.Equal(t, sent.Headers.Group, h.Group)
	require.Equal(t, 2, h.Retries)
	require.Equal(t, sent.Headers.ArgsRepr, h.ArgsRepr)
	require.Equal(t, sent.Headers.Origin, h.Origin)
	require.Equal(t, "kept", h.Extra["custom"])
	require.NoError(t, d.Ack())
}

// testConsumeSeveralQueues: one consumer receives the messages of every
// queue it consumes, each with its own queue as routing key.
func (s *suite) testConsumeSeveralQueues(t *testing.T) {
	b := s.open(t)
	qa, qb := unique(t, "tt-a"), unique(t, "tt-b")
	publish(t, b, qa, "a1", "a2")
	publish(t, b, qb, "b1")
	ds, _ := consume(t, b, 4, qa, qb)
	got := map[string]string{}
	for range 3 {
		d := next(t, ds)
		got[d.Message().Headers.ID] = d.Message().RoutingKey
		require.NoError(t, d.Ack())
	}
	require.Equal(t, map[string]string{"a1": qa, "a2": qa, "b1": qb}, got)
}

// testAck: an acknowledged message does not come back, not even to another
// consumer; settling it a second time is an error.
func (s *suite) testAck(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	publish(t, b, q, "acked")
	ds, stop := consume(t, b, 1, q)
	d := next(t, ds)
	require.Equal(t, "acked", d.Message().Headers.ID)
	require.NoError(t, d.Ack())
	require.Error(t, d.Ack(), "a second Ack")
	require.Error(t, d.Requeue(), "a Requeue after Ack")
	none(t, ds, "an acknowledged message came back")
	stop()
	drained(t, ds)

	ds2, _ := consume(t, s.open(t), 1, q)
	none(t, ds2, "an acknowledged message came back to another consumer")
	queueLength(t, b, q, 0)
}

// testRequeue: a requeued message is delivered again, marked redelivered,
// ahead of the messages published after it.
func (s *suite) testRequeue(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	publish(t, b, q, "first")
	ds, _ := consume(t, b, 1, q)
	d := next(t, ds)
	require.Equal(t, "first", d.Message().Headers.ID)
	require.False(t, d.Message().Redelivered)
	require.NoError(t, d.Requeue())

	again := next(t, ds)
	require.Equal(t, "first", again.Message().Headers.ID)
	require.True(t, again.Message().Redelivered, "a requeued message is marked redelivered")
	require.Equal(t, q, again.Message().RoutingKey)
	require.NoError(t, again.Ack())
	require.Error(t, d.Ack(), "the first delivery was settled by Requeue")
}

// testReject: a rejected message goes to the dead letters of its queue,
// with the reason, and is not delivered again.
func (s *suite) testReject(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	publish(t, b, q, "poison", "fine")
	ds, _ := consume(t, b, 1, q)
	d := next(t, ds)
	require.Equal(t, "poison", d.Message().Headers.ID)
	require.NoError(t, d.Reject("cannot decode arguments"))
	d = next(t, ds)
	require.Equal(t, "fine", d.Message().Headers.ID, "a rejected message is not delivered again")
	require.NoError(t, d.Ack())
	none(t, ds, "a rejected message came back")

	var dead []DeadLetter
	require.Eventually(t, func() bool {
		dead = s.h.DeadLetters(t, b, q)
		return len(dead) > 0
	}, wait, 20*time.Millisecond, "no dead letter for %s", q)
	require.Equal(t, []DeadLetter{{TaskID: "poison", Reason: "cannot decode arguments"}}, dead)
	queueLength(t, b, q, 0)
}

// testDelay: a deferred message stays in the broker, then reaches its
// queue; a message due in the past is delivered at once. A transport may
// move a message up to half its delay early (AMQP's wait queues have TTLs of
// powers of two seconds): the worker holds it for the rest, as the ETA
// header says.
func (s *suite) testDelay(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	ctx := ctxT(t, wait)
	const countdown = 1500 * time.Millisecond
	start := time.Now()
	require.NoError(t, b.Defer(ctx, q, taskMessage("later", 0), start.Add(countdown)))
	require.NoError(t, b.Defer(ctx, q, taskMessage("overdue", 0), start.Add(-time.Minute)))
	ds, _ := consume(t, b, 2, q)

	d := next(t, ds)
	require.Equal(t, "overdue", d.Message().Headers.ID)
	require.NoError(t, d.Ack())
	d = next(t, ds)
	elapsed := time.Since(start)
	require.Equal(t, "later", d.Message().Headers.ID)
	require.Equal(t, q, d.Message().RoutingKey)
	require.GreaterOrEqual(t, elapsed, countdown/2, "delivered long before it was due")
	require.NoError(t, d.Ack())
	none(t, ds, "a deferred message came twice")
}

// testPriority: among the ready messages of a queue, the transport's most
// urgent priority is delivered first (FIFO within one priority).
func (s *suite) testPriority(t *testing.T) {
	if s.h.Priority == FIFO {
		t.Skip("the transport ignores Message.Priority (Harness.Priority is FIFO)")
	}
	b := s.open(t)
	q := unique(t, "tt")
	ctx := ctxT(t, wait)
	for _, p := range []uint8{5, 0, 9, 0} {
		require.NoError(t, b.Publish(ctx, q, taskMessage(fmt.Sprintf("p%d-%s", p, driver.NewID()[:4]), p)))
	}
	queueLength(t, b, q, 4)
	ds, _ := consume(t, b, 1, q)
	var got []uint8
	for range 4 {
		d := next(t, ds)
		got = append(got, d.Message().Headers.ID[1]-'0')
		require.NoError(t, d.Ack())
	}
	want := []uint8{9, 5, 0, 0}
	if s.h.Priority == LowestFirst {
		want = []uint8{0, 0, 5, 9}
	}
	require.Equal(t, want, got)
}

// testPrefetch: a consumer holds at most prefetch unsettled deliveries; each
// settlement lets one more through.
func (s *suite) testPrefetch(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprint("m", i)
	}
	publish(t, b, q, ids...)
	ds, _ := consume(t, b, 3, q)
	held := []driver.Delivery{next(t, ds), next(t, ds), next(t, ds)}
	none(t, ds, "a 4th delivery with prefetch 3")
	require.NoError(t, held[0].Ack())
	held = append(held[1:], next(t, ds))
	none(t, ds, "a 5th delivery with prefetch 3 and one ack")
	require.NoError(t, held[0].Requeue())
	held = append(held[1:], next(t, ds))
	none(t, ds, "a delivery beyond prefetch after a requeue")
	require.NoError(t, held[0].Reject("test"))
	held = append(held[1:], next(t, ds))
	none(t, ds, "a delivery beyond prefetch after a reject")
	for _, d := range held {
		require.NoError(t, d.Ack())
	}
}

// testConsumerDies: the deliveries a consumer held when its broker went
// away without settling them are delivered again, marked redelivered, to
// another consumer.
func (s *suite) testConsumerDies(t *testing.T) {
	if s.h.InProcess {
		t.Skip("in-process transport: a consumer cannot die while the broker goes on")
	}
	q := unique(t, "tt")
	dying := s.open(t)
	publish(t, dying, q, "held1", "held2")
	ds, stop := consume(t, dying, 2, q)
	held := map[string]bool{next(t, ds).Message().Headers.ID: true, next(t, ds).Message().Headers.ID: true}
	require.Equal(t, map[string]bool{"held1": true, "held2": true}, held)
	stop()
	drained(t, ds)
	require.NoError(t, dying.Close(), "the consumer's broker closes with two unsettled deliveries")

	ds2, _ := consume(t, s.open(t), 2, q)
	got := map[string]bool{}
	for range 2 {
		d := next(t, ds2)
		require.True(t, d.Message().Redelivered, "%s is marked redelivered", d.Message().Headers.ID)
		got[d.Message().Headers.ID] = true
		require.NoError(t, d.Ack())
	}
	require.Equal(t, held, got)
}

// testQueueLength: QueueLength counts the ready messages of one queue: not
// those of other queues, not those delivered.
func (s *suite) testQueueLength(t *testing.T) {
	b := s.open(t)
	q, other := unique(t, "tt"), unique(t, "tt-other")
	publish(t, b, q, "l1", "l2", "l3")
	publish(t, b, other, "o1")
	queueLength(t, b, q, 3)
	queueLength(t, b, other, 1)
	ds, _ := consume(t, b, 3, q)
	var held []driver.Delivery
	for range 3 {
		held = append(held, next(t, ds))
	}
	queueLength(t, b, q, 0)
	require.NoError(t, held[0].Requeue())
	// The requeued message is ready again, or already delivered again.
	d := next(t, ds)
	require.Equal(t, held[0].Message().Headers.ID, d.Message().Headers.ID)
	for _, d := range append(held[1:], d) {
		require.NoError(t, d.Ack())
	}
	queueLength(t, b, q, 0)
	queueLength(t, b, other, 1)
}

// testClose: Close ends consumers and subscriptions (their channels close)
// and makes Publish fail.
func (s *suite) testClose(t *testing.T) {
	b := s.open(t)
	q := unique(t, "tt")
	ctx := ctxT(t, wait)
	publish(t, b, q, "c1")
	ds, err := b.Consume(ctx, []string{q}, 1)
	require.NoError(t, err)
	d := next(t, ds)
	require.NoError(t, d.Ack())
	events, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	control, err := b.ConsumeControl(ctx, unique(t, "node")+"@transporttest")
	require.NoError(t, err)
	replies, err := b.ConsumeReplies(ctx, driver.NewID())
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, b.Close())
	require.Less(t, time.Since(start), 5*time.Second, "Close returns promptly")
	drained(t, ds)
	closed(t, events, "SubscribeEvents")
	closed(t, control, "ConsumeControl")
	closed(t, replies, "ConsumeReplies")
	require.Error(t, b.Publish(ctx, q, taskMessage("after-close", 0)), "Publish after Close")
	_ = b.Close() // a second Close is harmless
}
