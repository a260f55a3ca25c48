package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
)

func TestBroker_EventsFanOut(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	ctx := context.Background()
	// Nobody listens: publishing is a no-op.
	require.NoError(t, b.PublishEvent(ctx, &driver.RawMessage{RoutingKey: "worker.heartbeat", Body: []byte("{}")}))

	c1, cancel1 := context.WithCancel(ctx)
	s1, err := b.SubscribeEvents(c1)
	require.NoError(t, err)
	c2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	s2, err := b.SubscribeEvents(c2)
	require.NoError(t, err)

	msg := &driver.RawMessage{ContentType: "application/json", RoutingKey: "task.succeeded",
		Headers: map[string]any{"hostname": "w@h"}, Body: []byte(`{"type": "task-succeeded"}`)}
	require.NoError(t, b.PublishEvent(ctx, msg))
	msg.Body[2] = 'X' // the publisher's buffer is not shared
	got1, got2 := <-s1, <-s2
	for _, g := range []*driver.RawMessage{got1, got2} {
		require.Equal(t, `{"type": "task-succeeded"}`, string(g.Body))
		require.Equal(t, "celeryev", g.Exchange)
		require.Equal(t, "task.succeeded", g.RoutingKey)
		require.Equal(t, "w@h", g.Headers["hostname"])
	}
	got1.Body[0] = '!'
	require.Equal(t, byte('{'), got2.Body[0], "each subscriber has its own copy")

	cancel1()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-s1:
			return !ok
		default:
			return false
		}
	}, time.Second, time.Millisecond, "the channel closes when ctx ends")
	require.NoError(t, b.PublishEvent(ctx, msg))
	require.NotNil(t, <-s2)

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.SubscribeEvents(done)
	require.Error(t, err)
	require.Error(t, b.PublishEvent(done, msg))
}

func TestBroker_SlowSubscriberLosesEventsNotPublisher(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := b.SubscribeEvents(ctx) // never read
	require.NoError(t, err)
	msg := &driver.RawMessage{RoutingKey: "task.started", Body: []byte("{}")}
	start := time.Now()
	for i := 0; i < memory.EventBuffer+10; i++ {
		require.NoError(t, b.PublishEvent(ctx, msg))
	}
	require.Less(t, time.Since(start), 5*time.Second)
	require.EqualValues(t, 10, b.DroppedEvents())
}

func TestBroker_URLsShareEvents(t *testing.T) {
	t.Parallel()
	name := "events-" + driver.NewID()
	a1, err := runtime.New(runtime.Config{Broker: "memory://" + name})
	require.NoError(t, err)
	a2, err := runtime.New(runtime.Config{Broker: "memory://" + name})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := a2.Broker().(driver.EventTransport).SubscribeEvents(ctx)
	require.NoError(t, err)
	require.NoError(t, a1.Broker().(driver.EventTransport).PublishEvent(ctx, &driver.RawMessage{RoutingKey: "worker.online", Body: []byte("{}")}))
	require.Equal(t, "worker.online", (<-sub).RoutingKey)
}
