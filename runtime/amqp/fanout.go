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

// Celery's fanout traffic on RabbitMQ: events on the "celeryev" topic
// exchange ([runtime.EventTransport]) and the pidbox remote control
// ([runtime.ControlTransport]), declared exactly as Celery 5 declares them
// (WIRE §2, §6, §7). It runs on two connections of its own, apart from the
// task connections: one publishes (events, control requests, replies) on a
// channel without publisher confirms, one carries the no-ack consumers, one
// channel each. An error on them never touches task publishing or
// consumption.

// Names and arguments of Celery's fanout entities.
const (
	// ControlExchange is Celery's remote-control broadcast exchange
	// (fanout, not durable).
	ControlExchange = "celery.pidbox"
	// ReplyExchange is the exchange remote-control replies go to (direct,
	// not durable).
	ReplyExchange = "reply.celery.pidbox"
	// ControlQueueSuffix follows the node name in a worker's control queue
	// ("w1@host.celery.pidbox").
	ControlQueueSuffix = "." + ControlExchange
	// ReplyQueueSuffix follows the client oid in a client's reply queue.
	ReplyQueueSuffix = "." + ReplyExchange
	// EventQueuePrefix and a uuid4 name an event subscriber's queue
	// ("celeryev.<uuid4>"), as Celery's EventReceiver names it.
	EventQueuePrefix = driver.EventExchange + "."

	// EventQueueTTL is x-message-ttl of event queues (event_queue_ttl 5 s).
	EventQueueTTL = 5 * time.Second
	// EventQueueExpires is x-expires of event queues (event_queue_expires 60 s).
	EventQueueExpires = 60 * time.Second
	// ControlQueueTTL is x-message-ttl of control and reply queues
	// (control_queue_ttl 300 s).
	ControlQueueTTL = 300 * time.Second
	// ControlQueueExpires is x-expires of control and reply queues
	// (control_queue_expires 10 s).
	ControlQueueExpires = 10 * time.Second

	// EventBuffer is how many received events a subscriber may lag behind
	// before further events are dropped for it (counted by
	// [Broker.DroppedEvents]): events are consumed without acknowledgement,
	// so RabbitMQ does not hold them back for a slow reader.
	EventBuffer = 16384
	// controlBuffer is the delivery buffer of control requests and replies
	// (these wait for the reader instead of being dropped).
	controlBuffer = 64
)

var (
	_ driver.EventTransport   = (*Broker)(nil)
	_ driver.ControlTransport = (*Broker)(nil)
)

// errBlocked is returned by fanout publishes while RabbitMQ blocks the
// publishing connection (a memory or disk alarm): events are dropped
// rather than wait.
var errBlocked = errors.New("amqp: the broker blocks publishing (resource alarm)")

// exchangeSpec is an exchange as Celery declares it.
type exchangeSpec struct {
	name    string
	kind    string
	durable bool
}

func eventExchange(name string) exchangeSpec {
	if name == "" {
		name = driver.EventExchange
	}
	return exchangeSpec{name: name, kind: amqp.ExchangeTopic, durable: true}
}

func controlExchange(name string) exchangeSpec {
	if name == "" {
		name = ControlExchange
	}
	return exchangeSpec{name: name, kind: amqp.ExchangeFanout}
}

func replyExchange(name string) exchangeSpec {
	return exchangeSpec{name: name, kind: amqp.ExchangeDirect}
}

// ms is a duration in integer milliseconds, typed as py-amqp writes kombu's
// queue arguments (field type I).
func ms(d time.Duration) int32 { return int32(d / time.Millisecond) }

// fanoutState is the broker's fanout machinery, created on first use.
type fanoutState struct {
	once     sync.Once
	pub      *link         // events, control requests, replies
	sub      *link         // the subscriptions' channels
	stop     chan struct{} // closed by Broker.Close: subscriptions end
	stopOnce sync.Once

	pubMu    sync.Mutex
	pubCh    *amqp.Channel
	pubConn  *linkConn
	declared map[string]bool

	dropped atomic.Int64
	dropLog atomic.Int64 // unix nanoseconds of the last drop warning
}

func (b *Broker) fanout() *fanoutState {
	f := &b.fan
	f.once.Do(func() {
		f.pub = &link{b: b, role: "fanout publisher"}
		f.sub = &link{b: b, role: "fanout consumer"}
		f.stop = make(chan struct{})
	})
	return f
}

