// Package memory is the in-process transport and result backend behind the
// memory:// URL. It is for tests, demos and single-process programs: messages
// live in this process only and are lost when it exits.
//
// Messages still go through the full Celery message model (headers and a
// msgpack or JSON body), so encoding mistakes show as they would on a real
// broker. Every memory:// URL with the same host names the same broker within
// a process: memory:// and memory://other are two separate brokers.
//
//	import _ "github.com/taskgen/taskgen/runtime/memory"
//
//	app, err := runtime.New(runtime.Config{Broker: "memory://", Backend: "memory://"})
package memory

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

func init() {
	driver.RegisterBroker("memory", func(u *url.URL, _ driver.TransportOptions) (driver.Broker, error) {
		return brokerNamed(u.Host), nil
	})
	driver.RegisterBackend("memory", func(u *url.URL, _ driver.TransportOptions) (driver.ResultBackend, error) {
		return backendNamed(u.Host), nil
	})
}

var (
	registryMu sync.Mutex
	brokers    = map[string]*Broker{}
	backends   = map[string]*Backend{}
)

func brokerNamed(name string) *Broker {
	registryMu.Lock()
	defer registryMu.Unlock()
	b, ok := brokers[name]
	if !ok {
		b = NewBroker()
		brokers[name] = b
	}
	return b
}

func backendNamed(name string) *Backend {
	registryMu.Lock()
	defer registryMu.Unlock()
	b, ok := backends[name]
	if !ok {
		b = NewBackend()
		backends[name] = b
	}
	return b
}

// DeadLetter is a message the broker set aside, with the reason.
type DeadLetter struct {
	Queue   string
	Reason  string
	Message *driver.Message
	Time    time.Time // when it was set aside
}

// Broker is an in-process message broker with at-least-once semantics:
// un-acknowledged deliveries go back to their queue when requeued.
type Broker struct {
	schedules // driver.ScheduleStore: runtime/beat's state

	mu      sync.Mutex
	queues  map[string][]*driver.Message
	wake    chan struct{} // closed and replaced when a message arrives
	dead    []DeadLetter
	timers  map[*time.Timer]struct{}
	closed  bool
	done    chan struct{} // closed by Close: ends the fan-out subscriptions
	unacked int
	ctl     *controlBus
}

var (
	_ driver.Broker         = (*Broker)(nil)
	_ driver.Delayer        = (*Broker)(nil)
	_ driver.QueueInspector = (*Broker)(nil)
)

// NewBroker returns an empty broker not registered under any URL.
func NewBroker() *Broker {
	return &Broker{queues: map[string][]*driver.Message{}, wake: make(chan struct{}), timers: map[*time.Timer]struct{}{}, done: make(chan struct{})}
}

var errClosed = errors.New("memory broker closed")

// Publish appends a copy of msg to queue.
func (b *Broker) Publish(ctx context.Context, queue string, msg *driver.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := msg.Clone()
	c.RoutingKey = queue
	c.Exchange = ""
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	b.queues[queue] = append(b.queues[queue], c)
	b.signal()
	return nil
}

func (b *Broker) signal() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// Defer publishes msg to queue when due.
func (b *Broker) Defer(ctx context.Context, queue string, msg *driver.Message, due time.Time) error {
	c := msg.Clone()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	var t *time.Timer
	t = time.AfterFunc(time.Until(due), func() {
		b.mu.Lock()
		delete(b.timers, t)
		b.mu.Unlock()
		_ = b.Publish(context.Background(), queue, c)
	})
	b.timers[t] = struct{}{}
	return nil
}

// QueueLength returns the number of ready messages in queue.
func (b *Broker) QueueLength(_ context.Context, queue string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(len(b.queues[queue])), nil
}

// DeadLetters returns the messages set aside so far.
func (b *Broker) DeadLetters() []DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]DeadLetter(nil), b.dead...)
}

// Unacked returns the number of delivered, unsettled messages.
func (b *Broker) Unacked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unacked
}

// Consume delivers messages from queues, in the order given, keeping at most
// prefetch of them unsettled.
func (b *Broker) Consume(ctx context.Context, queues []string, prefetch int) (<-chan driver.Delivery, error) {
	if prefetch <= 0 {
		prefetch = 1
	}
	out := make(chan driver.Delivery)
	slots := make(chan struct{}, prefetch)
	go func() {
		defer close(out)
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var m *driver.Message
			var q string
			for m == nil {
				b.mu.Lock()
				if b.closed {
					b.mu.Unlock()
					return
				}
				for _, name := range queues {
					if l := b.queues[name]; len(l) > 0 {
						m, q = l[0], name
						l[0] = nil
						b.queues[name] = l[1:]
						break
					}
				}
				wake := b.wake
				if m != nil {
					b.unacked++
				}
				b.mu.Unlock()
				if m == nil {
					select {
					case <-wake:
					case <-ctx.Done():
						return
					}
				}
			}
			d := &delivery{b: b, m: m, queue: q, slots: slots}
			select {
			case out <- d:
			case <-ctx.Done():
				d.Requeue()
				return
			}
		}
	}()
	return out, nil
}

// Close stops the broker: consumers and fan-out subscriptions end, Publish
// fails and pending delays are dropped.
func (b *Broker) Close() error {
	// Brokers registered under a URL are shared by every app of the process;
	// closing one app must not break the others, so Close only stops timers
	// of unregistered brokers.
	registryMu.Lock()
	shared := false
	for _, x := range brokers {
		if x == b {
			shared = true
		}
	}
	registryMu.Unlock()
	if shared {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.done)
	for t := range b.timers {
		t.Stop()
	}
	b.signal()
	return nil
}

type delivery struct {
	b     *Broker
	m     *driver.Message
	queue string
	slots chan struct{}
	once  sync.Once
}

func (d *delivery) Message() *driver.Message { return d.m }
func (d *delivery) Raw() []byte              { return d.m.Body }
func (d *delivery) DecodeError() error       { return nil }

var errSettled = errors.New("memory: delivery already settled")

func (d *delivery) settle(fn func()) error {
	err := errSettled
	d.once.Do(func() {
		d.b.mu.Lock()
		d.b.unacked--
		if fn != nil {
			fn()
		}
		d.b.mu.Unlock()
		<-d.slots
		err = nil
	})
	return err
}

func (d *delivery) Ack() error { return d.settle(nil) }

func (d *delivery) Reject(reason string) error {
	return d.settle(func() {
		d.b.dead = append(d.b.dead, DeadLetter{Queue: d.queue, Reason: reason, Message: d.m, Time: time.Now()})
	})
}

func (d *delivery) Requeue() error {
	return d.settle(func() {
		m := d.m.Clone()
		m.Redelivered = true
		d.b.queues[d.queue] = append([]*driver.Message{m}, d.b.queues[d.queue]...)
		d.b.signal()
	})
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}
