package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// subscription is one SubscribeEvents or ConsumeControl call: a PSUBSCRIBE
// on a connection of its own, re-made after failures, whose channel of
// messages outlives connections.
type subscription struct {
	b        *Broker
	what     string // for logs
	pattern  string // PSUBSCRIBE pattern (prefixed, escaped)
	topic    string // channel prefix of the exchange, for routing keys missing from envelopes
	exchange string
	bindKey  string // kombu binding set (prefixed) …
	member   string // … and member kept while subscribed
	queue    string // the binding's queue (its lists are deleted at the end, as kombu does)
	out      chan *driver.RawMessage
	drop     bool // drop messages when out is full (events) instead of waiting

	mu     sync.Mutex
	cur    *goredis.PubSub
	closed bool
}

// subscribe makes s's first subscription, retrying until publish_timeout
// (or ctx) ends, and starts forwarding.
func (b *Broker) subscribe(ctx context.Context, s *subscription) (<-chan *driver.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.isClosing() {
		return nil, ErrClosed
	}
	var ps *goredis.PubSub
	err := b.retryBounded(ctx, func(ctx context.Context) error {
		var err error
		ps, err = s.connect(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redis: subscribe to %s: %w", s.what, err)
	}
	rctx, cancel := b.fanoutCtx(ctx)
	s.cur = ps
	if err := b.goFanout(func() {
		defer cancel()
		s.run(rctx, ps)
	}); err != nil {
		cancel()
		_ = ps.Close()
		return nil, err
	}
	return s.out, nil
}

// connect subscribes on a new connection and returns once Redis confirmed
// the subscription; then it adds the binding member.
func (s *subscription) connect(ctx context.Context) (*goredis.PubSub, error) {
	b := s.b
	ps := b.client.PSubscribe(ctx, s.pattern)
	v, err := ps.ReceiveTimeout(ctx, max(b.opts.redis.DialTimeout, time.Second)+time.Second)
	if err == nil {
		if sub, ok := v.(*goredis.Subscription); !ok || sub.Kind != "psubscribe" {
			err = fmt.Errorf("unexpected reply %v to PSUBSCRIBE", v)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	if s.member != "" {
		if err := b.client.SAdd(ctx, s.bindKey, s.member).Err(); err != nil {
			_ = ps.Close()
			return nil, err
		}
	}
	return ps, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// run forwards ps's messages to s.out until ctx ends, re-subscribing after
// failures, then removes the binding member and closes s.out.
func (s *subscription) run(ctx context.Context, ps *goredis.PubSub) {
	defer close(s.out)
	defer s.cleanup()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		if s.cur != nil {
			_ = s.cur.Close()
		}
	})
	defer stop()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur != nil {
			_ = s.cur.Close()
			s.cur = nil
		}
	}()
	pinged := false
	for {
		v, err := ps.ReceiveTimeout(ctx, pubsubPingInterval)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			pinged = false
			if m, ok := v.(*goredis.Message); ok && !s.deliver(ctx, m) {
				return
			}
			continue
		}
		if isTimeout(err) && !pinged {
			// Idle: check the connection.
			pinged = true
			if err = ps.Ping(ctx); err == nil {
				continue
			}
		} else if isTimeout(err) {
			err = errors.New("no reply to PING")
		}
		if ps = s.reconnect(ctx, ps, err); ps == nil {
			return
		}
		pinged = false
	}
}

// reconnect replaces the failed ps with a new subscription, with backoff
// (100 ms doubling to 5 s), until it succeeds (the new one) or ctx ends
// (nil).
func (s *subscription) reconnect(ctx context.Context, ps *goredis.PubSub, cause error) *goredis.PubSub {
	b := s.b
	s.mu.Lock()
	if s.cur == ps {
		s.cur = nil
	}
	s.mu.Unlock()
	_ = ps.Close()
	b.log.Warn("redis subscription lost; re-subscribing", "subscription", s.what, "err", cause)
	backoff := reconnect.Backoff{Policy: subscribePolicy}
	failing := false
	for {
		if !backoff.Wait(ctx) {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, max(b.opts.ConnectTimeout, 5*time.Second))
		nps, err := s.connect(cctx)
		cancel()
		if err == nil {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = nps.Close()
				return nil
			}
			s.cur = nps
			s.mu.Unlock()
			b.log.Info("redis subscription resumed", "subscription", s.what)
			return nps
		}
		if ctx.Err() != nil {
			return nil
		}
		if !failing {
			b.log.Warn("redis re-subscribe failed; retrying", "subscription", s.what, "err", err)
			failing = true
		}
	}
}

