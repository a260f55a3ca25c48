package memory

import (
	"bytes"
	"context"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/taskgen/taskgen/runtime/driver"
)

var _ driver.EventTransport = (*Broker)(nil)

// EventBuffer is how many events a subscriber may lag behind before the
// broker drops events for it (Redis pub/sub and AMQP queues drop or block
// slow consumers too; events are transient).
const EventBuffer = 16384

// eventHub is a broker's event fanout. It lives beside the broker (keyed by
// it) so that the core transport stays about task messages.
type eventHub struct {
	mu      sync.RWMutex
	subs    map[chan *driver.RawMessage]struct{}
	dropped atomic.Int64
}

var hubs sync.Map // *Broker -> *eventHub

func (b *Broker) hub() *eventHub {
	if h, ok := hubs.Load(b); ok {
		return h.(*eventHub)
	}
	h, _ := hubs.LoadOrStore(b, &eventHub{subs: map[chan *driver.RawMessage]struct{}{}})
	return h.(*eventHub)
}

// PublishEvent delivers a copy of msg to every current subscriber
// (in-process fanout, the "celeryev" exchange). It never blocks: a
// subscriber more than EventBuffer events behind misses the event, counted
// by DroppedEvents.
func (b *Broker) PublishEvent(ctx context.Context, msg *driver.RawMessage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := b.hub()
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.subs) == 0 {
		return nil
	}
	c := *msg
	c.Body = bytes.Clone(msg.Body)
	c.Headers = maps.Clone(msg.Headers)
	if c.Exchange == "" {
		c.Exchange = driver.EventExchange
	}
	for ch := range h.subs {
		// Each subscriber gets its own copy: receivers may modify it.
		cp := c
		if len(h.subs) > 1 {
			cp.Body = bytes.Clone(c.Body)
			cp.Headers = maps.Clone(c.Headers)
		}
		select {
		case ch <- &cp:
		default:
			h.dropped.Add(1)
		}
	}
	return nil
}

// SubscribeEvents delivers every event published on the broker from now on
// until ctx ends or the broker closes, then closes the channel.
func (b *Broker) SubscribeEvents(ctx context.Context) (<-chan *driver.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.isClosed() {
		return nil, errClosed
	}
	h := b.hub()
	ch := make(chan *driver.RawMessage, EventBuffer)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-b.done:
		}
		h.mu.Lock()
		delete(h.subs, ch)
		close(ch)
		h.mu.Unlock()
	}()
	return ch, nil
}

// DroppedEvents returns how many event deliveries were dropped because a
// subscriber lagged more than EventBuffer events behind.
func (b *Broker) DroppedEvents() int64 { return b.hub().dropped.Load() }