// closeFanout closes the fanout connections and ends every subscription
// (called by Close).
func (b *Broker) closeFanout() {
	f := b.fanout()
	// stop first, so that subscriptions see it when their channels close.
	f.stopOnce.Do(func() { close(f.stop) })
	f.pub.close()
	f.sub.close()
}

// link is a connection dialed on demand and dialed again after it is lost;
// callers share it.
type link struct {
	b    *Broker
	role string

	mu      sync.Mutex
	cur     *linkConn
	dialing chan struct{}
	lastErr error
	retryAt time.Time
	backoff time.Duration
	closed  bool
}

// linkConn is one connection of a link.
type linkConn struct {
	conn    *amqp.Connection
	dead    chan struct{}
	blocked atomic.Bool
}

func (c *linkConn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// get returns the live connection, dialing one when there is none. With
// failFast it returns the last dial error at once while a failed dial's
// backoff (100 ms doubling to 5 s) runs, so that events are dropped quickly
// during an outage instead of each waiting for a connection attempt.
func (l *link) get(ctx context.Context, failFast bool) (*linkConn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, errClosed
		}
		if c := l.cur; c != nil && c.alive() {
			l.mu.Unlock()
			return c, nil
		}
		if failFast && l.lastErr != nil && time.Now().Before(l.retryAt) {
			err := l.lastErr
			l.mu.Unlock()
			return nil, err
		}
		d := l.dialing
		if d == nil {
			d = make(chan struct{})
			l.dialing = d
			go l.dial(d)
		}
		l.mu.Unlock()
		select {
		case <-d:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		l.mu.Lock()
		c, err := l.cur, l.lastErr
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return nil, errClosed
		}
		if c == nil || !c.alive() {
			if err == nil {
				err = errConnLost
			}
			return nil, err
		}
		//lint:ignore SA4004 the loop repeats only through the continue above; this path ends it
		return c, nil
	}
}

// dial makes one connection attempt and closes d when done.
func (l *link) dial(d chan struct{}) {
	conn, err := l.b.dial(l.role)
	l.mu.Lock()
	defer l.mu.Unlock()
	defer close(d)
	l.dialing = nil
	if err == nil && l.closed {
		conn.Close()
		err = errClosed
	}
	if err != nil {
		l.backoff = min(max(2*l.backoff, 100*time.Millisecond), 5*time.Second)
		l.lastErr, l.retryAt = err, time.Now().Add(l.backoff)
		return
	}
	c := &linkConn{conn: conn, dead: watchClose(conn)}
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		// amqp091 closes blocks when the connection closes.
		for b := range blocks {
			c.blocked.Store(b.Active)
			if b.Active {
				l.b.log.Warn("amqp broker blocks publishing", "connection", l.role, "reason", b.Reason)
			}
		}
	}()
	l.cur, l.lastErr, l.backoff = c, nil, 0
}

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	c := l.cur
	l.cur = nil
	l.mu.Unlock()
	if c != nil {
		_ = c.conn.Close()
	}
}

// rawPublishing builds the AMQP message of msg.
func rawPublishing(msg *driver.RawMessage, mode uint8) (amqp.Publishing, error) {
	p := amqp.Publishing{ContentType: msg.ContentType, ContentEncoding: msg.ContentEncoding, DeliveryMode: mode, Body: msg.Body}
	if len(msg.Headers) > 0 {
		t, err := tableValue(msg.Headers)
		if err != nil {
			return p, fmt.Errorf("headers: %w", err)
		}
		p.Headers = t
	}
	return p, nil
}

// rawMessage maps a received delivery to a runtime message; header values
// become int64, float64, string, bool, nil, []any and map[string]any.
func rawMessage(d *amqp.Delivery) *driver.RawMessage {
	m := &driver.RawMessage{ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, Body: d.Body,
		Exchange: d.Exchange, RoutingKey: d.RoutingKey}
	if len(d.Headers) > 0 {
		m.Headers = make(map[string]any, len(d.Headers))
		for k, v := range d.Headers {
			m.Headers[k] = plainValue(v)
		}
	}
	return m
}

