package transporttest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Time limits of the suite: wait is how long an expected message may take,
// quiet how long the suite watches for one that must not come.
const (
	wait  = 10 * time.Second
	quiet = 300 * time.Millisecond
)

// transport is what the suite needs of a broker.
type transport interface {
	driver.Broker
	driver.Delayer
	driver.QueueInspector
	driver.EventTransport
	driver.ControlTransport
}

// open opens a broker with open, checks it has every interface and closes
// it at the end of the test.
func open(t *testing.T, open func(*testing.T) driver.Broker) transport {
	t.Helper()
	b := open(t)
	require.NotNil(t, b, "Open returned no broker")
	t.Cleanup(func() { _ = b.Close() })
	tr, ok := b.(transport)
	require.True(t, ok, "%T must implement driver.Delayer, QueueInspector, EventTransport and ControlTransport", b)
	return tr
}

func (s *suite) open(t *testing.T) transport {
	t.Helper()
	return open(t, s.h.Open)
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// unique returns a name unique to the test and the run: prefix, the test's
// name and a random id.
func unique(t *testing.T, prefix string) string {
	name := strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-")
	return prefix + "." + name + "." + driver.NewID()[:8]
}

// ctxT returns a context ended at the end of the test or after d.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// taskMessage returns a JSON task message with id and priority.
func taskMessage(id string, priority uint8) *driver.Message {
	return &driver.Message{
		ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
		CorrelationID: id, DeliveryMode: 2, Priority: priority,
		Headers: driver.TaskHeaders{Lang: "go", Task: "tasks.add", ID: id, RootID: id,
			ArgsRepr: "(1, 2)", KwargsRepr: "{}", Origin: "gen1@transporttest"},
		Body: []byte(`[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
	}
}

// publish publishes task messages with ids to queue.
func publish(t *testing.T, b driver.Broker, queue string, ids ...string) {
	t.Helper()
	ctx := ctxT(t, wait)
	for _, id := range ids {
		require.NoError(t, b.Publish(ctx, queue, taskMessage(id, 0)), "publish %s", id)
	}
}

// consume consumes queues with prefetch until the test ends, or until stop
// is called.
func consume(t *testing.T, b driver.Broker, prefetch int, queues ...string) (ds <-chan driver.Delivery, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ds, err := b.Consume(ctx, queues, prefetch)
	require.NoError(t, err)
	return ds, cancel
}

// next returns the next delivery, failing the test if none comes in time.
func next(t *testing.T, ds <-chan driver.Delivery) driver.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		require.True(t, ok, "the delivery channel closed")
		require.NoError(t, d.DecodeError())
		require.NotNil(t, d.Message())
		return d
	case <-time.After(wait):
		t.Fatalf("no delivery within %v", wait)
		return nil
	}
}

// none fails the test if a delivery comes within quiet.
func none(t *testing.T, ds <-chan driver.Delivery, why string) {
	t.Helper()
	select {
	case d, ok := <-ds:
		if ok {
			t.Fatalf("%s: got %s", why, d.Message().Headers.ID)
		}
	case <-time.After(quiet):
	}
}

// drained waits until ds is closed, settling nothing.
func drained(t *testing.T, ds <-chan driver.Delivery) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-ds:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the delivery channel did not close within %v", wait)
		}
	}
}

// queueLength waits until queue has n ready messages.
func queueLength(t *testing.T, b driver.QueueInspector, queue string, n int64) {
	t.Helper()
	ctx := ctxT(t, wait)
	var got int64
	var err error
	require.Eventually(t, func() bool {
		got, err = b.QueueLength(ctx, queue)
		return err == nil && got == n
	}, wait, 10*time.Millisecond, "QueueLength(%s): want %d", queue, n)
	_ = got
}

// recvRaw returns the next fan-out message for which match is true,
// skipping the others (other tests share the exchanges).
func recvRaw(t *testing.T, ch <-chan *driver.RawMessage, match func(*driver.RawMessage) bool) *driver.RawMessage {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "the channel closed")
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no matching message within %v", wait)
			return nil
		}
	}
}

// noRaw fails the test if a message for which match is true comes within
// quiet.
func noRaw(t *testing.T, ch <-chan *driver.RawMessage, match func(*driver.RawMessage) bool, why string) {
	t.Helper()
	deadline := time.After(quiet)
	for {
		select {
		case m, ok := <-ch:
			if ok && match(m) {
				t.Fatalf("%s: got %s", why, m.Body)
			}
			if !ok {
				return
			}
		case <-deadline:
			return
		}
	}
}

// closed waits until ch is closed.
func closed(t *testing.T, ch <-chan *driver.RawMessage, what string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: the channel did not close within %v", what, wait)
		}
	}
}

// until calls publish every 100 ms until a message matching match comes on
// ch, and returns it: subscriptions of some transports take effect shortly
// after they return.
func until(t *testing.T, ch <-chan *driver.RawMessage, match func(*driver.RawMessage) bool, publish func() error) *driver.RawMessage {
	t.Helper()
	return untilWithin(t, wait, ch, match, publish)
}

// untilWithin is until with a time limit of within.
func untilWithin(t *testing.T, within time.Duration, ch <-chan *driver.RawMessage, match func(*driver.RawMessage) bool, publish func() error) *driver.RawMessage {
	t.Helper()
	deadline := time.After(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	_ = publish()
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "the channel closed")
			if match(m) {
				return m
			}
		case <-tick.C:
			_ = publish()
		case <-deadline:
			t.Fatalf("no matching message within %v", within)
			return nil
		}
	}
}

// bodyIs matches the messages whose body is body.
func bodyIs(body string) func(*driver.RawMessage) bool {
	return func(m *driver.RawMessage) bool { return string(m.Body) == body }
}
