package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// outBuffer caps the buffer of the delivery channel: the forwarding
// goroutine runs ahead of the worker instead of waking it per message.
const outBuffer = 256

// ackDelay bounds how long a finished delivery waits for its (batched)
// acknowledgement to be sent.
const ackDelay = time.Millisecond

// straggleAfter is how long a finished delivery may wait behind an unfinished
// one before it is acknowledged on its own.
const straggleAfter = 10 * time.Millisecond

// dialPolicy spaces the first connection attempts of consumers and fanout
// subscriptions (bounded by TransportOptions.ConnectTimeout).
var dialPolicy = reconnect.Policy{Min: 100 * time.Millisecond, Max: time.Second}

// redialPolicy spaces the reconnection attempts of consumers and fanout
// subscriptions after a connection loss.
var redialPolicy = reconnect.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// publishPolicy spaces a publish's retries after connection losses (bounded
// by the retry bound, see Broker.retryContext).
var publishPolicy = reconnect.Policy{Min: 50 * time.Millisecond, Max: time.Second}

// pollPolicy spaces the retries of queue inspection: a steady 100ms.
var pollPolicy = reconnect.Policy{Min: 100 * time.Millisecond, Max: 100 * time.Millisecond}

// isClosed reports errors that end a reconnect loop: the broker was closed.
func isClosed(err error) bool { return errors.Is(err, errClosed) }

var consumerSeq atomic.Uint64

// consumer is one Consume call: its delivery channel outlives connections.
// It receives on one or more connections (consume_connections), each with
// its own channel, consumers, acknowledger and share of the prefetch.
type consumer struct {
	b        *Broker
	queues   []string
	prefetch int
	out      chan driver.Delivery
	stop     chan struct{} // closed by Broker.Close
	stopOnce sync.Once
	live     atomic.Int32 // connection slots not yet finished (run ended, drain done)
}

func (c *consumer) close() { c.stopOnce.Do(func() { close(c.stop) }) }

// done ends one connection slot; the last one removes c from the broker.
func (c *consumer) done() {
	if c.live.Add(-1) == 0 {
		c.b.forget(c)
	}
}

// splitPrefetch divides prefetch among n connections: each gets
// prefetch/n, the first prefetch%n one more, so the sum is prefetch.
func splitPrefetch(prefetch, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = prefetch / n
		if i < prefetch%n {
			out[i]++
		}
	}
	return out
}

// Consume declares queues (as Celery does) and consumes them with basic.qos
// prefetch, split among consume_connections connections, until ctx ends. It
// returns an error when the connections cannot be made within
// TransportOptions.ConnectTimeout; later connection losses are retried with
// backoff while the returned channel stays open.
func (b *Broker) Consume(ctx context.Context, queues []string, prefetch int) (<-chan driver.Delivery, error) {
	if len(queues) == 0 {
		return nil, errors.New("amqp: Consume: no queues")
	}
	if prefetch <= 0 {
		prefetch = 1
	}
	n := max(1, min(b.opts.ConsumeConnections, prefetch))
	if prefetch > 65535*n {
		prefetch = 65535 * n
	}
	c := &consumer{b: b, queues: append([]string(nil), queues...), prefetch: prefetch,
		out: make(chan driver.Delivery, min(prefetch, outBuffer)), stop: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	b.consumers[c] = struct{}{}
	b.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, b.topts.ConnectTimeout)
	defer cancel()
	shares := splitPrefetch(prefetch, n)
	gs := make([]*gen, 0, n)
	backoff := reconnect.Backoff{Policy: dialPolicy}
	for len(gs) < n {
		g, err := c.connect(shares[len(gs)])
		if err == nil {
			gs = append(gs, g)
			continue
		}
		if permanent(err) || !backoff.Wait(rctx) {
			for _, g := range gs {
				g.conn.Close()
			}
			b.forget(c)
			return nil, fmt.Errorf("amqp: consume %v: %w", queues, err)
		}
	}
	ctx, stopAll := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.stop:
			stopAll()
		case <-ctx.Done():
		}
	}()
	c.live.Store(int32(n))
	var runs sync.WaitGroup
	for i, g := range gs {
		runs.Go(func() { c.run(ctx, g, shares[i]) })
	}
	go func() {
		runs.Wait()
		stopAll()
		close(c.out)
	}()
	return c.out, nil
}