// publishFanout publishes p to ex (declared first, once per channel) on the
// fanout publisher connection, without publisher confirm. A publish that
// fails because the channel or connection was lost is tried once more.
func (b *Broker) publishFanout(ctx context.Context, ex exchangeSpec, key string, p *amqp.Publishing, failFast bool) error {
	f := b.fanout()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var c *linkConn
		if c, err = f.pub.get(ctx, failFast); err != nil {
			return err
		}
		if c.blocked.Load() {
			return errBlocked
		}
		if err = f.publishOn(ctx, c, ex, key, p); err == nil {
			return nil
		}
		if ctx.Err() != nil || permanent(err) || (!errors.Is(err, amqp.ErrClosed) && c.alive()) {
			return err
		}
	}
	return err
}

func (f *fanoutState) publishOn(ctx context.Context, c *linkConn, ex exchangeSpec, key string, p *amqp.Publishing) error {
	f.pubMu.Lock()
	defer f.pubMu.Unlock()
	ch, err := f.pubChannel(c)
	if err != nil {
		return err
	}
	if ex.name != "" && !f.declared[ex.name] {
		if err := ch.ExchangeDeclare(ex.name, ex.kind, ex.durable, false, false, false, nil); err != nil {
			if !isPrecondition(err) {
				return fmt.Errorf("amqp: declare exchange %q: %w", ex.name, err)
			}
			warnExchange(f.pub.b, ex, err)
			if ch, err = f.pubChannel(c); err != nil {
				return err
			}
		}
		f.declared[ex.name] = true
	}
	return ch.PublishWithContext(ctx, ex.name, key, false, false, *p)
}

// pubChannel returns the open publishing channel on c, opening a new one
// (and forgetting the declarations) after a channel error or reconnect.
func (f *fanoutState) pubChannel(c *linkConn) (*amqp.Channel, error) {
	if f.pubCh != nil && !f.pubCh.IsClosed() && f.pubConn == c {
		return f.pubCh, nil
	}
	ch, err := c.conn.Channel()
	if err != nil {
		return nil, err
	}
	f.pubCh, f.pubConn, f.declared = ch, c, map[string]bool{}
	return ch, nil
}

func warnExchange(b *Broker, ex exchangeSpec, err error) {
	b.warnOnce("x:"+ex.name, "exchange exists with other settings than Celery's; using it as it is",
		"exchange", ex.name, "type", ex.kind, "durable", ex.durable, "err", err)
}

// PublishEvent publishes a Celery event to msg.Exchange ("celeryev" when
// empty; a durable topic exchange, declared once per channel) with routing
// key msg.RoutingKey, delivery_mode 1 and msg's headers, without publisher
// confirm. It never waits for a connection attempt while the last one
// failed recently, nor while RabbitMQ blocks publishers: it returns an
// error and the event is lost, as events are transient.
func (b *Broker) PublishEvent(ctx context.Context, msg *driver.RawMessage) error {
	p, err := rawPublishing(msg, amqp.Transient)
	if err == nil {
		err = b.publishFanout(ctx, eventExchange(msg.Exchange), msg.RoutingKey, &p, true)
	}
	if err != nil {
		return fmt.Errorf("amqp: publish event %q: %w", msg.RoutingKey, err)
	}
	return nil
}

// PublishControl broadcasts a remote-control request on msg.Exchange
// ("celery.pidbox" when empty; fanout, not durable) with routing key
// msg.RoutingKey (normally "") and delivery_mode 2, as kombu does.
func (b *Broker) PublishControl(ctx context.Context, msg *driver.RawMessage) error {
	p, err := rawPublishing(msg, amqp.Persistent)
	if err == nil {
		err = b.publishFanout(ctx, controlExchange(msg.Exchange), msg.RoutingKey, &p, false)
	}
	if err != nil {
		return fmt.Errorf("amqp: publish control request: %w", err)
	}
	return nil
}

// Reply publishes a remote-control reply to exchange (declared as kombu
// declares reply exchanges: direct, not durable; "" is the default
// exchange) with routingKey and delivery_mode 1.
func (b *Broker) Reply(ctx context.Context, exchange, routingKey string, msg *driver.RawMessage) error {
	p, err := rawPublishing(msg, amqp.Transient)
	if err == nil {
		err = b.publishFanout(ctx, replyExchange(exchange), routingKey, &p, false)
	}
	if err != nil {
		return fmt.Errorf("amqp: publish control reply to %q/%q: %w", exchange, routingKey, err)
	}
	return nil
}

// DroppedEvents returns how many received events were dropped because a
// subscriber lagged more than EventBuffer events behind.
func (b *Broker) DroppedEvents() int64 { return b.fanout().dropped.Load() }

