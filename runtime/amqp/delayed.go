package amqp

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Kombu's native delayed delivery (kombu.transport.native_delayed_delivery,
// used by Celery 5.5 when its queues are quorum queues; the design is
// NServiceBus's): 28 levels, level l being a topic exchange
// "celery_delayed_<l>" and a queue of the same name whose messages live
// 2^l seconds, then are dead-lettered to level l-1 (level 0: to the
// exchange "celery_delayed_delivery"). A message's routing key is its delay
// in seconds written as 28 binary digits, most significant first, then the
// destination routing key: "0.0.….1.0.1.celery" waits 5 s. At each level
// the digit of that level sends it into the level's queue (1) or straight on
// to the next level's exchange (0), so the waits add up to the delay. The
// delivery exchange routes it to the destination queue, bound to it with
// a key of 28 '*' words and the queue name.

// Names of the native delayed delivery entities.
const (
	// NativeDelayLevels is the number of levels (kombu's
	// MAX_NUMBER_OF_BITS_TO_USE).
	NativeDelayLevels = 28
	// NativeDelayLevelPrefix and a level number name the exchange and the
	// queue of one level ("celery_delayed_27").
	NativeDelayLevelPrefix = "celery_delayed_"
	// NativeDelayExchange is the exchange delayed messages leave by when
	// due (topic, durable).
	NativeDelayExchange = "celery_delayed_delivery"
	// MaxNativeDelay is the longest delay one trip through the levels
	// holds, 2^28-1 s (about 8.5 years); a longer one is deferred again
	// when it arrives.
	MaxNativeDelay = (1<<NativeDelayLevels - 1) * time.Second
)

// nativeLevel names the exchange and queue of level l.
func nativeLevel(l int) string { return NativeDelayLevelPrefix + strconv.Itoa(l) }

// nativeRoutingKey is kombu's calculate_routing_key: secs (1 … 2^28-1) as
// 28 binary digits separated by dots, then routingKey.
func nativeRoutingKey(secs uint64, routingKey string) string {
	var sb strings.Builder
	sb.Grow(2*NativeDelayLevels + len(routingKey))
	for l := NativeDelayLevels - 1; l >= 0; l-- {
		sb.WriteByte('0' + byte(secs>>l&1))
		sb.WriteByte('.')
	}
	sb.WriteString(routingKey)
	return sb.String()
}

// nativeBindingKey is the key binding queue to the delivery exchange: it
// matches exactly the keys nativeRoutingKey makes for queue. (kombu binds
// "#.<queue>", which also matches a queue whose name ends in ".<queue>".)
func nativeBindingKey(queue string) string {
	return strings.Repeat("*.", NativeDelayLevels) + queue
}

// nativeSeconds is the delay of a message due in d, in whole seconds as
// kombu counts it (truncated, so that a message is never late by the
// rounding; the worker holds it for the rest), capped at MaxNativeDelay; 0
// when it is due within a second.
func nativeSeconds(d time.Duration) uint64 {
	if d < time.Second {
		return 0
	}
	return uint64(min(d, MaxNativeDelay) / time.Second)
}

// declareNative declares the native delayed delivery entities as kombu's
// declare_native_delayed_delivery_exchanges_and_queues does with
// queue_type "quorum" (Celery's broker_native_delayed_delivery_queue_type
// default): per level a durable topic exchange, a quorum queue with
// x-overflow reject-publish, x-message-ttl 2^l s, x-dead-letter-exchange the
// next level and x-dead-letter-strategy at-least-once (a message moves on
// only once the next level has it), and the bindings. Entities that exist
// with other settings (a Celery app with classic delay queues) are used as
// they are, with a warning.
func (b *Broker) declareNative(conn *amqp.Connection, slot **amqp.Channel) error {
	key := "1.#"
	for l := NativeDelayLevels - 1; l >= 0; l-- {
		name := nativeLevel(l)
		if _, err := b.exchangeDeclare(conn, slot, name, amqp.ExchangeTopic); err != nil {
			return err
		}
		dlx := NativeDelayExchange
		if l > 0 {
			dlx = nativeLevel(l - 1)
		}
		args := amqp.Table{
			"x-queue-type":           QueueTypeQuorum,
			"x-overflow":             "reject-publish",
			"x-message-ttl":          int64(1<<l) * 1000,
			"x-dead-letter-exchange": dlx,
			"x-dead-letter-strategy": "at-least-once",
		}
		if err := b.queueDeclare(conn, slot, name, args); err != nil {
			return err
		}
		err := withChannel(conn, slot, func(ch *amqp.Channel) error { return ch.QueueBind(name, key, name, false, nil) })
		if err != nil {
			return fmt.Errorf("amqp: bind queue %q to exchange %q: %w", name, name, err)
		}
		key = "*." + key
	}
	key = "0.#"
	for l := NativeDelayLevels - 1; l > 0; l-- {
		src, dst := nativeLevel(l), nativeLevel(l-1)
		err := withChannel(conn, slot, func(ch *amqp.Channel) error { return ch.ExchangeBind(dst, key, src, false, nil) })
		if err != nil {
			return fmt.Errorf("amqp: bind exchange %q to exchange %q: %w", dst, src, err)
		}
		key = "*." + key
	}
	if _, err := b.exchangeDeclare(conn, slot, NativeDelayExchange, amqp.ExchangeTopic); err != nil {
		return err
	}
	err := withChannel(conn, slot, func(ch *amqp.Channel) error {
		return ch.ExchangeBind(NativeDelayExchange, key, nativeLevel(0), false, nil)
	})
	if err != nil {
		return fmt.Errorf("amqp: bind exchange %q to exchange %q: %w", NativeDelayExchange, nativeLevel(0), err)
	}
	return nil
}

// bindNative binds queue to the delivery exchange, so that messages delayed
// for it (by taskgen or by Celery 5.5) reach it when due.
func (b *Broker) bindNative(conn *amqp.Connection, slot **amqp.Channel, queue string) error {
	err := withChannel(conn, slot, func(ch *amqp.Channel) error {
		return ch.QueueBind(queue, nativeBindingKey(queue), NativeDelayExchange, false, nil)
	})
	if err != nil {
		return fmt.Errorf("amqp: bind queue %q to exchange %q: %w", queue, NativeDelayExchange, err)
	}
	return nil
}
