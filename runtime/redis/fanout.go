package redis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

var (
	_ driver.EventTransport   = (*Broker)(nil)
	_ driver.ControlTransport = (*Broker)(nil)
)

// Names of Celery's fanout exchanges and queues.
const (
	// ControlExchange is Celery's remote-control broadcast exchange.
	ControlExchange = "celery.pidbox"
	// ReplyExchange is the (direct) exchange of remote-control replies.
	ReplyExchange = "reply.celery.pidbox"
	// ControlQueueSuffix follows the node name in a worker's control queue
	// ("w1@host.celery.pidbox"), the queue of its binding member.
	ControlQueueSuffix = "." + ControlExchange
	// ReplyQueueSuffix follows the client oid in a client's reply list
	// ("<oid>.reply.celery.pidbox").
	ReplyQueueSuffix = "." + ReplyExchange

	// EventBuffer is how many received events a subscriber may lag behind
	// before further events are dropped for it (counted by
	// [Broker.DroppedEvents]); Redis would otherwise buffer them in its
	// client output buffer and eventually disconnect the subscriber.
	EventBuffer = 16384
	// ReplyTTL is how long a reply list lives after its last reply when
	// nobody pops it (Celery's control_queue_ttl).
	ReplyTTL = 300 * time.Second

	controlBuffer = 64 // requests and replies wait for their reader

	// eventPublishTimeout bounds one PublishEvent call.
	eventPublishTimeout = time.Second
	// pubsubPingInterval: an idle subscription PINGs its connection this
	// often, and reconnects when the PONG does not come within as long.
	pubsubPingInterval = 10 * time.Second
	// cleanupTimeout bounds the SREM/DEL a subscription does when it ends.
	cleanupTimeout = 2 * time.Second
)

// fanoutState is the broker's fanout bookkeeping, kept beside the Broker
// (keyed by it) so that the task transport stays as it is.
type fanoutState struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // subscription goroutines

	dropped atomic.Int64
	dropLog atomic.Int64 // unix nanoseconds of the last drop warning

	// PublishEvent's circuit breaker: after a connection failure, events
	// fail at once until brUntil instead of each waiting for Redis.
	brMu      sync.Mutex
	brErr     error
	brUntil   time.Time
	brBackoff time.Duration
}

var fanouts sync.Map // *Broker -> *fanoutState

func (b *Broker) fanout() *fanoutState {
	if f, ok := fanouts.Load(b); ok {
		return f.(*fanoutState)
	}
	if b.isClosing() {
		return &fanoutState{closed: true} // not kept: closeFanout may be done
	}
	f, _ := fanouts.LoadOrStore(b, &fanoutState{})
	return f.(*fanoutState)
}

// closeFanout ends every subscription and waits for their goroutines (each
// removes its kombu binding member first). Broker.Close calls it after
// closing b.closing and before closing the client.
func (b *Broker) closeFanout() {
	f := b.fanout()
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.wg.Wait()
	fanouts.Delete(b)
}

// goFanout runs fn on a goroutine that Close waits for, unless the broker
// is closing.
func (b *Broker) goFanout(fn func()) error {
	f := b.fanout()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || b.isClosing() {
		return ErrClosed
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn()
	}()
	return nil
}

// fanoutCtx returns ctx, also cancelled when the broker closes.
func (b *Broker) fanoutCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-b.closing:
			cancel()
		}
	}()
	return ctx, cancel
}

// retryBounded runs fn until it succeeds, fails with an error reply, or
// publish_timeout (or ctx) ends: a restarted server leaves dead pooled
// connections behind.
func (b *Broker) retryBounded(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout)
	defer cancel()
	backoff := reconnect.Backoff{Policy: commandPolicy}
	for {
		err := fn(ctx)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if !backoff.Wait(ctx) {
			return err
		}
	}
}

