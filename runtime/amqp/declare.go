package amqp

import (
	"errors"
	"fmt"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

// declKey names one declaration of a session.
type declKey struct {
	kind byte // 'q' task queue, 'l' dead-letter, 'd' delay wait queue, 'n' native delayed delivery entities
	name string
}

// once runs declare for key once per session; concurrent callers wait for
// the first. A failed declaration is retried by the next caller.
func (s *session) once(key declKey, declare func() error) error {
	s.declMu.RLock()
	d, ok := s.declared[key]
	s.declMu.RUnlock()
	if ok {
		select {
		case <-d.done:
			return d.err
		default:
		}
	}
	s.declMu.Lock()
	d, ok = s.declared[key]
	if ok {
		s.declMu.Unlock()
		select {
		case <-d.done:
			return d.err
		case <-s.closed:
			return errConnLost
		}
	}
	d = &decl{done: make(chan struct{})}
	s.declared[key] = d
	s.declMu.Unlock()
	d.err = declare()
	if d.err != nil {
		s.declMu.Lock()
		delete(s.declared, key)
		s.declMu.Unlock()
	}
	close(d.done)
	return d.err
}

// queueArgs are the arguments of task queue q: none, as Celery, unless
// max_priority is configured; x-queue-type "quorum" with queue_type=quorum
// (what Celery 5.5 declares with task_default_queue_type = "quorum"), and
// with delivery_limit the limit and the dead-letter exchange and routing key
// that send a message delivered too often to q's dead-letter queue.
func (b *Broker) queueArgs(q string) amqp.Table {
	if b.opts.QueueType == QueueTypeQuorum {
		t := amqp.Table{"x-queue-type": QueueTypeQuorum}
		if b.opts.DeliveryLimit > 0 {
			t["x-delivery-limit"] = int32(b.opts.DeliveryLimit)
			t["x-dead-letter-exchange"] = b.opts.DeadLetterExchange
			t["x-dead-letter-routing-key"] = q
		}
		return t
	}
	if b.opts.MaxPriority == 0 {
		return nil
	}
	return amqp.Table{"x-max-priority": int32(b.opts.MaxPriority)}
}

func (b *Broker) quorum() bool { return b.opts.QueueType == QueueTypeQuorum }

func (b *Broker) warnOnce(key string, msg string, args ...any) {
	b.mu.Lock()
	seen := b.warned[key]
	b.warned[key] = true
	b.mu.Unlock()
	if !seen {
		b.log.Warn(msg, args...)
	}
}

// declareTaskQueue declares queue q as Celery does: a durable direct exchange
// q, a durable queue q and the binding q → q with routing key q. Entities
// that exist with other arguments are used as they are (with a warning).
// With a delivery limit, q's dead-letter queue is declared first, so that
// RabbitMQ has somewhere to put what it dead-letters.
func (b *Broker) declareTaskQueue(conn *amqp.Connection, slot **amqp.Channel, q string) error {
	if b.opts.DeliveryLimit > 0 {
		if err := b.declareDeadLetter(conn, slot, q); err != nil {
			return err
		}
	}
	return b.declare(conn, slot, q, q, b.queueArgs(q), true)
}

// declare declares a durable queue with args and, when bind, the durable
// direct exchange named exchange bound to it with routing key q.
func (b *Broker) declare(conn *amqp.Connection, slot **amqp.Channel, exchange, q string, args amqp.Table, bind bool) error {
	exchangeOK := true
	if bind {
		var err error
		if exchangeOK, err = b.exchangeDeclare(conn, slot, exchange, amqp.ExchangeDirect); err != nil {
			return err
		}
	}
	if err := b.queueDeclare(conn, slot, q, args); err != nil {
		return err
	}
	if bind && exchangeOK {
		err := withChannel(conn, slot, func(ch *amqp.Channel) error {
			return ch.QueueBind(q, q, exchange, false, nil)
		})
		if err != nil {
			return fmt.Errorf("amqp: bind queue %q to exchange %q: %w", q, exchange, err)
		}
	}
	return nil
}

// exchangeDeclare declares a durable exchange of kind. One that exists with
// other settings is used as it is, with a warning; ok is then false.
func (b *Broker) exchangeDeclare(conn *amqp.Connection, slot **amqp.Channel, name, kind string) (ok bool, err error) {
	err = withChannel(conn, slot, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(name, kind, true, false, false, false, nil)
	})
	if err == nil {
		return true, nil
	}
	if !isPrecondition(err) {
		return false, fmt.Errorf("amqp: declare exchange %q: %w", name, err)
	}
	b.warnOnce("x:"+name, "exchange exists with other settings than Celery's (durable, "+kind+"); using it as it is", "exchange", name, "err", err)
	return false, nil
}

