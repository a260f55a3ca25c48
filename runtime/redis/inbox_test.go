package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
)

// An idle consumer blocks with BLMOVE into an inbox of its own, never with
// BRPOP, so that a message is never only in its memory. These tests drive
// the inbox's recovery paths by hand: a consumer that died between the move
// and the fetch, and one that closed cleanly.

func TestStaleInboxIsReturnedToItsQueue(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	c := b.Client()
	ctx := ctxT(t, 20*time.Second)
	for _, id := range []string{"m1", "m2", "m3"} {
		require.NoError(t, b.Publish(ctx, "ib", pubMsg(id, 0)))
	}
	// A consumer "dead" for an hour had moved m1 and m2 (the oldest) into
	// its inbox; a live one (registered now) holds m3.
	dead, live := p+"_taskgen.inbox.dead.ib", p+"_taskgen.inbox.live.ib"
	require.NoError(t, c.LMove(ctx, p+"ib", dead, "RIGHT", "LEFT").Err())
	require.NoError(t, c.LMove(ctx, p+"ib", dead, "RIGHT", "LEFT").Err())
	require.NoError(t, c.LMove(ctx, p+"ib", live, "RIGHT", "LEFT").Err())
	old := strconv.FormatFloat(float64(time.Now().Add(-time.Hour).UnixMicro())/1e6, 'f', 6, 64)
	now := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	require.NoError(t, c.HSet(ctx, p+"_taskgen.inboxes", dead, old+"|"+p+"ib", live, now+"|"+p+"ib").Err())
	require.Zero(t, c.LLen(ctx, p+"ib").Val())

	n, err := b.RestoreVisible(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "the stale inbox's two messages go back")
	require.Zero(t, c.Exists(ctx, dead).Val())
	require.EqualValues(t, 1, c.LLen(ctx, live).Val(), "a fresh registration is left alone")
	reg := c.HGetAll(ctx, p+"_taskgen.inboxes").Val()
	require.NotContains(t, reg, dead)
	require.Contains(t, reg, live)

	// Back at the front, oldest first, not marked redelivered (they were
	// never delivered).
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"ib"}, 1)
	require.NoError(t, err)
	for _, want := range []string{"m1", "m2"} {
		d := <-ds
		require.NoError(t, d.DecodeError())
		require.Equal(t, want, d.Message().Headers.ID)
		require.False(t, d.Message().Redelivered)
		require.NoError(t, d.Ack())
	}
}

func TestConsumerLeavesNoInboxBehind(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "poll_timeout=100ms")
	b := openBroker(t, raw)
	p := b.Options().GlobalKeyPrefix
	c := b.Client()
	ctx := ctxT(t, 20*time.Second)
	cctx, cancel := context.WithCancel(ctx)
	ds, err := b.Consume(cctx, []string{"ia", "ib"}, 4)
	require.NoError(t, err)
	// Idle long enough for the blockers to register and poll.
	require.Eventually(t, func() bool { return c.HLen(ctx, p+"_taskgen.inboxes").Val() == 2 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, b.Publish(ctx, "ib", pubMsg("x", 0)))
	d := <-ds
	require.Equal(t, "x", d.Message().Headers.ID)
	require.NoError(t, d.Ack())
	cancel()
	for range ds {
	}
	require.NoError(t, b.Close())
	require.Zero(t, c.HLen(context.Background(), p+"_taskgen.inboxes").Val(), "registrations removed at close")
	keys := c.Keys(context.Background(), p+"_taskgen.inbox.*").Val()
	require.Empty(t, keys)
}

// An idle consumer of several queues gets a message on any of them (each
// queue has a blocker), and a message on a priority list within a poll;
// from then on it blocks on that priority list too.
func TestIdleConsumerSeesEveryQueueAndPriority(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", "poll_timeout=200ms"))
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 20*time.Second)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"q1", "q2", "q3"}, 4)
	require.NoError(t, err)
	recv := func() *driver.Message {
		select {
		case d := <-ds:
			require.NoError(t, d.DecodeError())
			require.NoError(t, d.Ack())
			return d.Message()
		case <-ctx.Done():
			t.Fatal("nothing delivered")
			return nil
		}
	}
	for _, tc := range []struct {
		queue string
		prio  uint8
	}{{"q3", 0}, {"q2", 0}, {"q1", 0}, {"q2", 7}, {"q3", 0}} {
		time.Sleep(50 * time.Millisecond) // let the consumer go idle again
		id := tc.queue + "-" + strconv.Itoa(int(tc.prio))
		require.NoError(t, b.Publish(ctx, tc.queue, pubMsg(id, tc.prio)))
		m := recv()
		require.Equal(t, id, m.Headers.ID)
		require.Equal(t, tc.queue, m.RoutingKey)
	}
	// q2's priority-6 list got a blocker of its own: 3 queues + 1.
	require.Eventually(t, func() bool { return b.Client().HLen(ctx, p+"_taskgen.inboxes").Val() == 4 }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, strings.Join(b.Client().HVals(ctx, p+"_taskgen.inboxes").Val(), " "), "q2\x06\x166")
}