func (b *Broker) forget(c *consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}

// gen is one connection of a consumer, with its channel and acknowledger.
type gen struct {
	c      *consumer
	conn   *amqp.Connection
	ch     *amqp.Channel
	tags   []string
	msgs   []<-chan amqp.Delivery
	closed chan struct{} // connection or channel closed
	kick   chan struct{} // wakes the acknowledger to flush
	strag  chan struct{} // wakes the acknowledger to ack stragglers
	idle   chan struct{} // closed when draining and nothing is outstanding
	stop   chan struct{} // closed to stop the acknowledger after a final flush
	acked  chan struct{} // closed when the acknowledger has stopped

	mu          sync.Mutex
	dead        bool
	draining    bool
	idleOnce    sync.Once
	outstanding int               // handed to the worker, not settled
	watermark   uint64            // every tag ≤ watermark is finished
	ackTo       uint64            // highest tag ≤ watermark that needs the multiple ack
	finished    map[uint64]uint32 // finished tags > watermark: finish tick, or settledTick
	tick        uint32
	sentUpTo    uint64      // highest tag acknowledged with multiple
	batch       uint64      // flush at once when this many tags are due
	flushArmed  bool        // flushTimer runs
	flushTimer  *time.Timer // flushes ackDelay after the first unsent finish
}

// settledTick marks a finished tag already settled on its own (individual
// ack, nack): the multiple ack must not name it.
const settledTick = ^uint32(0)

// connect opens one connection of c, consuming every queue with basic.qos
// prefetch_count = prefetch.
func (c *consumer) connect(prefetch int) (*gen, error) {
	b := c.b
	conn, err := b.dial("consumer")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*gen, error) {
		conn.Close()
		return nil, err
	}
	var admin *amqp.Channel
	if b.quorum() {
		if err := b.declareNative(conn, &admin); err != nil {
			return fail(err)
		}
	}
	for _, q := range c.queues {
		if err := b.declareTaskQueue(conn, &admin, q); err != nil {
			return fail(err)
		}
		if b.quorum() {
			if err := b.bindNative(conn, &admin, q); err != nil {
				return fail(err)
			}
		}
	}
	if admin != nil {
		admin.Close()
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	g := &gen{c: c, conn: conn, ch: ch, closed: make(chan struct{}), kick: make(chan struct{}, 1), strag: make(chan struct{}, 1),
		batch: uint64(max(1, prefetch/4)),
		idle:  make(chan struct{}), stop: make(chan struct{}), acked: make(chan struct{}), finished: map[uint64]uint32{}}
	connErrs := conn.NotifyClose(make(chan *amqp.Error, 1))
	chErrs := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		var e *amqp.Error
		select {
		case e = <-connErrs:
		case e = <-chErrs:
		}
		g.mu.Lock()
		g.dead = true
		g.mu.Unlock()
		close(g.closed)
		if e != nil {
			b.log.Warn("amqp consumer connection lost", "queues", c.queues, "err", e)
		}
		conn.Close()
	}()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fail(err)
	}
	host := b.topts.Hostname
	for _, q := range c.queues {
		tag := "taskgen-" + host + "-" + strconv.FormatUint(consumerSeq.Add(1), 10)
		msgs, err := ch.Consume(q, tag, false, false, false, false, nil)
		if err != nil {
			return fail(fmt.Errorf("amqp: consume queue %q: %w", q, err))
		}
		g.tags = append(g.tags, tag)
		g.msgs = append(g.msgs, msgs)
	}
	g.flushTimer = time.AfterFunc(time.Hour, func() { wake(g.kick) })
	g.flushTimer.Stop()
	go g.acknowledger()
	return g, nil
}

