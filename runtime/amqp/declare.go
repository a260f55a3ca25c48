package amqp

import (
	"errors"
	"fmt"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

// declKey names one declaration of a session.
type declKey struct {
	kind byte // 'q' task queue, 'l' dead-letter, 'd' delay wait queue
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

// queueArgs are the arguments of a task queue: none, as Celery, unless
// max_priority is configured.
func (b *Broker) queueArgs() amqp.Table {
	if b.opts.MaxPriority == 0 {
		return nil
	}
	return amqp.Table{"x-max-priority": int32(b.opts.MaxPriority)}
}

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
func (b *Broker) declareTaskQueue(conn *amqp.Connection, slot **amqp.Channel, q string) error {
	return b.declare(conn, slot, q, q, b.queueArgs(), true)
}

// declare declares a durable queue with args and, when bind, the durable
// direct exchange named exchange bound to it with routing key q.
func (b *Broker) declare(conn *amqp.Connection, slot **amqp.Channel, exchange, q string, args amqp.Table, bind bool) error {
	exchangeOK := true
	if bind {
		err := withChannel(conn, slot, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil)
		})
		if err != nil {
			if !isPrecondition(err) {
				return fmt.Errorf("amqp: declare exchange %q: %w", exchange, err)
			}
			exchangeOK = false
			b.warnOnce("x:"+exchange, "exchange exists with other settings than Celery's (direct, durable); using it as it is", "exchange", exchange, "err", err)
		}
	}
	err := withChannel(conn, slot, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(q, true, false, false, false, args)
		return err
	})
	if err != nil {
		if !isPrecondition(err) {
			return fmt.Errorf("amqp: declare queue %q: %w", q, err)
		}
		b.warnOnce("q:"+q, "queue exists with other arguments; using it as it is (set max_priority to match the other side)", "queue", q, "err", err)
		err = withChannel(conn, slot, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		})
		if err != nil {
			return fmt.Errorf("amqp: declare queue %q: %w", q, err)
		}
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

func isPrecondition(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed
}

func (s *session) declareQueue(q string) error {
	return s.once(declKey{'q', q}, func() error {
		s.adminMu.Lock()
		defer s.adminMu.Unlock()
		return s.b.declareTaskQueue(s.conn, &s.admin, q)
	})
}

// deadLetterQueue names the dead-letter queue of queue.
func deadLetterQueue(queue string) string { return queue + DeadLetterQueueSuffix }

// declareDeadLetter declares the dead-letter exchange (direct, durable),
// the dead-letter queue of q (durable) and their binding with routing key q.
func (s *session) declareDeadLetter(q string) error {
	ex := s.b.opts.DeadLetterExchange
	return s.once(declKey{'l', q}, func() error {
		return s.withAdmin(func(ch *amqp.Channel) error {
			if err := ch.ExchangeDeclare(ex, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
				return fmt.Errorf("amqp: declare dead-letter exchange %q: %w", ex, err)
			}
			if _, err := ch.QueueDeclare(deadLetterQueue(q), true, false, false, false, nil); err != nil {
				return fmt.Errorf("amqp: declare dead-letter queue %q: %w", deadLetterQueue(q), err)
			}
			if err := ch.QueueBind(deadLetterQueue(q), q, ex, false, nil); err != nil {
				return fmt.Errorf("amqp: bind dead-letter queue %q: %w", deadLetterQueue(q), err)
			}
			return nil
		})
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
