package transporttest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// restartWait is how long the restart test waits for a transport to be
// back after its server is.
const restartWait = time.Minute

// testRestart: while the server is down Publish fails within a few
// seconds; once it is back, publishing works again and the consumer and the
// events, control and reply subscriptions opened before the outage deliver
// again, without being opened anew.
func (s *suite) testRestart(t *testing.T) {
	if s.h.NewServer == nil {
		t.Skip("the transport has no server to restart (Harness.NewServer is nil)")
	}
	srv := s.h.NewServer(t)
	b := open(t, srv.Open)
	q := unique(t, "tt")
	node := unique(t, "node") + "@transporttest"
	oid := driver.NewID()
	ctx, cancel := context.WithTimeout(context.Background(), 3*restartWait)
	defer cancel()

	publish(t, b, q, "before")
	ds, _ := consume(t, b, 1, q)
	d := next(t, ds)
	require.Equal(t, "before", d.Message().Headers.ID)
	require.NoError(t, d.Ack())
	events, _ := subscribe(t, b)
	control, err := b.ConsumeControl(ctx, node)
	require.NoError(t, err)
	replies, err := b.ConsumeReplies(ctx, oid)
	require.NoError(t, err)
	fanoutWorks(t, b, restartWait, events, control, replies, node, oid, "before")

	srv.Stop(t)
	// A transport may retry until the caller's deadline (AMQP) or its own
	// publish timeout (Redis), whichever comes first; it must not hang past
	// the deadline nor report success.
	start := time.Now()
	down, cancelDown := context.WithTimeout(ctx, 3*time.Second)
	require.Error(t, b.Publish(down, q, taskMessage("down", 0)), "Publish while the server is down")
	cancelDown()
	require.Less(t, time.Since(start), wait, "Publish fails within a bounded time while the server is down")
	srv.Start(t)

	require.Eventually(t, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return b.Publish(pctx, q, taskMessage("after", 0)) == nil
	}, restartWait, 100*time.Millisecond, "Publish after the server came back")
	select {
	case d, ok := <-ds:
		require.True(t, ok, "the consumer ended during the outage")
		require.Equal(t, "after", d.Message().Headers.ID)
		require.NoError(t, d.Ack())
	case <-time.After(restartWait):
		t.Fatal("the consumer did not resume after the restart")
	}
	fanoutWorks(t, b, restartWait, events, control, replies, node, oid, "after")
}

// fanoutWorks checks that events, control requests and replies published
// through b reach the subscriptions given, within within.
func fanoutWorks(t *testing.T, b transport, within time.Duration, events, control, replies <-chan *driver.RawMessage, node, oid, tag string) {
	t.Helper()
	ctx := ctxT(t, within)
	ev := `{"type": "worker-heartbeat", "tag": "` + tag + `-` + oid + `"}`
	untilWithin(t, within, events, bodyIs(ev), func() error { return b.PublishEvent(ctx, event(node, "worker.heartbeat", ev)) })
	req := &driver.RawMessage{ContentType: driver.ContentTypeJSON, Body: []byte(`{"method": "ping", "ticket": "` + tag + `-` + oid + `"}`)}
	untilWithin(t, within, control, bodyIs(string(req.Body)), func() error { return b.PublishControl(ctx, req) })
	rep := &driver.RawMessage{ContentType: driver.ContentTypeJSON, Body: []byte(`{"` + node + `": {"ok": "` + tag + `"}}`)}
	untilWithin(t, within, replies, bodyIs(string(rep.Body)), func() error { return b.Reply(ctx, "reply.celery.pidbox", oid, rep) })
}
