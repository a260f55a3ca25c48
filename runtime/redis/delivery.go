package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

type delivery struct {
	c     *consumer
	m     *driver.Message
	err   error
	raw   []byte
	queue string
	list  string
	once  sync.Once // decodes m and err from raw

	settled atomic.Bool

	// Guarded by c.liveMu.
	tag      string
	done     bool // the record's outcome is known (false: handed over by a blocker before its record)
	recorded bool // its unacked entry was written, under tag
	pending  func(tag string, ok bool)
}

func (d *delivery) decode() {
	d.once.Do(func() { d.m, _, d.err = decodeEnvelope(d.raw, d.queue) })
}

func (d *delivery) Message() *driver.Message { d.decode(); return d.m }

func (d *delivery) Raw() []byte { return d.raw }

func (d *delivery) DecodeError() error { d.decode(); return d.err }

// Tag returns kombu's delivery tag of the delivery (the unacked hash field),
// "" while its record is not written.
func (d *delivery) Tag() string {
	d.c.liveMu.Lock()
	defer d.c.liveMu.Unlock()
	return d.tag
}

var errSettled = errors.New("redis: delivery already settled")

func (d *delivery) settle() bool {
	if !d.settled.CompareAndSwap(false, true) {
		return false
	}
	d.c.liveMu.Lock()
	if d.recorded {
		delete(d.c.live, d.tag)
	}
	d.c.liveMu.Unlock()
	<-d.c.slots
	return true
}

// record sets the outcome of a claimed delivery's record and runs the
// settlement that waited for it.
func (d *delivery) record(tag string, ok bool) {
	c := d.c
	c.liveMu.Lock()
	d.tag, d.recorded, d.done = tag, ok, true
	if ok && !d.settled.Load() {
		c.live[tag] = struct{}{}
	}
	op := d.pending
	d.pending = nil
	c.liveMu.Unlock()
	if op != nil {
		op(tag, ok)
	}
}

// afterRecord runs op with the delivery's tag once its unacked entry is
// written: now, or (for a claimed delivery whose record is in flight) when
// it is, in which case it returns nil at once and logs op's error. op does
// not run when the record was never written: the message went back to its
// queue instead.
func (d *delivery) afterRecord(op func(tag string) error) error {
	c := d.c
	c.liveMu.Lock()
	if !d.done {
		d.pending = func(tag string, ok bool) {
			if !ok {
				return
			}
			if err := op(tag); err != nil {
				c.b.log.Error("redis: settling a delivery after its record failed", "tag", tag, "err", err)
			}
		}
		c.liveMu.Unlock()
		return nil
	}
	tag, ok := d.tag, d.recorded
	c.liveMu.Unlock()
	if !ok {
		return nil
	}
	return op(tag)
}

// Ack removes the delivery from the unacked bookkeeping. The removal is
// written in batches shortly after Ack returns (at-least-once: a crash in
// between makes the message come back after the visibility timeout).
func (d *delivery) Ack() error {
	if !d.settle() {
		return errSettled
	}
	return d.afterRecord(d.c.b.ack)
}

// Reject moves the original bytes, with reason, to the dead-letter list and
// removes the delivery from the unacked bookkeeping, atomically.
func (d *delivery) Reject(reason string) error {
	if !d.settle() {
		return errSettled
	}
	b := d.c.b
	entry := appendDeadLetter(nil, d.raw, reason, d.queue, b.opts.host, time.Now())
	return d.afterRecord(func(tag string) error {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
		defer cancel()
		keys := []string{b.opts.key("unacked"), b.opts.key("unacked_index"), b.opts.key(b.DeadLetterList(d.queue))}
		if err := settleScript.Run(ctx, b.client, keys, tag, entry, "back").Err(); err != nil {
			return fmt.Errorf("redis dead-letter: %w", err)
		}
		return nil
	})
}

// Requeue puts the message back at the front of its list, marked
// redelivered, and removes it from the unacked bookkeeping, atomically.
func (d *delivery) Requeue() error {
	if !d.settle() {
		return errSettled
	}
	return d.afterRecord(d.requeue)
}

func (d *delivery) requeue(tag string) error {
	b := d.c.b
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	keys := []string{b.opts.key("unacked"), b.opts.key("unacked_index"), d.list}
	if err := settleScript.Run(ctx, b.client, keys, tag, markRedelivered(d.raw), "front").Err(); err != nil {
		return fmt.Errorf("redis requeue: %w", err)
	}
	return nil
}

// requeueUnsent requeues a fetched delivery that was never handed over (it
// holds no prefetch slot).
func (d *delivery) requeueUnsent() {
	if !d.settled.CompareAndSwap(false, true) {
		return
	}
	d.c.liveMu.Lock()
	delete(d.c.live, d.tag)
	d.c.liveMu.Unlock()
	if err := d.requeue(d.tag); err != nil {
		d.c.b.log.Error("redis: requeueing an undelivered message failed; it comes back after the visibility timeout", "err", err)
	}
}