// deliver decodes m and hands it to s.out; false when ctx ended.
func (s *subscription) deliver(ctx context.Context, m *goredis.Message) bool {
	msg, err := decodeRawEnvelope([]byte(m.Payload))
	if err != nil {
		s.b.log.Debug("redis: undecodable message ignored", "subscription", s.what, "channel", m.Channel, "err", err)
		return true
	}
	if msg.Exchange == "" {
		msg.Exchange = s.exchange
	}
	if msg.RoutingKey == "" {
		msg.RoutingKey = strings.TrimPrefix(strings.TrimPrefix(m.Channel, s.topic), "/")
	}
	if s.drop {
		select {
		case s.out <- msg:
		default:
			s.dropped()
		}
		return true
	}
	select {
	case s.out <- msg:
		return true
	case <-ctx.Done():
		return false
	}
}

// dropped counts an event dropped for a slow subscriber, with a warning at
// most every 30 s.
func (s *subscription) dropped() {
	f := s.b.fanout()
	n := f.dropped.Add(1)
	now := time.Now().UnixNano()
	last := f.dropLog.Load()
	if now-last >= int64(30*time.Second) && f.dropLog.CompareAndSwap(last, now) {
		s.b.log.Warn("events dropped: the subscriber lags behind", "subscription", s.what, "dropped_so_far", n)
	}
}

// cleanup removes the binding member and the queue's lists, as kombu does
// when an auto-delete queue's consumer is cancelled.
func (s *subscription) cleanup() {
	if s.member == "" {
		return
	}
	s.b.unbind(s.bindKey, s.member, s.queue)
}