// run serves one connection slot of c (g, then its replacements after
// connection losses) until ctx ends.
func (c *consumer) run(ctx context.Context, g *gen, prefetch int) {
	draining := false
	defer func() {
		if !draining {
			c.done()
		}
	}()
	redial := reconnect.Loop{Policy: redialPolicy, WaitFirst: true, Final: isClosed,
		Failed: func(err error, wait time.Duration) {
			c.b.log.Warn("amqp consumer reconnect failed", "queues", c.queues, "err", err, "retry_in", wait)
		}}
	for {
		draining = c.serve(ctx, g)
		if ctx.Err() != nil {
			return
		}
		c.b.log.Warn("amqp consumer reconnecting", "queues", c.queues)
		err := redial.Run(ctx, func() (err error) {
			g, err = c.connect(prefetch)
			return err
		})
		if err != nil {
			return
		}
		c.b.log.Info("amqp consumer reconnected", "queues", c.queues)
	}
}

// serve forwards g's deliveries until ctx ends or g's connection dies. It
// reports whether it left g draining (Broker.Close still has to stop it).
func (c *consumer) serve(ctx context.Context, g *gen) (draining bool) {
	var wg sync.WaitGroup
	for i, q := range c.queues {
		msgs := g.msgs[i]
		wg.Go(func() { c.forward(ctx, g, q, msgs) })
	}
	select {
	case <-ctx.Done():
		// No new deliveries; what amqp091 still buffers arrives on msgs
		// and is requeued by forward.
		for _, tag := range g.tags {
			if err := g.ch.Cancel(tag, false); err != nil {
				break
			}
		}
		wg.Wait()
		go g.drain()
		return true
	case <-g.closed:
		wg.Wait()
		c.dropDead(ctx, g)
	}
	return false
}

// dropDead removes the deliveries of g, whose connection died, from the
// delivery channel's buffer: they can no longer be acknowledged and RabbitMQ
// redelivers them, so they are dropped rather than run twice. Deliveries of
// c's other connections met on the way are put back. g's forwarders have
// stopped, so after cap(c.out) receives (or an empty buffer) none of g's is
// left.
func (c *consumer) dropDead(ctx context.Context, g *gen) {
	var keep []*delivery
	for range cap(c.out) {
		var d driver.Delivery
		select {
		case d = <-c.out:
		default:
		}
		if d == nil {
			break
		}
		del := d.(*delivery)
		if del.g != g {
			keep = append(keep, del)
			continue
		}
		if del.settled.CompareAndSwap(false, true) {
			_ = del.g.finish(del.tag, true, true)
		}
	}
	for _, del := range keep {
		select {
		case c.out <- del:
		case <-ctx.Done():
			_ = del.Requeue()
		}
	}
}

func (c *consumer) forward(ctx context.Context, g *gen, queue string, msgs <-chan amqp.Delivery) {
	for d := range msgs {
		if ctx.Err() != nil {
			g.requeueTag(d.DeliveryTag)
			continue
		}
		del := g.delivery(d, queue)
		if del == nil {
			continue // the connection died meanwhile: RabbitMQ redelivers it
		}
		select {
		case c.out <- del:
		case <-ctx.Done():
			_ = del.Requeue()
		}
	}
}

// drain waits until every delivery handed out is settled (or the connection
// died, or the broker is closed), flushes the acknowledgements and closes
// the connection.
func (g *gen) drain() {
	g.mu.Lock()
	g.draining = true
	if g.outstanding == 0 {
		g.idleOnce.Do(func() { close(g.idle) })
	}
	g.mu.Unlock()
	select {
	case <-g.idle:
	case <-g.closed:
	case <-g.c.stop:
	}
	close(g.stop)
	<-g.acked
	_ = g.ch.Close()
	_ = g.conn.Close()
	g.c.done()
}

func (g *gen) delivery(d amqp.Delivery, queue string) *delivery {
	g.mu.Lock()
	if g.dead {
		g.mu.Unlock()
		return nil
	}
	g.outstanding++
	g.mu.Unlock()
	del := &delivery{g: g, tag: d.DeliveryTag, queue: queue, raw: d}
	if !lazyDecode {
		del.decode()
	}
	return del
}

