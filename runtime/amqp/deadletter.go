package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/runtime/driver"
)

const (
	// HeaderDeadLetterTime holds when a message was dead-lettered (RFC 3339).
	HeaderDeadLetterTime = "x-taskgen-dead-letter-time"
	// HeaderDeadLetterHost holds the worker that dead-lettered a message.
	HeaderDeadLetterHost = "x-taskgen-dead-letter-host"
)

var (
	_ driver.DeadLetterStore = (*Broker)(nil)
	_ driver.QueuePurger     = (*Broker)(nil)
)

// Dead letters live in the queue "<queue>.dead_letter" (see the package
// documentation). AMQP cannot browse a queue, so listing, requeueing and
// dropping take its messages with basic.get on a channel of their own, up to
// the count the queue had when they began, and return those they keep when
// that channel closes (RabbitMQ puts them back in their places). Two scans
// at the same time each see only part of the queue.

// scanDead takes up to the current length of queue's dead-letter queue and
// calls keep for each; deliveries keep returns true for are acknowledged
// (removed), the others returned when the channel closes.
func (b *Broker) scanDead(ctx context.Context, queue string, take func(dl driver.DeadLetter, d *amqp.Delivery) (bool, error)) error {
	s, err := b.session(ctx)
	if err != nil {
		return fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(deadLetterQueue(queue), true, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil // never declared: no dead letters
		}
		return fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
	}
	kept, last := 0, uint64(0)
	for range q.Messages {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(deadLetterQueue(queue), false)
		if err != nil {
			return fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
		}
		if !ok {
			break
		}
		drop, err := take(deadLetterOf(&d, queue), &d)
		if err != nil {
			return err
		}
		if drop {
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
			}
			continue
		}
		kept, last = kept+1, d.DeliveryTag
	}
	if kept == 0 {
		return nil
	}
	// Return the kept ones, and wait (up to 2 s) until the queue counts
	// them again: a quorum queue takes them back asynchronously, and the
	// next scan or count must not miss them.
	if err := ch.Nack(last, true, true); err != nil {
		return fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		q, err := ch.QueueDeclarePassive(deadLetterQueue(queue), true, false, false, false, nil)
		if err != nil || q.Messages >= kept {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// deadLetterOf describes a message of a dead-letter queue: reason, queue,
// time and host from taskgen's headers, or from RabbitMQ's x-death for what
// RabbitMQ dead-lettered itself (the delivery limit of a quorum queue).
func deadLetterOf(d *amqp.Delivery, queue string) driver.DeadLetter {
	dl := driver.DeadLetter{Queue: queue}
	dl.Reason, _ = d.Headers[HeaderDeadLetterReason].(string)
	if q, _ := d.Headers[HeaderDeadLetterQueue].(string); q != "" {
		dl.Queue = q
	}
	if t, ok := d.Headers[HeaderDeadLetterTime].(string); ok {
		dl.Time, _ = time.Parse(time.RFC3339Nano, t)
	}
	dl.Hostname, _ = d.Headers[HeaderDeadLetterHost].(string)
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 && dl.Reason == "" {
		if x, ok := deaths[0].(amqp.Table); ok {
			if r, _ := x["reason"].(string); r != "" {
				dl.Reason = "rabbitmq: " + r
			}
			if t, ok := x["time"].(time.Time); ok {
				dl.Time = t
			}
		}
	}
	c := *d
	c.Headers = republishHeaders(d.Headers)
	m, err := message(&c, dl.Queue)
	if err != nil {
		m = nil
	}
	driver.DeadLetterFromMessage(&dl, m, d.Body)
	return dl
}

// republishHeaders are a dead letter's headers without the dead-lettering
// ones (taskgen's and RabbitMQ's x-death).
func republishHeaders(h amqp.Table) amqp.Table {
	out := make(amqp.Table, len(h))
	for k, v := range h {
		switch k {
		case HeaderDeadLetterReason, HeaderDeadLetterQueue, HeaderDeadLetterTime, HeaderDeadLetterHost,
			"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
			"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count":
			continue
		}
		out[k] = v
	}
	return out
}

// ListDeadLetters returns up to limit messages of "<queue>.dead_letter",
// newest first.
func (b *Broker) ListDeadLetters(ctx context.Context, queue string, limit int) ([]driver.DeadLetter, error) {
	out := []driver.DeadLetter{}
	err := b.scanDead(ctx, queue, func(dl driver.DeadLetter, _ *amqp.Delivery) (bool, error) {
		out = append(out, dl)
		return false, nil
	})
	slices.Reverse(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// CountDeadLetters returns the ready-message count of "<queue>.dead_letter"
// (0 when it does not exist).
func (b *Broker) CountDeadLetters(ctx context.Context, queue string) (int64, error) {
	n, err := b.QueueLength(ctx, deadLetterQueue(queue))
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return 0, nil
	}
	return n, err
}

// RequeueDeadLetters publishes the matching dead letters back to their
// queue (properties, headers and body as they were, without the
// dead-lettering headers), and acknowledges each after its confirm.
func (b *Broker) RequeueDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	want := driver.IDSet(ids)
	n := 0
	err := b.scanDead(ctx, queue, func(dl driver.DeadLetter, d *amqp.Delivery) (bool, error) {
		if !want[dl.ID] {
			return false, nil
		}
		p := amqp.Publishing{Headers: republishHeaders(d.Headers), ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
			DeliveryMode: amqp.Persistent, Priority: d.Priority, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo,
			MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, AppId: d.AppId, Body: d.Body}
		if err := b.publish(ctx, "", dl.Queue, target{kind: 'q', queue: dl.Queue}, &p); err != nil {
			return false, fmt.Errorf("amqp: requeue dead letter %s to %q: %w", dl.ID, dl.Queue, err)
		}
		n++
		return true, nil
	})
	return n, err
}

// DropDeadLetters acknowledges (removes) the matching dead letters.
func (b *Broker) DropDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	want := driver.IDSet(ids)
	n := 0
	err := b.scanDead(ctx, queue, func(dl driver.DeadLetter, _ *amqp.Delivery) (bool, error) {
		if want[dl.ID] {
			n++
			return true, nil
		}
		return false, nil
	})
	return n, err
}

// PurgeQueue purges queue (queue.purge) and returns how many messages it
// removed. A queue that does not exist is an error.
func (b *Broker) PurgeQueue(ctx context.Context, queue string) (int64, error) {
	s, err := b.session(ctx)
	if err != nil {
		return 0, fmt.Errorf("amqp: purge %q: %w", queue, err)
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("amqp: purge %q: %w", queue, err)
	}
	defer ch.Close()
	n, err := ch.QueuePurge(queue, false)
	if err != nil {
		return 0, fmt.Errorf("amqp: purge %q: %w", queue, err)
	}
	return int64(n), nil
}