// unbind removes a kombu binding member and the lists of its queue.
func (b *Broker) unbind(bindKey, member, queue string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	pipe := b.client.Pipeline()
	pipe.SRem(ctx, bindKey, member)
	for _, step := range steps {
		pipe.Del(ctx, b.opts.key(listName(queue, step)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.log.Debug("redis: removing a binding failed", "key", bindKey, "err", err)
	}
}

// SubscribeEvents delivers every event published from now on, as Celery's
// EventReceiver receives them on Redis: PSUBSCRIBE "/<db>.celeryev/*" on a
// connection of its own, with binding member "#\x06\x16\x06\x16celeryev.<uuid4>"
// in _kombu.binding.celeryev while it runs. It returns once Redis confirmed
// the subscription. Messages keep their routing key ("task.multi" bodies
// are JSON lists). The channel is closed when ctx ends or the broker is
// closed.
func (b *Broker) SubscribeEvents(ctx context.Context) (<-chan *driver.RawMessage, error) {
	ex := driver.EventExchange
	topic := b.fanoutTopic(ex, "")
	queue := ex + "." + driver.NewID()
	s := &subscription{b: b, what: "events", pattern: globEscape(topic+"/") + "*", topic: topic, exchange: ex,
		bindKey: b.opts.key("_kombu.binding." + ex), member: bindingMember("#", queue), queue: queue,
		out: make(chan *driver.RawMessage, EventBuffer), drop: true}
	return b.subscribe(ctx, s)
}

// ConsumeControl delivers the remote-control requests broadcast to the
// workers, as a Python worker named nodename receives them: PSUBSCRIBE
// "/<db>.celery.pidbox" on a connection of its own, with binding member
// "\x06\x16\x06\x16<nodename>.celery.pidbox" in _kombu.binding.celery.pidbox
// while it runs. It returns once Redis confirmed the subscription.
func (b *Broker) ConsumeControl(ctx context.Context, nodename string) (<-chan *driver.RawMessage, error) {
	if nodename == "" {
		return nil, errors.New("redis: ConsumeControl: empty node name")
	}
	topic := b.fanoutTopic(ControlExchange, "")
	queue := nodename + ControlQueueSuffix
	s := &subscription{b: b, what: "control " + nodename, pattern: globEscape(topic), topic: topic, exchange: ControlExchange,
		bindKey: b.opts.key("_kombu.binding." + ControlExchange), member: bindingMember("", queue), queue: queue,
		out: make(chan *driver.RawMessage, controlBuffer)}
	return b.subscribe(ctx, s)
}

// ConsumeReplies delivers the remote-control replies addressed to oid, as
// kombu's Mailbox collects them on Redis: it adds
// "<oid>\x06\x16\x06\x16<oid>.reply.celery.pidbox" to
// _kombu.binding.reply.celery.pidbox before it returns (so a request
// published afterwards cannot miss its replies), BRPOPs the list
// "<oid>.reply.celery.pidbox" (and its priority lists), and when ctx ends
// removes the member and the lists. The channel is closed then, within
// poll_timeout.
func (b *Broker) ConsumeReplies(ctx context.Context, oid string) (<-chan *driver.RawMessage, error) {
	if oid == "" {
		return nil, errors.New("redis: ConsumeReplies: empty oid")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.isClosing() {
		return nil, ErrClosed
	}
	queue := oid + ReplyQueueSuffix
	bindKey := b.opts.key("_kombu.binding." + ReplyExchange)
	member := bindingMember(oid, queue)
	err := b.retryBounded(ctx, func(ctx context.Context) error {
		return b.client.SAdd(ctx, bindKey, member).Err()
	})
	if err != nil {
		return nil, fmt.Errorf("redis: consume replies: %w", err)
	}
	out := make(chan *driver.RawMessage, controlBuffer)
	rctx, cancel := b.fanoutCtx(ctx)
	err = b.goFanout(func() {
		defer cancel()
		defer close(out)
		defer b.unbind(bindKey, member, queue)
		b.popReplies(rctx, queue, bindKey, member, out)
	})
	if err != nil {
		cancel()
		b.unbind(bindKey, member, queue)
		return nil, err
	}
	return out, nil
}

// popReplies BRPOPs queue's lists until ctx ends, handing replies to out.
// After a failure it adds the binding member again (a restarted Redis may
// have lost it).
func (b *Broker) popReplies(ctx context.Context, queue, bindKey, member string, out chan<- *driver.RawMessage) {
	lists := make([]string, 0, 4)
	for _, step := range steps {
		lists = append(lists, b.opts.key(listName(queue, step)))
	}
	pt := b.opts.PollTimeout
	args := make([]any, 0, len(lists)+2)
	args = append(args, "brpop")
	for _, l := range lists {
		args = append(args, l)
	}
	args = append(args, strconv.FormatFloat(pt.Seconds(), 'f', 3, 64))
	pop := func() ([]string, error) {
		bctx := context.WithoutCancel(ctx)
		if pt%time.Second == 0 {
			return b.client.BRPop(bctx, pt, lists...).Result()
		}
		return b.client.Do(bctx, args...).StringSlice()
	}
	backoff := reconnect.Backoff{Policy: ackPolicy}
	failing := false
	for ctx.Err() == nil {
		var res []string
		var err error
		if failing {
			err = b.client.SAdd(ctx, bindKey, member).Err()
		}
		if err == nil {
			if failing {
				b.log.Info("redis: reading remote-control replies resumed", "queue", queue)
			}
			failing = false
			backoff.Reset()
			res, err = pop()
		}
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				b.log.Warn("redis: reading remote-control replies failed; retrying", "queue", queue, "err", err)
				failing = true
			}
			if !backoff.Wait(ctx) {
				return
			}
			continue
		}
		if len(res) != 2 {
			continue
		}
		msg, err := decodeRawEnvelope([]byte(res[1]))
		if err != nil {
			b.log.Debug("redis: undecodable remote-control reply ignored", "queue", queue, "err", err)
			continue
		}
		select {
		case out <- msg:
		case <-ctx.Done():
			return
		}
	}
}
