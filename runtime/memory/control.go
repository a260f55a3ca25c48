package memory

import (
	"bytes"
	"context"
	"maps"
	"sync"

	"github.com/taskgen/taskgen/runtime/driver"
)

var _ driver.ControlTransport = (*Broker)(nil)

// fanout is a set of subscriber channels.
type fanout struct {
	mu   sync.Mutex
	subs map[chan *driver.RawMessage]struct{}
}

func (f *fanout) subscribe(ctx context.Context, done <-chan struct{}) <-chan *driver.RawMessage {
	ch := make(chan *driver.RawMessage, 64)
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[chan *driver.RawMessage]struct{}{}
	}
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		f.mu.Lock()
		delete(f.subs, ch)
		close(ch)
		f.mu.Unlock()
	}()
	return ch
}

// publish delivers a copy of msg, with exchange and routingKey, to every
// subscriber, dropping it for a subscriber whose buffer is full (fanout
// traffic is transient).
func (f *fanout) publish(msg *driver.RawMessage, exchange, routingKey string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		c := *msg
		c.Body = bytes.Clone(msg.Body)
		c.Headers = maps.Clone(msg.Headers)
		c.Exchange, c.RoutingKey = exchange, routingKey
		select {
		case ch <- &c:
		default:
		}
	}
}

type controlBus struct {
	mu      sync.Mutex
	control fanout
	replies map[string]*fanout
}

func (b *Broker) bus() *controlBus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctl == nil {
		b.ctl = &controlBus{replies: map[string]*fanout{}}
	}
	return b.ctl
}

// ConsumeControl delivers broadcast control requests until ctx ends or the
// broker closes.
func (b *Broker) ConsumeControl(ctx context.Context, _ string) (<-chan *driver.RawMessage, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	return b.bus().control.subscribe(ctx, b.done), nil
}

// PublishControl broadcasts a control request to every consumer, on the
// celery.pidbox exchange.
func (b *Broker) PublishControl(_ context.Context, msg *driver.RawMessage) error {
	if b.isClosed() {
		return errClosed
	}
	b.bus().control.publish(msg, controlExchange, "")
	return nil
}

// controlExchange is the exchange of Celery's remote-control requests.
const controlExchange = "celery.pidbox"

func (c *controlBus) replyFanout(oid string) *fanout {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.replies[oid]
	if !ok {
		f = &fanout{}
		c.replies[oid] = f
	}
	return f
}

// Reply delivers a reply to the client consuming routingKey, with exchange
// and routingKey.
func (b *Broker) Reply(_ context.Context, exchange, routingKey string, msg *driver.RawMessage) error {
	if b.isClosed() {
		return errClosed
	}
	b.bus().replyFanout(routingKey).publish(msg, exchange, routingKey)
	return nil
}

// ConsumeReplies delivers the replies addressed to oid until ctx ends or the
// broker closes.
func (b *Broker) ConsumeReplies(ctx context.Context, oid string) (<-chan *driver.RawMessage, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	bus := b.bus()
	ch := bus.replyFanout(oid).subscribe(ctx, b.done)
	go func() {
		select {
		case <-ctx.Done():
		case <-b.done:
		}
		bus.mu.Lock()
		delete(bus.replies, oid)
		bus.mu.Unlock()
	}()
	return ch, nil
}
