package amqp

import (
	"context"
	"fmt"
	"math/bits"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// retryContext bounds a retry loop: ctx's deadline, or ConnectTimeout when
// ctx has none.
func (b *Broker) retryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.topts.ConnectTimeout)
}

// publish publishes p with a publisher confirm, after prepare succeeded on
// the session, retrying connection losses within the retry bound.
func (b *Broker) publish(ctx context.Context, exchange, key string, prepare target, p *amqp.Publishing) error {
	var lastErr error
	backoff := reconnect.Backoff{Policy: publishPolicy}
	var rctx context.Context
	cancel := func() {}
	defer func() { cancel() }()
	for attempt := 0; ; attempt++ {
		err := b.publishOnce(ctx, exchange, key, prepare, p)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if lastErr != nil {
				return fmt.Errorf("%w (earlier: %v)", err, lastErr)
			}
			return err
		}
		if permanent(err) {
			return err
		}
		lastErr = err
		if rctx == nil {
			rctx, cancel = b.retryContext(ctx)
		}
		if !backoff.Wait(rctx) {
			return fmt.Errorf("amqp: broker unreachable, gave up after %d attempts: %w", attempt+1, lastErr)
		}
	}
}

func (b *Broker) publishOnce(ctx context.Context, exchange, key string, prepare target, p *amqp.Publishing) error {
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	if err := s.prepare(prepare); err != nil {
		return err
	}
	pc := s.pubs[int(s.next.Add(1))%len(s.pubs)]
	ch, err := pc.get(s)
	if err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, *p)
	if err != nil {
		return err
	}
	var timeout <-chan time.Time
	if b.opts.ConfirmTimeout > 0 {
		t := time.NewTimer(b.opts.ConfirmTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("amqp: no publisher confirm: %w", ctx.Err())
	case <-timeout:
		return fmt.Errorf("%w (%v)", errConfirmTimeout, b.opts.ConfirmTimeout)
	}
	if dc.Acked() {
		return nil
	}
	if ch.IsClosed() || s.dead() {
		// Pending confirmations of a closed channel are reported as nacks:
		// the message may or may not have been stored.
		return fmt.Errorf("%w before the publisher confirm", errConnLost)
	}
	// A channel whose quorum queue client lost the queue's leader (its node
	// died) may nack every later publish to that queue: the retry gets a
	// fresh channel.
	pc.drop(ch)
	return errNacked
}

// Publish sends msg to queue (default exchange, routing key = queue) and
// returns once RabbitMQ confirmed it. The queue is declared first, once per
// connection, as Celery declares it.
func (b *Broker) Publish(ctx context.Context, queue string, msg *driver.Message) error {
	p, err := publishing(msg)
	if err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", queue, err)
	}
	return b.publish(ctx, "", queue, target{kind: 'q', queue: queue}, &p)
}

// delayLevel returns the largest level l with 2^l seconds ≤ d, capped at
// MaxDelayLevel, or -1 when d is under a second.
func delayLevel(d time.Duration) int {
	if d < time.Second { // a past due time included: uint64 of a negative is huge
		return -1
	}
	return min(bits.Len64(uint64(d/time.Second))-1, MaxDelayLevel)
}

// Defer parks msg in RabbitMQ until due: with classic queues in the wait
// queue of queue whose TTL is the largest power of two seconds not above the
// remaining delay, which dead-letters it to queue when the TTL ends; with
// quorum queues through kombu's native delayed delivery, which brings it to
// queue after the whole delay in seconds (see the package documentation). A
// message due in less than a second is published to queue directly.
func (b *Broker) Defer(ctx context.Context, queue string, msg *driver.Message, due time.Time) error {
	if b.quorum() {
		return b.deferNative(ctx, queue, msg, due)
	}
	level := delayLevel(time.Until(due))
	if level < 0 {
		return b.Publish(ctx, queue, msg)
	}
	p, err := publishing(msg)
	if err != nil {
		return fmt.Errorf("amqp: defer to %q: %w", queue, err)
	}
	// A per-message expiration would cut the wait short; the expires header
	// still revokes the task when it is finally received.
	p.Expiration = ""
	name := b.delayQueue(queue, level)
	return b.publish(ctx, "", name, target{kind: 'd', queue: queue, level: level}, &p)
}

// maxRoutingKey is AMQP's limit on a routing key's length (a shortstr).
const maxRoutingKey = 255

// deferNative publishes msg to the first level of the native delayed
// delivery, as Celery 5.5 publishes an ETA task to quorum queues.
func (b *Broker) deferNative(ctx context.Context, queue string, msg *driver.Message, due time.Time) error {
	secs := nativeSeconds(time.Until(due))
	if secs == 0 {
		return b.Publish(ctx, queue, msg)
	}
	key := nativeRoutingKey(secs, queue)
	if len(key) > maxRoutingKey {
		return fmt.Errorf("amqp: defer to %q: the queue name is too long for native delayed delivery (at most %d bytes)", queue, maxRoutingKey-2*NativeDelayLevels)
	}
	p, err := publishing(msg)
	if err != nil {
		return fmt.Errorf("amqp: defer to %q: %w", queue, err)
	}
	p.Expiration = ""
	return b.publish(ctx, nativeLevel(NativeDelayLevels-1), key, target{kind: 'q', queue: queue}, &p)
}