// lazyDecode defers the header conversion to the goroutine that first asks
// for the message (false: the consumer converts; benchmarks compare both).
var lazyDecode = true

// finish records tag as finished; settled means it was already settled on
// its own (nack). It fails when the connection is gone.
func (g *gen) finish(tag uint64, settled, handed bool) error {
	g.mu.Lock()
	if handed {
		g.outstanding--
		if g.draining && g.outstanding == 0 {
			g.idleOnce.Do(func() { close(g.idle) })
		}
	}
	if g.dead {
		g.mu.Unlock()
		return errConnLost
	}
	mark := g.tick
	if settled {
		mark = settledTick
	}
	if tag == g.watermark+1 {
		g.watermark = tag
		if !settled {
			g.ackTo = tag
		}
		for {
			m, ok := g.finished[g.watermark+1]
			if !ok {
				break
			}
			delete(g.finished, g.watermark+1)
			g.watermark++
			if m != settledTick {
				g.ackTo = g.watermark
			}
		}
		switch {
		case g.ackTo-g.sentUpTo >= g.batch:
			wake(g.kick)
		case g.ackTo > g.sentUpTo && !g.flushArmed:
			g.flushArmed = true
			g.flushTimer.Reset(ackDelay)
		}
	} else {
		g.finished[tag] = mark
		if !g.flushArmed {
			// flush notices the straggler and arms its timer
			g.flushArmed = true
			g.flushTimer.Reset(ackDelay)
		}
	}
	g.mu.Unlock()
	return nil
}

// wake sends a wake-up on c without blocking; one pending is enough.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// acknowledger sends the acknowledgements of g: one multiple ack up to the
// contiguous watermark, once a quarter of the prefetch window is finished or
// ackDelay after the first unsent finish, and single acks for finished
// deliveries stuck behind an unfinished one for straggleAfter.
func (g *gen) acknowledger() {
	defer close(g.acked)
	defer g.flushTimer.Stop()
	straggleT := time.AfterFunc(time.Hour, func() { wake(g.strag) })
	straggleT.Stop()
	defer straggleT.Stop()
	straggleArmed := false
	for {
		straggle := false
		select {
		case <-g.kick:
		case <-g.strag:
			straggleArmed = false
			straggle = true
		case <-g.stop:
			g.flush(false)
			return
		case <-g.closed:
			return
		}
		if g.flush(straggle) && !straggleArmed {
			straggleT.Reset(straggleAfter)
			straggleArmed = true
		}
	}
}

// flush sends due acknowledgements; it reports whether finished deliveries
// still wait behind an unfinished one.
func (g *gen) flush(straggle bool) (waiting bool) {
	var single []uint64
	g.mu.Lock()
	g.flushArmed = false
	ackTo, sentUpTo := g.ackTo, g.sentUpTo
	if straggle {
		for tag, m := range g.finished {
			if m != settledTick && m != g.tick {
				single = append(single, tag)
				g.finished[tag] = settledTick
			}
		}
		g.tick++
	}
	for _, m := range g.finished {
		if m != settledTick {
			waiting = true
			break
		}
	}
	g.mu.Unlock()
	if ackTo > sentUpTo {
		if err := g.ch.Ack(ackTo, true); err != nil {
			return false
		}
		g.mu.Lock()
		g.sentUpTo = ackTo
		g.mu.Unlock()
	}
	for _, tag := range single {
		if err := g.ch.Ack(tag, false); err != nil {
			return false
		}
	}
	return waiting
}

// requeueTag returns a delivery that was never handed out to its queue.
func (g *gen) requeueTag(tag uint64) {
	if err := g.ch.Nack(tag, false, true); err == nil {
		_ = g.finish(tag, true, false)
	}
}

// delivery is one received message. Its header table is converted to
// runtime headers on first use (Message, DecodeError, Reject), in the
// goroutine that asks, not in the consumer's.
type delivery struct {
	g       *gen
	tag     uint64
	queue   string
	once    sync.Once
	msg     *driver.Message
	err     error
	raw     amqp.Delivery // its Headers are dropped once msg is made
	settled atomic.Bool
}