// Once a queue's priority list has a blocker, an idle consumer sees its
// messages before a poll ends: with poll_timeout=30s, a priority message
// published while the consumer is idle arrives although no poll ends
// during the test.
func TestPriorityListGetsABlocker(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", "poll_timeout=30s"))
	ctx := ctxT(t, 20*time.Second)
	require.NoError(t, b.Publish(ctx, "pb", pubMsg("first", 9))) // found by the first fetch
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"pb"}, 4)
	require.NoError(t, err)
	d := <-ds
	require.Equal(t, "first", d.Message().Headers.ID)
	require.NoError(t, d.Ack())
	for i := range 3 {
		time.Sleep(100 * time.Millisecond) // idle: blocked on lists 0 and 9
		id := "prio-" + strconv.Itoa(i)
		require.NoError(t, b.Publish(ctx, "pb", pubMsg(id, 9)))
		wait, stop := context.WithTimeout(ctx, 10*time.Second) // a third of the poll
		select {
		case d := <-ds:
			require.Equal(t, id, d.Message().Headers.ID)
			require.NoError(t, d.Ack())
		case <-wait.Done():
			t.Fatalf("priority message %d not delivered before a poll ended", i)
		}
		stop()
	}
}

// Blocked consumers do not hold the connections publishers and fetches
// need: 40 idle queues on a client pool of 4 connections.
func TestManyIdleQueuesLeaveThePoolFree(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", "pool_size=4&poll_timeout=2s"))
	ctx := ctxT(t, 20*time.Second)
	queues := make([]string, 40)
	for i := range queues {
		queues[i] = "many" + strconv.Itoa(i)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, queues, 8)
	require.NoError(t, err)
	p := b.Options().GlobalKeyPrefix
	require.Eventually(t, func() bool { return b.Client().HLen(ctx, p+"_taskgen.inboxes").Val() == 40 }, 10*time.Second, 20*time.Millisecond)
	for _, q := range []string{"many39", "many0", "many17"} {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		require.NoError(t, b.Publish(pctx, q, pubMsg(q, 0)), "publish while 40 consumers block")
		pcancel()
		d := <-ds
		require.Equal(t, q, d.Message().Headers.ID)
		require.NoError(t, d.Ack())
	}
}

// An idle consumer hands a message over before its unacked entry is
// written; an Ack, Requeue or Reject that comes first is applied once the
// entry is written. Whatever the order, nothing is left behind.
func TestHandOffBeforeRecordSettlesInOrder(t *testing.T) {
	t.Parallel()
	b := openBroker(t, testURL(t, "", ""))
	p := b.Options().GlobalKeyPrefix
	c := b.Client()
	ctx := ctxT(t, 60*time.Second)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"ho"}, 4)
	require.NoError(t, err)
	idle := func() { time.Sleep(20 * time.Millisecond) } // the consumer blocks again
	const n = 60
	for i := range n {
		idle()
		id := "ho-" + strconv.Itoa(i)
		require.NoError(t, b.Publish(ctx, "ho", pubMsg(id, 0)))
		d := <-ds
		require.Equal(t, id, d.Message().Headers.ID)
		switch i % 3 {
		case 0:
			require.NoError(t, d.Ack())
		case 1:
			require.NoError(t, d.Requeue())
			d2 := <-ds
			require.Equal(t, id, d2.Message().Headers.ID)
			require.True(t, d2.Message().Redelivered)
			require.NoError(t, d2.Ack())
		case 2:
			require.NoError(t, d.Reject("test"))
		}
	}
	// The last Reject returns before its record is written (it settles
	// when the record lands), so the dead-letter list is waited for too: an
	// empty unacked hash alone may be the moment before that record.
	require.Eventually(t, func() bool {
		return c.LLen(ctx, p+b.DeadLetterList("ho")).Val() == n/3 &&
			c.HLen(ctx, p+"unacked").Val() == 0 && indexTags(ctx, c, p) == 0
	}, 10*time.Second, 20*time.Millisecond, "every reject dead-lettered and no unacked entry left")
	time.Sleep(100 * time.Millisecond) // nothing more arrives late
	require.EqualValues(t, n/3, c.LLen(ctx, p+b.DeadLetterList("ho")).Val())
	require.Zero(t, c.HLen(ctx, p+"unacked").Val())
	require.Zero(t, c.LLen(ctx, p+"ho").Val())
}

// An ACL user without CLIENT commands can still consume: the consumer
// blocks without CLIENT ID (and so stops within poll_timeout, not at once).
func TestConsumeWithoutClientPermission(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t, "user app on >app-pw ~* &* +@all -client")
	raw := strings.Replace(srv.URL(), "redis://", "redis://app:app-pw@", 1) + "?poll_timeout=200ms"
	b := openBroker(t, raw)
	require.Error(t, b.Client().ClientID(context.Background()).Err(), "the ACL must refuse CLIENT ID")
	ctx := ctxT(t, 20*time.Second)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ds, err := b.Consume(cctx, []string{"acl"}, 4)
	require.NoError(t, err)
	for i := range 3 {
		time.Sleep(50 * time.Millisecond) // idle, blocked
		id := "acl-" + strconv.Itoa(i)
		require.NoError(t, b.Publish(ctx, "acl", pubMsg(id, 0)))
		select {
		case d := <-ds:
			require.Equal(t, id, d.Message().Headers.ID)
			require.NoError(t, d.Ack())
		case <-ctx.Done():
			t.Fatal("nothing delivered")
		}
	}
}