// PublishEvent PUBLISHes a Celery event on "/<db>.<exchange>/<routing
// key>" (exchange msg.Exchange, "celeryev" when empty) in kombu's envelope
// with delivery_mode 1. It gives up after a second, and fails at once for a
// short while (100 ms doubling to 2 s) after a connection failure: events
// are transient and the worker must not wait for them.
func (b *Broker) PublishEvent(ctx context.Context, msg *driver.RawMessage) error {
	if b.isClosing() {
		return ErrClosed
	}
	f := b.fanout()
	f.brMu.Lock()
	if f.brErr != nil && time.Now().Before(f.brUntil) {
		err := f.brErr
		f.brMu.Unlock()
		return fmt.Errorf("redis: publish event %q: %w", msg.RoutingKey, err)
	}
	f.brMu.Unlock()
	exchange := msg.Exchange
	if exchange == "" {
		exchange = driver.EventExchange
	}
	bp := envPool.Get().(*[]byte)
	env, err := appendRawEnvelope((*bp)[:0], msg, exchange, msg.RoutingKey, 1)
	defer func() {
		if cap(env) <= 1<<20 { // task.multi lists of 512 events are ~160 KB
			*bp = env[:0]
			envPool.Put(bp)
		}
	}()
	if err != nil {
		return fmt.Errorf("redis: publish event %q: %w", msg.RoutingKey, err)
	}
	pctx, cancel := context.WithTimeout(ctx, eventPublishTimeout)
	defer cancel()
	err = b.client.Publish(pctx, b.fanoutTopic(exchange, msg.RoutingKey), env).Err()
	f.brMu.Lock()
	if err != nil && retryable(err) && ctx.Err() == nil {
		f.brBackoff = min(max(2*f.brBackoff, 100*time.Millisecond), 2*time.Second)
		f.brErr, f.brUntil = err, time.Now().Add(f.brBackoff)
	} else if err == nil {
		f.brErr, f.brBackoff = nil, 0
	}
	f.brMu.Unlock()
	if err != nil {
		return fmt.Errorf("redis: publish event %q: %w", msg.RoutingKey, err)
	}
	return nil
}

// PublishControl broadcasts a remote-control request: PUBLISH on
// "/<db>.celery.pidbox" (exchange msg.Exchange, "celery.pidbox" when empty;
// "/<routing key>" appended when msg.RoutingKey is set) in kombu's envelope
// with delivery_mode 2, as kombu's Mailbox does. Connection failures are
// retried until publish_timeout or ctx ends.
func (b *Broker) PublishControl(ctx context.Context, msg *driver.RawMessage) error {
	if b.isClosing() {
		return ErrClosed
	}
	exchange := msg.Exchange
	if exchange == "" {
		exchange = ControlExchange
	}
	env, err := appendRawEnvelope(nil, msg, exchange, msg.RoutingKey, 2)
	if err == nil {
		topic := b.fanoutTopic(exchange, msg.RoutingKey)
		err = b.retryBounded(ctx, func(ctx context.Context) error {
			return b.client.Publish(ctx, topic, env).Err()
		})
	}
	if err != nil {
		return fmt.Errorf("redis: publish control request: %w", err)
	}
	return nil
}

// Reply sends a remote-control reply to exchange (normally
// "reply.celery.pidbox") with routingKey (the client's oid), in kombu's
// envelope with delivery_mode 1: LPUSH onto the lists bound in
// _kombu.binding.<exchange> with routingKey (normally
// "<oid>.reply.celery.pidbox"), resolved and pushed in one Lua call. A reply
// no client is bound for any more is dropped, as kombu drops it. Exchange
// "" is kombu's default exchange: the list named routingKey.
func (b *Broker) Reply(ctx context.Context, exchange, routingKey string, msg *driver.RawMessage) error {
	if b.isClosing() {
		return ErrClosed
	}
	env, err := appendRawEnvelope(nil, msg, exchange, routingKey, 1)
	if err == nil {
		err = b.retryBounded(ctx, func(ctx context.Context) error {
			if exchange == "" {
				return b.client.LPush(ctx, b.opts.key(routingKey), env).Err()
			}
			n, err := replyScript.Run(ctx, b.client, []string{b.opts.key("_kombu.binding." + exchange)},
				b.opts.GlobalKeyPrefix, routingKey, env, sep, ReplyTTL.Milliseconds()).Int()
			if err == nil && n == 0 {
				b.log.Debug("redis: remote-control reply dropped: no client bound for it", "exchange", exchange, "routing_key", routingKey)
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("redis: publish control reply to %q/%q: %w", exchange, routingKey, err)
	}
	return nil
}

// DroppedEvents returns how many received events were dropped because a
// subscriber lagged more than EventBuffer events behind.
func (b *Broker) DroppedEvents() int64 { return b.fanout().dropped.Load() }
