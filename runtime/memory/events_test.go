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

// TestBroker_EventsWithoutSubscribers: publishing with nobody subscribed is
// a no-op, and an ended ctx is refused. The fan-out itself is tested by the
// conformance suite.
func TestBroker_EventsWithoutSubscribers(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	msg := &driver.RawMessage{RoutingKey: "worker.heartbeat", Body: []byte("{}")}
	require.NoError(t, b.PublishEvent(context.Background(), msg))

	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.SubscribeEvents(done)
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
