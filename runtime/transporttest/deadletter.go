package transporttest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// RunDeadLetterStore checks a transport's [driver.DeadLetterStore] and
// [driver.QueuePurger]: messages rejected by a consumer are listed (newest
// first, with task name, id, queue, reason and time), counted, requeued to
// their queue (and delivered again) or dropped, and a purge empties a queue.
func RunDeadLetterStore(t *testing.T, openBroker func(*testing.T) driver.Broker) {
	b := openBroker(t)
	t.Cleanup(func() { _ = b.Close() })
	store, ok := b.(driver.DeadLetterStore)
	require.True(t, ok, "%T must implement driver.DeadLetterStore", b)
	purger, ok := b.(driver.QueuePurger)
	require.True(t, ok, "%T must implement driver.QueuePurger", b)
	qi := b.(driver.QueueInspector)
	ctx := ctxT(t, 60*time.Second)
	queue := unique(t, "dl")
	before := time.Now().Add(-time.Second)

	publish(t, b, queue, "dl-a", "dl-b", "dl-c")
	ds, stop := consume(t, b, 1, queue)
	for _, id := range []string{"dl-a", "dl-b", "dl-c"} {
		d := next(t, ds)
		require.Equal(t, id, d.Message().Headers.ID)
		require.NoError(t, d.Reject("unregistered task "+id))
	}
	// Wait until the consumer has stopped and given back what it took but
	// did not hand over, so the counts below see the queue as it left it.
	stop()
	drained(t, ds)

	n, err := store.CountDeadLetters(ctx, queue)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	got, err := store.ListDeadLetters(ctx, queue, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	var ids []string
	for _, dl := range got {
		ids = append(ids, dl.ID)
		require.Equal(t, "tasks.add", dl.Task)
		require.Equal(t, queue, dl.Queue)
		require.Equal(t, "unregistered task "+dl.ID, dl.Reason)
		require.NotNil(t, dl.Message)
		require.True(t, dl.Time.After(before), "time %v", dl.Time)
	}
	require.Equal(t, []string{"dl-c", "dl-b", "dl-a"}, ids, "newest first")
	got, err = store.ListDeadLetters(ctx, queue, 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "dl-c", got[0].ID)
	n, err = store.CountDeadLetters(ctx, queue)
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "listing leaves them in place")

	moved, err := store.RequeueDeadLetters(ctx, queue, []string{"dl-a", "no-such-id"})
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	l, err := qi.QueueLength(ctx, queue)
	require.NoError(t, err)
	require.EqualValues(t, 1, l)
	ds, stop = consume(t, b, 1, queue)
	d := next(t, ds)
	require.Equal(t, "dl-a", d.Message().Headers.ID)
	require.Equal(t, "tasks.add", d.Message().Headers.Task)
	require.NoError(t, d.Ack())
	stop()
	drained(t, ds)

	dropped, err := store.DropDeadLetters(ctx, queue, []string{"dl-b"})
	require.NoError(t, err)
	require.Equal(t, 1, dropped)
	got, err = store.ListDeadLetters(ctx, queue, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "dl-c", got[0].ID)

	empty, err := store.CountDeadLetters(ctx, unique(t, "never"))
	require.NoError(t, err)
	require.Zero(t, empty)

	publish(t, b, queue, "p-1", "p-2")
	purged, err := purger.PurgeQueue(ctx, queue)
	require.NoError(t, err)
	require.EqualValues(t, 2, purged)
	l, err = qi.QueueLength(ctx, queue)
	require.NoError(t, err)
	require.Zero(t, l)
}
