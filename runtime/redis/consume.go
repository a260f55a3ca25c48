package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

type consumer struct {
	b        *Broker
	queues   []string
	prefetch int
	slots    chan struct{} // one per un-settled delivery
	// out is prefetch deep: the slots bound what is in it, so a fetch loop
	// hands its batch over at once and fetches again as soon as slots free
	// up, not once a pool goroutine took the batch's last delivery.
	out   chan driver.Delivery
	rr    atomic.Uint64
	nonce string
	seq   atomic.Uint64

	// Blockers: one per queue's default-priority list from the start, one
	// per priority list (3, 6, 9) once a message came from it.
	blockMu  sync.Mutex
	blocking map[string]bool // source lists with a blocker
	spawn    func(blockSpec) // starts a blocker (set by Consume)
	stepOf   map[string]int  // priority step of each consumed list (read-only)
	// rotations[r] is what the fetch script gets at rotation r (see keys),
	// built once: the unacked hash and index, then the lists to pop from;
	// rotNames[r] the queue of each list.
	rotations [][]string
	rotNames  [][]any
	idle      atomic.Int32 // fetch loops waiting for wake
	wake      signal       // fired by blockers: a message moved, or a poll ended
	arm       signal       // fired by fetch loops when they become idle

	liveMu sync.Mutex
	live   map[string]struct{} // tags of un-settled deliveries
}

// signal is a broadcast: every receiver of a channel from wait is released
// by the next fire.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// Consume delivers messages of queues, highest Redis priority first (0 is
// highest, kombu's order), rotating among queues. At most prefetch
// deliveries are un-settled at any time. Every delivery is recorded in
// kombu's unacked hash and unacked_index in the same Lua call that pops it.
// While consuming, the broker also restores messages whose visibility
// timeout expired and moves due deferred messages to their queues.
func (b *Broker) Consume(ctx context.Context, queues []string, prefetch int) (<-chan driver.Delivery, error) {
	if b.isClosing() {
		return nil, ErrClosed
	}
	if len(queues) == 0 {
		return nil, errors.New("redis consume: no queues")
	}
	if prefetch <= 0 {
		prefetch = 1
	}
	c := &consumer{b: b, queues: append([]string(nil), queues...), prefetch: prefetch,
		slots: make(chan struct{}, prefetch), out: make(chan driver.Delivery, prefetch), nonce: "taskgen-" + string(newTag(nil)),
		live: map[string]struct{}{}}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-b.closing:
			cancel()
		}
	}()
	// Declare the queues as Python does (binding set members).
	for _, q := range queues {
		if _, ok := b.declared.Load(q); !ok {
			if err := b.client.SAdd(ctx, b.opts.key("_kombu.binding."+q), q+sep+sep+q).Err(); err == nil {
				b.declared.Store(q, struct{}{})
			}
		}
	}
	b.consumers.Add(2 + fetchers)
	var loops sync.WaitGroup // the goroutines that send on c.out
	// spawn is called by Consume and by fetch loops (themselves counted in
	// loops and b.consumers, so neither counter is zero meanwhile).
	c.blocking = map[string]bool{}
	c.spawn = func(sp blockSpec) {
		b.consumers.Add(1)
		loops.Add(1)
		go func() {
			defer b.consumers.Done()
			defer loops.Done()
			c.blocker(ctx, sp)
		}()
	}
	c.buildKeys()
	for _, q := range c.queues {
		c.ensureBlocker(q, 0)
	}
	for range fetchers {
		loops.Add(1)
		go func() {
			defer b.consumers.Done()
			defer loops.Done()
			c.loop(ctx)
		}()
	}
	go func() {
		loops.Wait()
		cancel()
		// Deliveries still buffered go back to their lists, as the fetch
		// loops do with the ones they hold when ctx ends.
	requeue:
		for {
			select {
			case d := <-c.out:
				_ = d.Requeue()
			default:
				break requeue
			}
		}
		close(c.out)
	}()
	go func() {
		defer b.consumers.Done()
		b.maintain(ctx, b.opts.RestoreInterval, func(ctx context.Context) error {
			_, err := b.RestoreVisible(ctx)
			return err
		})
	}()
	go func() {
		defer b.consumers.Done()
		b.moveDueLoop(ctx, b.opts.DelayPollInterval)
	}()
	if b.opts.Heartbeat {
		b.consumers.Add(1)
		go func() {
			defer b.consumers.Done()
			c.heartbeat(ctx)
		}()
	}
	return c.out, nil
}

