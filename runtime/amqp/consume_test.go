package amqp

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
)

func TestSplitPrefetch(t *testing.T) {
	t.Parallel()
	require.Equal(t, []int{3, 2}, splitPrefetch(5, 2))
	require.Equal(t, []int{16, 16}, splitPrefetch(32, 2))
	require.Equal(t, []int{1, 1, 1}, splitPrefetch(3, 3))
	require.Equal(t, []int{7}, splitPrefetch(7, 1))
}

// recv returns the next delivery of ds, failing after within.
func recv(t *testing.T, ds <-chan driver.Delivery, within time.Duration) *delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		require.True(t, ok, "delivery channel closed")
		return d.(*delivery)
	case <-time.After(within):
		t.Fatal("no delivery")
		return nil
	}
}

// TestConsume_TwoConnections: with consume_connections=2 one Consume holds
// two consumers on the queue, on two connections, which together never hold
// more than prefetch un-acknowledged messages (split 3 + 2). Killing one
// connection fails the Ack of its deliveries and RabbitMQ redelivers them
// (to either connection), while the other connection's deliveries are still
// acknowledged; every message is processed, and cancelling leaves no
// consumer and no message behind.
func TestConsume_TwoConnections(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	qv := u.Query()
	qv.Set("consume_connections", "2")
	u.RawQuery = qv.Encode()
	b := testBroker(t, u.String())
	require.Equal(t, 2, b.opts.ConsumeConnections)
	q := uniqueQueue("tg.twoconns")
	admin := func(fn func(ch *amqp.Channel) error) {
		t.Helper()
		s, err := b.session(context.Background())
		require.NoError(t, err)
		require.NoError(t, s.withAdmin(fn))
	}
	t.Cleanup(func() {
		if s, err := b.session(context.Background()); err == nil {
			_ = s.withAdmin(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const prefetch, total = 5, 40
	ds, err := b.Consume(ctx, []string{q}, prefetch)
	require.NoError(t, err)
	admin(func(ch *amqp.Channel) error {
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		require.Equal(t, 2, st.Consumers)
		return err
	})
	for i := range total {
		require.NoError(t, b.Publish(ctx, q, testMessage(fmt.Sprint("m", i))))
	}

	// Prefetch is honoured in total: prefetch deliveries, then nothing.
	held := map[*gen][]*delivery{}
	for range prefetch {
		d := recv(t, ds, 10*time.Second)
		held[d.g] = append(held[d.g], d)
	}
	select {
	case d := <-ds:
		t.Fatalf("delivery %s beyond the prefetch of %d", d.Message().Headers.ID, prefetch)
	case <-time.After(500 * time.Millisecond):
	}
	require.Len(t, held, 2, "both connections deliver")
	var gens []*gen
	for g, dd := range held {
		gens = append(gens, g)
		require.LessOrEqual(t, len(dd), 3)
	}
	require.True(t, gens[0].conn != gens[1].conn, "two connections")

	seen := map[string]int{}
	dead, alive := gens[0], gens[1]
	require.NoError(t, dead.conn.Close()) // the network "dies" for one connection
	<-dead.closed
	for _, d := range held[dead] {
		require.ErrorIs(t, d.Ack(), errConnLost)
	}
	for _, d := range held[alive] {
		require.NoError(t, d.Ack())
		seen[d.Message().Headers.ID]++
	}
	redelivered := 0
	for len(seen) < total {
		d := recv(t, ds, 15*time.Second)
		m := d.Message()
		require.NotNil(t, m, d.DecodeError())
		if m.Redelivered {
			redelivered++
		}
		seen[m.Headers.ID]++
		require.NoError(t, d.Ack())
	}
	require.GreaterOrEqual(t, redelivered, len(held[dead]))
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
	cancel()
	for range ds {
	}
	require.Eventually(t, func() bool {
		var st amqp.Queue
		admin(func(ch *amqp.Channel) error {
			var err error
			st, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		})
		b.mu.Lock()
		defer b.mu.Unlock()
		return st.Consumers == 0 && st.Messages == 0 && len(b.consumers) == 0
	}, 10*time.Second, 50*time.Millisecond)
}
