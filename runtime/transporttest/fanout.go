package transporttest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// The events and control exchanges are shared by every client of a server:
// the fan-out tests tell their own traffic apart by a hostname header, node
// names and bodies unique to the test.

// subscribe subscribes b to events until the returned cancel or the end of
// the test.
func subscribe(t *testing.T, b driver.EventTransport) (<-chan *driver.RawMessage, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := b.SubscribeEvents(ctx)
	require.NoError(t, err)
	return ch, cancel
}

// event returns an event message of hostname with body.
func event(hostname, routingKey, body string) *driver.RawMessage {
	return &driver.RawMessage{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
		Headers: map[string]any{"hostname": hostname}, Body: []byte(body), RoutingKey: routingKey}
}

// testEvents: an event reaches every subscriber of every broker, with its
// body, headers, content type, routing key and the celeryev exchange, each
// subscriber with a copy of its own; a subscription ends, closing its
// channel, when its ctx ends.
func (s *suite) testEvents(t *testing.T) {
	pub, b1, b2 := s.open(t), s.open(t), s.open(t)
	host := unique(t, "host") + "@transporttest"
	sub1, cancel1 := subscribe(t, b1)
	sub2, _ := subscribe(t, b2)
	ctx := ctxT(t, wait)
	ready := fmt.Sprintf(`{"type": "worker-heartbeat", "hostname": %q}`, host)
	for _, sub := range []<-chan *driver.RawMessage{sub1, sub2} {
		until(t, sub, bodyIs(ready), func() error { return pub.PublishEvent(ctx, event(host, "worker.heartbeat", ready)) })
	}

	body := fmt.Sprintf(`{"type": "task-succeeded", "hostname": %q, "result": "5"}`, host)
	msg := event(host, "task.succeeded", body)
	require.NoError(t, pub.PublishEvent(ctx, msg))
	msg.Body[0] = 'X' // the subscribers do not share the publisher's buffer
	var got []*driver.RawMessage
	for _, sub := range []<-chan *driver.RawMessage{sub1, sub2} {
		m := recvRaw(t, sub, bodyIs(body))
		require.Equal(t, driver.ContentTypeJSON, m.ContentType)
		require.Equal(t, driver.ContentEncodingUTF8, m.ContentEncoding)
		require.Equal(t, host, m.Headers["hostname"])
		require.Equal(t, driver.EventExchange, m.Exchange)
		require.Equal(t, "task.succeeded", m.RoutingKey)
		got = append(got, m)
	}
	got[0].Body[0] = '!'
	require.Equal(t, byte('{'), got[1].Body[0], "each subscriber has its own copy")

	// A list of task events, as Celery batches them.
	multi := fmt.Sprintf(`[{"type": "task-received", "hostname": %q}, {"type": "task-started", "hostname": %q}]`, host, host)
	require.NoError(t, pub.PublishEvent(ctx, event(host, "task.multi", multi)))
	require.Equal(t, "task.multi", recvRaw(t, sub2, bodyIs(multi)).RoutingKey)

	cancel1()
	closed(t, sub1, "SubscribeEvents after its ctx ended")
	last := fmt.Sprintf(`{"type": "worker-offline", "hostname": %q}`, host)
	require.NoError(t, pub.PublishEvent(ctx, event(host, "worker.offline", last)))
	recvRaw(t, sub2, bodyIs(last))
}

// testControl: a control request broadcast with PublishControl reaches the
// control consumer of every node, with its body, headers and the
// celery.pidbox exchange; a consumer ends when its ctx ends.
func (s *suite) testControl(t *testing.T) {
	pub, b1, b2 := s.open(t), s.open(t), s.open(t)
	node := unique(t, "node")
	ctx := ctxT(t, wait)
	cctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	c1, err := b1.ConsumeControl(cctx1, node+"-1@transporttest")
	require.NoError(t, err)
	c2, err := b2.ConsumeControl(ctx, node+"-2@transporttest")
	require.NoError(t, err)
	request := func(ticket string) *driver.RawMessage {
		return &driver.RawMessage{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
			Headers: map[string]any{"clock": int64(1)}, Exchange: "celery.pidbox",
			Body: fmt.Appendf(nil, `{"method": "ping", "arguments": {}, "destination": null, "ticket": %q, "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"}}`, ticket)}
	}
	ready := request(node + "-ready")
	for _, c := range []<-chan *driver.RawMessage{c1, c2} {
		until(t, c, bodyIs(string(ready.Body)), func() error { return pub.PublishControl(ctx, ready) })
	}

	req := request(node + "-ping")
	require.NoError(t, pub.PublishControl(ctx, req))
	for _, c := range []<-chan *driver.RawMessage{c1, c2} {
		m := recvRaw(t, c, bodyIs(string(req.Body)))
		require.Equal(t, driver.ContentTypeJSON, m.ContentType)
		require.Equal(t, "celery.pidbox", m.Exchange)
		require.Equal(t, "1", fmt.Sprint(m.Headers["clock"]))
	}

	cancel1()
	closed(t, c1, "ConsumeControl after its ctx ended")
	last := request(node + "-last")
	require.NoError(t, pub.PublishControl(ctx, last))
	recvRaw(t, c2, bodyIs(string(last.Body)))
}

// testReplies: Reply reaches the reply consumer of the client it is
// addressed to (routing key = the client's oid), and no other client.
func (s *suite) testReplies(t *testing.T) {
	worker, client1, client2 := s.open(t), s.open(t), s.open(t)
	ctx := ctxT(t, wait)
	oid1, oid2 := driver.NewID(), driver.NewID()
	r1, err := client1.ConsumeReplies(ctx, oid1)
	require.NoError(t, err)
	r2, err := client2.ConsumeReplies(ctx, oid2)
	require.NoError(t, err)
	reply := func(body string) *driver.RawMessage {
		return &driver.RawMessage{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
			Headers: map[string]any{"ticket": "t-" + oid1, "clock": int64(3)}, Body: []byte(body)}
	}
	for oid, r := range map[string]<-chan *driver.RawMessage{oid1: r1, oid2: r2} {
		ready := `{"ready": "` + oid + `"}`
		until(t, r, bodyIs(ready), func() error { return worker.Reply(ctx, "reply.celery.pidbox", oid, reply(ready)) })
	}

	body := `{"w1@transporttest": {"ok": "pong"}}`
	require.NoError(t, worker.Reply(ctx, "reply.celery.pidbox", oid1, reply(body)))
	m := recvRaw(t, r1, bodyIs(body))
	require.Equal(t, "reply.celery.pidbox", m.Exchange)
	require.Equal(t, oid1, m.RoutingKey)
	require.Equal(t, "t-"+oid1, m.Headers["ticket"])
	require.Equal(t, driver.ContentTypeJSON, m.ContentType)
	noRaw(t, r2, bodyIs(body), "a reply reached a client it was not addressed to")
}