// heartbeat refreshes the unacked_index score of this consumer's
// un-settled deliveries every visibility_timeout/3 (ZADD XX: entries
// settled or restored meanwhile are not re-added), so that a live Go worker's
// long-running tasks are not restored to another worker, while a dead
// worker's are after the visibility timeout. It runs until the broker closes,
// or until ctx ended and every delivery is settled.
func (c *consumer) heartbeat(ctx context.Context) {
	b := c.b
	t := time.NewTicker(max(b.opts.VisibilityTimeout/3, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
		}
		c.liveMu.Lock()
		tags := make([]string, 0, len(c.live))
		for tag := range c.live {
			tags = append(tags, tag)
		}
		c.liveMu.Unlock()
		if len(tags) == 0 {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		score := float64(time.Now().UnixMicro()) / 1e6
		hctx, cancel := context.WithTimeout(context.Background(), max(b.opts.VisibilityTimeout/3, time.Second))
		pipe := b.client.Pipeline()
		for len(tags) > 0 {
			n := min(len(tags), 500)
			zs := make([]goredis.Z, n)
			for i, tag := range tags[:n] {
				zs[i] = goredis.Z{Score: score, Member: tag}
			}
			pipe.ZAddXX(hctx, b.opts.key("unacked_index"), zs...)
			tags = tags[n:]
		}
		if _, err := pipe.Exec(hctx); err != nil && ctx.Err() == nil {
			b.log.Warn("redis: refreshing un-acknowledged deliveries failed", "err", err)
		}
		cancel()
	}
}

// maintain runs fn every interval until ctx ends.
func (b *Broker) maintain(ctx context.Context, interval time.Duration, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		cctx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		err := fn(cctx)
		cancel()
		if err != nil && ctx.Err() == nil && !failing {
			b.log.Warn("redis maintenance failed (will retry)", "err", err)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *consumer) loop(ctx context.Context) {
	backoff := reconnect.Backoff{Policy: consumePolicy}
	for {
		// Wait for a free prefetch slot, then take as many as are free, up
		// to the fetch batch.
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		rr := c.rr.Load()
		n := 1
		want := min(c.b.opts.FetchBatch, c.prefetch)
		low := max(1, want/4)
		deadline := time.Time{}
	grab:
		for n < want {
			select {
			case c.slots <- struct{}{}:
				n++
				continue
			default:
			}
			if n >= low {
				break
			}
			// Few slots free: give acks a moment to free more, so that
			// fetches stay batched under load.
			if deadline.IsZero() {
				deadline = time.Now().Add(2 * time.Millisecond)
			}
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			t := time.NewTimer(wait)
			select {
			case c.slots <- struct{}{}:
				n++
				t.Stop()
			case <-t.C:
				break grab
			case <-ctx.Done():
				t.Stop()
				break grab
			}
		}
		// Take the wake channel before fetching: a blocker that moves a
		// message after the fetch read the lists fires it, and the loop
		// fetches again instead of sleeping.
		woken := c.wake.wait()
		lists, names := c.keys(rr)
		ds, err := c.fetch(ctx, lists, names, lists[2:], n)
		if err != nil {
			for range n {
				<-c.slots
			}
			if ctx.Err() != nil {
				return
			}
			if !backoff.Retrying() {
				c.b.log.Error("redis consume failed; retrying", "queues", c.queues, "err", err)
			}
			if !backoff.Wait(ctx) {
				return
			}
			continue
		}
		if backoff.Retrying() {
			c.b.log.Info("redis consume resumed", "queues", c.queues)
		}
		backoff.Reset()
		for range n - len(ds) {
			<-c.slots
		}
		if len(ds) > 0 {
			c.rr.Add(1)
			for _, d := range ds {
				if step := c.stepOf[d.list]; step > 0 {
					// Priorities are in use on this queue: block on that
					// list too, so an idle consumer sees the next at once.
					c.ensureBlocker(d.queue, step)
				}
			}
			for i, d := range ds {
				select {
				case c.out <- d:
				case <-ctx.Done():
					for _, r := range ds[i:] {
						_ = r.Requeue()
					}
					return
				}
			}
			continue
		}
		// Nothing ready: wait for a blocker (blocked in BLMOVE on one of
		// the lists) to hand a message over, or to end a poll, so that the
		// lists without a blocker are looked at too.
		c.idle.Add(1)
		c.arm.fire()
		select {
		case <-woken:
		case <-ctx.Done():
		}
		c.idle.Add(-1)
		if ctx.Err() != nil {
			return
		}
	}
}
