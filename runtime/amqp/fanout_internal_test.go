package amqp

import (
	"context"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
)

func eventMsg(host string) *driver.RawMessage {
	return &driver.RawMessage{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8",
		Headers: map[string]any{"hostname": host}, Body: []byte(`{"type": "worker-heartbeat", "hostname": "` + host + `"}`),
		Exchange: driver.EventExchange, RoutingKey: "worker.heartbeat"}
}

// awaitHost publishes with publish every 100 ms until a message whose
// hostname header is host arrives on ch.
func awaitHost(t *testing.T, ch <-chan *driver.RawMessage, host string, publish func() error) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	_ = publish()
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "subscription closed")
			if m.Headers["hostname"] == host {
				return
			}
		case <-tick.C:
			_ = publish()
		case <-deadline:
			t.Fatalf("no message from %s", host)
		}
	}
}

func liveConn(t *testing.T, l *link) *linkConn {
	t.Helper()
	c, err := l.get(context.Background(), false)
	require.NoError(t, err)
	return c
}

// TestFanout_ConnectionLoss: subscriptions keep their channel across the
// loss of the fanout connections and resume; publishing reconnects.
func TestFanout_ConnectionLoss(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	b := testBroker(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := uniqueQueue("loss") + "@test"
	events, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	control, err := b.ConsumeControl(ctx, node)
	require.NoError(t, err)
	host := uniqueQueue("h1")
	awaitHost(t, events, host, func() error { return b.PublishEvent(ctx, eventMsg(host)) })

	for round := 0; round < 2; round++ {
		// The consumer connection dies, then the publisher's.
		l := b.fan.sub
		if round == 1 {
			l = b.fan.pub
		}
		c := liveConn(t, l)
		require.NoError(t, c.conn.Close())
		<-c.dead
		host := uniqueQueue("h2")
		awaitHost(t, events, host, func() error { return b.PublishEvent(ctx, eventMsg(host)) })
		ctlHost := uniqueQueue("c")
		awaitHost(t, control, ctlHost, func() error {
			return b.PublishControl(ctx, &driver.RawMessage{ContentType: driver.ContentTypeJSON, Headers: map[string]any{"hostname": ctlHost}, Body: []byte(`{}`)})
		})
	}

	// Close ends the subscriptions.
	require.NoError(t, b.Close())
	for range events {
	}
	for range control {
	}
	require.ErrorIs(t, b.PublishEvent(ctx, eventMsg(host)), errClosed)
}

// TestFanout_ChannelErrorsIsolated: a 406 (an exchange or queue declared
// otherwise) or 404 (an exchange deleted) on fanout traffic neither fails
// the fanout call for good nor touches task consumption.
func TestFanout_ChannelErrorsIsolated(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	b := testBroker(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := uniqueQueue("tg.iso")
	conn, err := amqp.Dial(raw)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(q, false, false, false)
		_ = ch.ExchangeDelete(q, false, false)
	})
	tasks, err := b.Consume(ctx, []string{q}, 4)
	require.NoError(t, err)
	roundTrip := func(id string) {
		require.NoError(t, b.Publish(ctx, q, testMessage(id)))
		select {
		case d := <-tasks:
			require.Equal(t, id, d.Message().Headers.ID)
			require.NoError(t, d.Ack())
		case <-ctx.Done():
			t.Fatal("task consumption stopped")
		}
	}
	roundTrip("before")

	// 406: the reply exchange exists as a durable fanout.
	ex := uniqueQueue("tg.iso.x")
	require.NoError(t, ch.ExchangeDeclare(ex, amqp.ExchangeFanout, true, false, false, false, nil))
	defer ch.ExchangeDelete(ex, false, false)
	capQ := uniqueQueue("tg.iso.cap")
	_, err = ch.QueueDeclare(capQ, false, true, true, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(capQ, "", ex, false, nil))
	reply := &driver.RawMessage{ContentType: driver.ContentTypeJSON, Headers: map[string]any{"ticket": "t", "clock": 1}, Body: []byte(`{"n": {"ok": "pong"}}`)}
	require.NoError(t, b.Reply(ctx, ex, "k", reply))
	d := getMessage(t, ch, capQ)
	require.Equal(t, reply.Body, d.Body)
	roundTrip("after-406")

	// 404: the exchange is deleted after it was declared; the next reply
	// (asynchronously refused) closes the channel, later ones declare again.
	require.NoError(t, ch.ExchangeDelete(ex, false, false))
	require.NoError(t, b.Reply(ctx, ex, "k", reply))
	require.Eventually(t, func() bool {
		if err := b.Reply(ctx, ex, "k", reply); err != nil {
			return false
		}
		// A channel of its own: binding to an exchange not declared again
		// yet is a 404 that closes it.
		rch, err := conn.Channel()
		require.NoError(t, err)
		defer rch.Close()
		if rch.QueueBind(capQ, "k", ex, false, nil) != nil {
			return false
		}
		_ = b.Reply(ctx, ex, "k", reply)
		time.Sleep(20 * time.Millisecond)
		m, ok, err := rch.Get(capQ, true)
		return err == nil && ok && string(m.Body) == string(reply.Body)
	}, 10*time.Second, 50*time.Millisecond)
	roundTrip("after-404")

	// 406 on a subscription: a control queue that exists with other
	// arguments is used as it is.
	node := uniqueQueue("iso") + "@test"
	_, err = ch.QueueDeclare(node+ControlQueueSuffix, false, false, false, false, nil)
	require.NoError(t, err)
	defer ch.QueueDelete(node+ControlQueueSuffix, false, false, false)
	ctl, err := b.ConsumeControl(ctx, node)
	require.NoError(t, err)
	host := uniqueQueue("h")
	awaitHost(t, ctl, host, func() error {
		return b.PublishControl(ctx, &driver.RawMessage{ContentType: driver.ContentTypeJSON, Headers: map[string]any{"hostname": host}, Body: []byte(`{}`)})
	})
	roundTrip("after-subscription-406")
}

func getMessage(t *testing.T, ch *amqp.Channel, q string) amqp.Delivery {
	t.Helper()
	var d amqp.Delivery
	require.Eventually(t, func() bool {
		m, ok, err := ch.Get(q, true)
		d = m
		return err == nil && ok
	}, 10*time.Second, 20*time.Millisecond)
	return d
}

// TestFanout_PublishEventFailsFast: while the broker is unreachable, events
// fail at once instead of each waiting for a connection attempt.
func TestFanout_PublishEventFailsFast(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("amqp://guest:guest@127.0.0.1:1/")
	require.NoError(t, err)
	b, err := New(u, driver.TransportOptions{Hostname: "test@fast", ConnectTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer b.Close()
	ctx := context.Background()
	require.Error(t, b.PublishEvent(ctx, eventMsg("x")))
	start := time.Now()
	for range 100 {
		require.Error(t, b.PublishEvent(ctx, eventMsg("x")))
	}
	require.Less(t, time.Since(start), 50*time.Millisecond)
}