// fanoutQueue is a subscription's queue: not durable, auto-delete, bound
// to exchange with key.
type fanoutQueue struct {
	exchange exchangeSpec
	name     string
	key      string
	args     amqp.Table
}

// declareFanoutQueue declares q's exchange, q and its binding. An exchange
// or queue that exists with other settings is used as it is, with a
// warning.
func (b *Broker) declareFanoutQueue(conn *amqp.Connection, slot **amqp.Channel, q *fanoutQueue) error {
	ex := q.exchange
	var err error
	if ex.name != "" { // the default exchange ("": rpc:// results) exists and binds every queue by its name
		err = withChannel(conn, slot, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(ex.name, ex.kind, ex.durable, false, false, false, nil)
		})
	}
	if err != nil {
		if !isPrecondition(err) {
			return fmt.Errorf("amqp: declare exchange %q: %w", ex.name, err)
		}
		warnExchange(b, ex, err)
	}
	err = withChannel(conn, slot, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(q.name, false, true, false, false, q.args)
		return err
	})
	if err != nil {
		if !isPrecondition(err) {
			return fmt.Errorf("amqp: declare queue %q: %w", q.name, err)
		}
		b.warnOnce("q:"+q.name, "queue exists with other arguments than Celery's; using it as it is", "queue", q.name, "err", err)
		err = withChannel(conn, slot, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q.name, false, true, false, false, nil)
			return err
		})
		if err != nil {
			return fmt.Errorf("amqp: declare queue %q: %w", q.name, err)
		}
	}
	if ex.name == "" {
		return nil
	}
	err = withChannel(conn, slot, func(ch *amqp.Channel) error {
		return ch.QueueBind(q.name, q.key, ex.name, false, nil)
	})
	if err != nil {
		return fmt.Errorf("amqp: bind queue %q to exchange %q: %w", q.name, ex.name, err)
	}
	return nil
}

// subscription is one SubscribeEvents, ConsumeControl or ConsumeReplies
// call: its channel of messages outlives connections.
type subscription struct {
	b    *Broker
	what string // for logs
	q    fanoutQueue
	out  chan *driver.RawMessage
	drop bool // drop messages when out is full (events) instead of waiting
}

// subGen is one channel of a subscription.
type subGen struct {
	ch   *amqp.Channel
	msgs <-chan amqp.Delivery
}

var fanoutConsumerSeq atomic.Uint64