// queueDeclare declares the durable queue q with args. One that exists with
// other arguments is used as it is, with a warning.
func (b *Broker) queueDeclare(conn *amqp.Connection, slot **amqp.Channel, q string, args amqp.Table) error {
	err := withChannel(conn, slot, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(q, true, false, false, false, args)
		return err
	})
	if err == nil {
		return nil
	}
	if !isPrecondition(err) {
		return fmt.Errorf("amqp: declare queue %q: %w", q, err)
	}
	b.warnOnce("q:"+q, "queue exists with other arguments; using it as it is (set max_priority, queue_type and delivery_limit to match the other side)", "queue", q, "err", err)
	err = withChannel(conn, slot, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("amqp: declare queue %q: %w", q, err)
	}
	return nil
}

func isPrecondition(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed
}

// declareQueue declares task queue q once per session; with quorum queues
// also kombu's native delayed delivery entities (once) and q's binding to
// them, as a Celery 5.5 worker does for its queues.
func (s *session) declareQueue(q string) error {
	return s.once(declKey{'q', q}, func() error {
		if s.b.quorum() {
			err := s.once(declKey{'n', ""}, func() error {
				s.adminMu.Lock()
				defer s.adminMu.Unlock()
				return s.b.declareNative(s.conn, &s.admin)
			})
			if err != nil {
				return err
			}
		}
		s.adminMu.Lock()
		defer s.adminMu.Unlock()
		if err := s.b.declareTaskQueue(s.conn, &s.admin, q); err != nil {
			return err
		}
		if s.b.quorum() {
			return s.b.bindNative(s.conn, &s.admin, q)
		}
		return nil
	})
}

// deadLetterQueue names the dead-letter queue of queue.
func deadLetterQueue(queue string) string { return queue + DeadLetterQueueSuffix }

// declareDeadLetter declares the dead-letter exchange (direct, durable),
// the dead-letter queue of q (durable; a quorum queue with queue_type=quorum)
// and their binding with routing key q.
func (b *Broker) declareDeadLetter(conn *amqp.Connection, slot **amqp.Channel, q string) error {
	ex := b.opts.DeadLetterExchange
	err := withChannel(conn, slot, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(ex, amqp.ExchangeDirect, true, false, false, false, nil)
	})
	if err != nil {
		return fmt.Errorf("amqp: declare dead-letter exchange %q: %w", ex, err)
	}
	var args amqp.Table
	if b.quorum() {
		args = amqp.Table{"x-queue-type": QueueTypeQuorum}
	}
	if err := b.queueDeclare(conn, slot, deadLetterQueue(q), args); err != nil {
		return err
	}
	err = withChannel(conn, slot, func(ch *amqp.Channel) error {
		return ch.QueueBind(deadLetterQueue(q), q, ex, false, nil)
	})
	if err != nil {
		return fmt.Errorf("amqp: bind dead-letter queue %q: %w", deadLetterQueue(q), err)
	}
	return nil
}

func (s *session) declareDeadLetter(q string) error {
	return s.once(declKey{'l', q}, func() error {
		s.adminMu.Lock()
		defer s.adminMu.Unlock()
		return s.b.declareDeadLetter(s.conn, &s.admin, q)
	})
}

// delayQueue names the wait queue of queue at level (2^level seconds).
func (b *Broker) delayQueue(queue string, level int) string {
	return b.opts.DelayPrefix + "." + queue + "." + strconv.FormatInt(1<<level, 10) + "s"
}

func (s *session) declareDelay(queue string, level int) error {
	name := s.b.delayQueue(queue, level)
	return s.once(declKey{'d', name}, func() error {
		if err := s.declareQueue(queue); err != nil {
			return err
		}
		args := amqp.Table{
			"x-message-ttl":             int64(1<<level) * 1000,
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": queue,
		}
		s.adminMu.Lock()
		defer s.adminMu.Unlock()
		return s.b.declare(s.conn, &s.admin, "", name, args, false)
	})
}

// target is what a publish needs declared first.
type target struct {
	kind  byte // 'q' task queue, 'l' its dead-letter queue, 'd' its wait queue at level
	queue string
	level int
}

func (s *session) prepare(t target) error {
	switch t.kind {
	case 'q':
		return s.declareQueue(t.queue)
	case 'l':
		return s.declareDeadLetter(t.queue)
	case 'd':
		return s.declareDelay(t.queue, t.level)
	}
	return nil
}
