package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
)

func testBroker(t *testing.T, raw string) *Broker {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	b, err := New(u, driver.TransportOptions{Hostname: "test@reconnect", ConnectTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func testMessage(id string) *driver.Message {
	return &driver.Message{ContentType: driver.ContentTypeJSON, ContentEncoding: "utf-8", CorrelationID: id,
		Body: []byte(`[[], {}, null]`), Headers: driver.TaskHeaders{Lang: "go", Task: "t", ID: id}}
}

func uniqueQueue(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "." + hex.EncodeToString(b[:])
}

// TestConsume_ConnectionLoss kills the consumer's connection under a held
// delivery: its Ack fails without crashing, the consumer reconnects on the
// same delivery channel and RabbitMQ redelivers the message.
func TestConsume_ConnectionLoss(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := uniqueQueue("tg.connloss")
	b := testBroker(t, raw)
	t.Cleanup(func() {
		if s, err := b.session(context.Background()); err == nil {
			_ = s.withAdmin(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds, err := b.Consume(ctx, []string{q}, 4)
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, q, testMessage("m1")))
	d1 := (<-ds).(*delivery)
	require.Equal(t, "m1", d1.Message().Headers.ID)
	require.False(t, d1.Message().Redelivered)

	require.NoError(t, d1.g.conn.Close()) // the network "dies"
	<-d1.g.closed
	require.ErrorIs(t, d1.Ack(), errConnLost)

	var d2 driver.Delivery
	select {
	case d2 = <-ds:
	case <-time.After(10 * time.Second):
		t.Fatal("not redelivered after reconnecting")
	}
	require.Equal(t, "m1", d2.Message().Headers.ID)
	require.True(t, d2.Message().Redelivered)
	require.NoError(t, d2.Ack())
	// The new connection consumes new messages too.
	require.NoError(t, b.Publish(ctx, q, testMessage("m2")))
	d3 := <-ds
	require.Equal(t, "m2", d3.Message().Headers.ID)
	require.NoError(t, d3.Ack())
	cancel()
	for range ds {
	}
}

// TestPublish_ConnectionLossRetried: a publisher connection lost between
// two publishes is replaced transparently.
func TestPublish_ConnectionLossRetried(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := uniqueQueue("tg.publoss")
	b := testBroker(t, raw)
	ctx := t.Context()
	require.NoError(t, b.Publish(ctx, q, testMessage("a")))
	s, err := b.session(ctx)
	require.NoError(t, err)
	require.NoError(t, s.conn.Close())
	require.NoError(t, b.Publish(ctx, q, testMessage("b")))
	n, err := b.QueueLength(ctx, q)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	s, err = b.session(ctx)
	require.NoError(t, err)
	require.NoError(t, s.withAdmin(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err }))
}

// TestPublish_Unreachable: an outage makes Publish fail within its bound,
// without the password in the error.
func TestPublish_Unreachable(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("amqp://user:s3cret@127.0.0.1:1/v?connect_timeout=1")
	b, err := New(u, driver.TransportOptions{ConnectTimeout: 700 * time.Millisecond})
	require.NoError(t, err)
	defer b.Close()
	start := time.Now()
	err = b.Publish(context.Background(), "q", testMessage("x")) // no deadline: ConnectTimeout bounds it
	require.Error(t, err)
	require.Less(t, time.Since(start), 3*time.Second)
	require.NotContains(t, err.Error(), "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	require.Error(t, b.Publish(ctx, "q", testMessage("x")))
	require.Less(t, time.Since(start), 2*time.Second)
	require.NoError(t, b.Close())
	require.ErrorIs(t, b.Publish(context.Background(), "q", testMessage("x")), errClosed)
}