// subscribe declares s's queue and consumes it (no-ack) on a channel of the
// fanout consumer connection. It fails when that cannot be done within
// TransportOptions.ConnectTimeout (or ctx); later losses are retried with
// backoff while the returned channel stays open, until ctx ends or the
// broker is closed.
func (b *Broker) subscribe(ctx context.Context, s *subscription) (<-chan *driver.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, b.topts.ConnectTimeout)
	defer cancel()
	var g *subGen
	err := reconnect.Loop{Policy: dialPolicy, Final: permanent}.Run(rctx, func() (err error) {
		g, err = s.connect(rctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("amqp: subscribe to %s: %w", s.what, err)
	}
	go s.run(ctx, g)
	return s.out, nil
}

func (s *subscription) connect(ctx context.Context) (*subGen, error) {
	c, err := s.b.fanout().sub.get(ctx, false)
	if err != nil {
		return nil, err
	}
	var ch *amqp.Channel
	fail := func(err error) (*subGen, error) {
		if ch != nil {
			_ = ch.Close()
		}
		return nil, err
	}
	if err := s.b.declareFanoutQueue(c.conn, &ch, &s.q); err != nil {
		return fail(err)
	}
	tag := "taskgen-" + s.b.topts.Hostname + "-" + strconv.FormatUint(fanoutConsumerSeq.Add(1), 10)
	msgs, err := ch.Consume(s.q.name, tag, true, false, false, false, nil)
	if err != nil {
		return fail(fmt.Errorf("amqp: consume queue %q: %w", s.q.name, err))
	}
	return &subGen{ch: ch, msgs: msgs}, nil
}

func (s *subscription) run(ctx context.Context, g *subGen) {
	defer close(s.out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := s.b.fanout().stop
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	redial := reconnect.Loop{Policy: redialPolicy, WaitFirst: true, Final: isClosed,
		Failed: func(err error, wait time.Duration) {
			s.b.log.Warn("amqp fanout consumer reconnect failed", "consumer", s.what, "err", err, "retry_in", wait)
		}}
	for {
		s.forward(ctx, g)
		// Closing the channel cancels the consumer, so RabbitMQ deletes the
		// auto-delete queue.
		_ = g.ch.Close()
		select {
		case <-stop:
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		s.b.log.Warn("amqp fanout consumer reconnecting", "consumer", s.what)
		err := redial.Run(ctx, func() (err error) {
			g, err = s.connect(ctx)
			return err
		})
		if err != nil {
			return
		}
		s.b.log.Info("amqp fanout consumer reconnected", "consumer", s.what)
	}
}

// forward hands g's messages to s.out until ctx ends or g's channel closes.
func (s *subscription) forward(ctx context.Context, g *subGen) {
	for {
		select {
		case d, ok := <-g.msgs:
			if !ok {
				return
			}
			m := rawMessage(&d)
			if s.drop {
				select {
				case s.out <- m:
				default:
					s.dropped()
				}
				continue
			}
			select {
			case s.out <- m:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// dropped counts an event dropped for a slow subscriber, with a warning at
// most every 30 s.
func (s *subscription) dropped() {
	f := s.b.fanout()
	n := f.dropped.Add(1)
	now := time.Now().UnixNano()
	last := f.dropLog.Load()
	if now-last >= int64(30*time.Second) && f.dropLog.CompareAndSwap(last, now) {
		s.b.log.Warn("events dropped: the subscriber lags behind", "consumer", s.what, "dropped_so_far", n)
	}
}

// SubscribeEvents consumes every event published on the "celeryev"
// exchange from now on, as Celery's EventReceiver does: queue
// "celeryev.<uuid4>" (not durable, auto-delete, x-message-ttl 5000,
// x-expires 60000) bound with "#", no-ack. Messages keep their routing key
// ("task.multi" bodies are JSON lists). It returns once the queue is bound.
// The channel is closed when ctx ends or the broker is closed.
func (b *Broker) SubscribeEvents(ctx context.Context) (<-chan *driver.RawMessage, error) {
	s := &subscription{b: b, what: "events", drop: true, out: make(chan *driver.RawMessage, EventBuffer),
		q: fanoutQueue{exchange: eventExchange(""), name: EventQueuePrefix + driver.NewID(), key: "#",
			args: amqp.Table{"x-message-ttl": ms(EventQueueTTL), "x-expires": ms(EventQueueExpires)}}}
	return b.subscribe(ctx, s)
}

// ConsumeControl consumes the remote-control requests broadcast to the
// workers, as node nodename: queue "<nodename>.celery.pidbox" (not durable,
// auto-delete, x-expires 10000, x-message-ttl 300000) bound to the
// "celery.pidbox" fanout exchange with routing key "", no-ack.
func (b *Broker) ConsumeControl(ctx context.Context, nodename string) (<-chan *driver.RawMessage, error) {
	if nodename == "" {
		return nil, errors.New("amqp: ConsumeControl: empty node name")
	}
	s := &subscription{b: b, what: "control " + nodename, out: make(chan *driver.RawMessage, controlBuffer),
		q: fanoutQueue{exchange: controlExchange(""), name: nodename + ControlQueueSuffix, key: "",
			args: amqp.Table{"x-expires": ms(ControlQueueExpires), "x-message-ttl": ms(ControlQueueTTL)}}}
	return b.subscribe(ctx, s)
}

// ConsumeReplies consumes the remote-control replies addressed to oid:
// queue "<oid>.reply.celery.pidbox" (not durable, auto-delete, x-expires
// 10000, x-message-ttl 300000) bound to "reply.celery.pidbox" (direct, not
// durable) with routing key oid, no-ack. It returns once the queue is
// bound, so a request published afterwards cannot miss its replies.
func (b *Broker) ConsumeReplies(ctx context.Context, oid string) (<-chan *driver.RawMessage, error) {
	if oid == "" {
		return nil, errors.New("amqp: ConsumeReplies: empty oid")
	}
	s := &subscription{b: b, what: "replies " + oid, out: make(chan *driver.RawMessage, controlBuffer),
		q: fanoutQueue{exchange: replyExchange(ReplyExchange), name: oid + ReplyQueueSuffix, key: oid,
			args: amqp.Table{"x-expires": ms(ControlQueueExpires), "x-message-ttl": ms(ControlQueueTTL)}}}
	return b.subscribe(ctx, s)
}