var errSettled = errors.New("amqp: delivery already settled")

func (d *delivery) decode() {
	d.once.Do(func() {
		d.msg, d.err = message(&d.raw, d.queue)
		if d.msg != nil {
			d.raw = amqp.Delivery{}
		}
	})
}

// Message returns the decoded message, or nil (see DecodeError).
func (d *delivery) Message() *driver.Message {
	d.decode()
	return d.msg
}

// Raw returns the message body as received.
func (d *delivery) Raw() []byte {
	d.decode()
	if d.msg != nil {
		return d.msg.Body
	}
	return d.raw.Body
}

// DecodeError is why Message is nil.
func (d *delivery) DecodeError() error {
	d.decode()
	return d.err
}

// Ack acknowledges the delivery (batched; see the package documentation).
func (d *delivery) Ack() error {
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	return d.g.finish(d.tag, false, true)
}

// Requeue returns the message to its queue (basic.nack, requeue=true).
func (d *delivery) Requeue() error {
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	g := d.g
	g.mu.Lock()
	dead := g.dead
	g.mu.Unlock()
	if dead {
		_ = g.finish(d.tag, true, true)
		return nil // RabbitMQ requeued it when the connection closed
	}
	if err := g.ch.Nack(d.tag, false, true); err != nil {
		_ = g.finish(d.tag, true, true)
		return nil // the channel is closing: RabbitMQ requeues it
	}
	return g.finish(d.tag, true, true)
}

// Reject publishes a copy of the message to the dead-letter exchange with
// reason, then acknowledges it. If the copy cannot be published the message
// is requeued and the error returned.
func (d *delivery) Reject(reason string) error {
	if !d.settled.CompareAndSwap(false, true) {
		return errSettled
	}
	g := d.g
	g.mu.Lock()
	dead := g.dead
	g.mu.Unlock()
	if dead {
		_ = g.finish(d.tag, true, true)
		return errConnLost
	}
	var p amqp.Publishing
	if d.decode(); d.msg != nil {
		var err error
		if p, err = publishing(d.msg); err != nil {
			p = amqp.Publishing{ContentType: d.msg.ContentType, ContentEncoding: d.msg.ContentEncoding,
				CorrelationId: d.msg.CorrelationID, ReplyTo: d.msg.ReplyTo, Priority: d.msg.Priority, Body: d.msg.Body}
		}
		p.Expiration = ""
	} else {
		r := &d.raw
		h := make(amqp.Table, len(r.Headers)+2)
		for k, v := range r.Headers {
			h[k] = v
		}
		p = amqp.Publishing{Headers: h, ContentType: r.ContentType, ContentEncoding: r.ContentEncoding,
			CorrelationId: r.CorrelationId, ReplyTo: r.ReplyTo, Priority: r.Priority, MessageId: r.MessageId,
			Timestamp: r.Timestamp, Type: r.Type, AppId: r.AppId, Body: r.Body}
	}
	if p.Headers == nil {
		p.Headers = amqp.Table{}
	}
	p.Headers[HeaderDeadLetterReason] = reason
	p.Headers[HeaderDeadLetterQueue] = d.queue
	p.Headers[HeaderDeadLetterTime] = time.Now().UTC().Format(time.RFC3339Nano)
	p.Headers[HeaderDeadLetterHost] = g.c.b.topts.Hostname
	p.DeliveryMode = amqp.Persistent
	ctx, cancel := context.WithTimeout(context.Background(), g.c.b.topts.ConnectTimeout)
	defer cancel()
	b := g.c.b
	err := b.publish(ctx, b.opts.DeadLetterExchange, d.queue, target{kind: 'l', queue: d.queue}, &p)
	if err != nil {
		// On a closing channel the nack fails, and RabbitMQ requeues it anyway.
		_ = g.ch.Nack(d.tag, false, true)
		_ = g.finish(d.tag, true, true)
		return fmt.Errorf("amqp: dead-letter to %q: %w (message requeued)", deadLetterQueue(d.queue), err)
	}
	return g.finish(d.tag, false, true)
}
