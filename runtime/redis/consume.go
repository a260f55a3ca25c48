package redis

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/internal/ctxsleep"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// inboxRegistry is the hash of consumers' inboxes (after the global key
// prefix): field inbox key, value "<unix time of the last refresh>|<list the
// inbox's messages came from>".
const inboxRegistry = "_taskgen.inboxes"

type consumer struct {
	b        *Broker
	queues   []string
	prefetch int
	slots    chan struct{} // one per un-settled delivery
	out      chan driver.Delivery
	rr       atomic.Uint64
	nonce    string
	seq      atomic.Uint64

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
		slots: make(chan struct{}, prefetch), out: make(chan driver.Delivery), nonce: "taskgen-" + string(newTag(nil)),
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
		b.maintain(ctx, b.opts.DelayPollInterval, func(ctx context.Context) error {
			_, err := b.MoveDue(ctx)
			return err
		})
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

// buildKeys computes, once per Consume, the fetch script's keys for every
// rotation of the queues, and the priority step of each list.
func (c *consumer) buildKeys() {
	n := len(c.queues)
	c.stepOf = make(map[string]int, 4*n)
	for r := range n {
		lists := make([]string, 0, 2+4*n)
		names := make([]any, 0, 4*n)
		lists = append(lists, c.b.opts.key("unacked"), c.b.opts.key("unacked_index"))
		for _, step := range steps {
			for i := range n {
				q := c.queues[(i+r)%n]
				l := c.b.opts.key(listName(q, step))
				lists = append(lists, l)
				names = append(names, q)
				c.stepOf[l] = step
			}
		}
		c.rotations = append(c.rotations, lists)
		c.rotNames = append(c.rotNames, names)
	}
}

// keys returns the fetch script's keys at rotation rr: the unacked hash and
// index, then the lists in kombu's order, priority-major, the queue order
// rotated by rr; and the queue name of each list. Callers must not modify
// them.
func (c *consumer) keys(rr uint64) (lists []string, names []any) {
	r := rr % uint64(len(c.queues))
	return c.rotations[r], c.rotNames[r]
}

func (c *consumer) loop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	failing := false
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
			if !failing {
				c.b.log.Error("redis consume failed; retrying", "queues", c.queues, "err", err)
			}
			failing = true
			if !ctxsleep.Sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if failing {
			c.b.log.Info("redis consume resumed", "queues", c.queues)
			failing = false
		}
		backoff = 50 * time.Millisecond
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

// inboxPrefix starts the key of a consumer's inbox list (after the global
// key prefix): inboxPrefix + consumer nonce + "." + source list name.
const inboxPrefix = "_taskgen.inbox."

// blockSpec is what a blocker waits on: list src of queue, moved into inbox.
type blockSpec struct {
	queue, src, inbox string
}

// ensureBlocker starts a blocker for queue's list of priority step (one of
// steps) unless one runs.
func (c *consumer) ensureBlocker(queue string, step int) {
	src := c.b.opts.key(listName(queue, step))
	c.blockMu.Lock()
	defer c.blockMu.Unlock()
	if c.blocking[src] {
		return
	}
	c.blocking[src] = true
	c.spawn(blockSpec{queue: queue, src: src, inbox: c.b.opts.key(inboxPrefix + c.nonce + "." + listName(queue, step))})
}

// blocker waits, while a fetch loop is idle, for a message on list sp.src (a
// queue's list of one priority step), moving it with BLMOVE into the
// consumer's inbox for that list. Unlike BRPOP, a message moved this way is
// never only in the consumer's memory: if Redis dies after the move but
// before its reply arrives, the message waits in the inbox. The blocker
// hands the message to the worker at once and records it in the unacked
// hash meanwhile (claim); an Ack, Requeue or Reject that comes first waits
// for the record. Messages of a priority list without a blocker yet are
// fetched by the fetch loops when a poll ends, within PollTimeout.
func (c *consumer) blocker(ctx context.Context, sp blockSpec) {
	b := c.b
	inbox, src := sp.inbox, sp.src
	defer func() {
		// Return what the inbox holds (a message never claimed) to the
		// front of the queue, and unregister it.
		rctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
		defer cancel()
		if _, err := inboxRestoreScript.Run(rctx, b.client, []string{b.opts.key(inboxRegistry), inbox, src}, "").Int(); err != nil {
			b.log.Error("redis: returning a consumer's inbox to its queue failed; another consumer restores it later", "inbox", inbox, "err", err)
		}
	}()
	// A connection of its own, so that when ctx ends CLIENT UNBLOCK ends a
	// blocked BLMOVE at once: shutdown does not wait for a poll to end.
	conn := b.blocking().Conn()
	defer func() { conn.Close() }()
	var clientID atomic.Int64 // the connection's CLIENT ID, 0 when unknown
	noClientID := false       // the server refuses CLIENT ID
	exited := make(chan struct{})
	defer close(exited)
	go func() {
		select {
		case <-ctx.Done():
		case <-exited:
			return
		}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if id := clientID.Load(); id != 0 {
				uctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = b.client.ClientUnblock(uctx, id).Err()
				cancel()
			}
			select {
			case <-exited:
				return
			case <-t.C: // in case the blocker was about to block
			}
		}
	}()
	backoff := 50 * time.Millisecond
	failing := false
	var registered time.Time
	refresh := inboxStale(b.opts) / 4
	unclaimed := false // the inbox may hold messages: claim before blocking
	for {
		if unclaimed {
			if !c.claim(ctx, sp, nil) {
				return
			}
			unclaimed = false
		}
		armed := c.arm.wait()
		if c.idle.Load() == 0 {
			select {
			case <-armed:
				continue
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(registered) > refresh {
			now := time.Now()
			val := strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64) + "|" + src
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.ConnectTimeout)
			err := b.client.HSet(rctx, b.opts.key(inboxRegistry), inbox, val).Err()
			cancel()
			if err == nil {
				registered = now
			}
		}
		var v []byte
		err := error(nil)
		if clientID.Load() == 0 && !noClientID {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.ConnectTimeout)
			var id int64
			id, err = conn.ClientID(rctx).Result()
			cancel()
			var rerr goredis.Error
			switch {
			case err == nil:
				clientID.Store(id)
			case errors.As(err, &rerr):
				// Refused (an ACL without CLIENT): block anyway; shutdown
				// then waits for the poll to end.
				b.log.Warn("redis: CLIENT ID refused; consumers stop within poll_timeout instead of at once", "err", err)
				noClientID, err = true, nil
			}
		}
		if err == nil {
			v, err = c.block(ctx, conn, src, inbox)
		}
		if err != nil {
			// A new connection: a sticky one stays broken once its
			// connection died.
			clientID.Store(0)
			conn.Close()
			conn = b.blocking().Conn()
			if ctx.Err() != nil {
				return
			}
			if !failing {
				b.log.Error("redis consume failed; retrying", "queues", c.queues, "err", err)
			}
			failing = true
			registered = time.Time{}
			// The command may have moved a message before its connection
			// died; and the fetch loops should look too.
			unclaimed = true
			c.wake.fire()
			if !ctxsleep.Sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		failing = false
		backoff = 50 * time.Millisecond
		if v == nil {
			c.wake.fire() // a poll ended: let the fetch loops look at every list
			continue
		}
		// Hand the message over now, record it right after.
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return // still in the inbox: returned to the queue above
		}
		d := &delivery{c: c, raw: v, queue: sp.queue, list: src} // done: false until claimed
		select {
		case c.out <- d:
		case <-ctx.Done():
			<-c.slots
			return
		}
		c.wake.fire() // more may wait behind it
		if !c.claim(ctx, sp, d) {
			return
		}
	}
}

// claim records the messages in sp's inbox in the unacked hash (the fetch
// script) and settles d, a delivery handed over before its record, with
// the tag it got. Older messages found in the inbox (moved by a command
// whose reply was lost) are delivered as fetched ones. It retries until the
// record is written; it returns false when ctx ended first (the inbox then
// goes back to the queue, and d, if any, runs again later: at least once).
func (c *consumer) claim(ctx context.Context, sp blockSpec, d *delivery) bool {
	b := c.b
	lists := []string{b.opts.key("unacked"), b.opts.key("unacked_index"), sp.inbox}
	names := []any{sp.queue}
	srcs := []string{sp.src}
	backoff := 50 * time.Millisecond
	var ds []*delivery
	for {
		var err error
		ds, err = c.fetch(ctx, lists, names, srcs, 1<<16)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			if d != nil {
				d.record("", false)
			}
			return false
		}
		b.log.Warn("redis: recording a delivered message failed; retrying", "queue", sp.queue, "err", err)
		time.Sleep(backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
	mine := -1
	if d != nil {
		for k := len(ds) - 1; k >= 0; k-- {
			if string(ds[k].raw) == string(d.raw) {
				mine = k
				break
			}
		}
		if mine >= 0 {
			c.liveMu.Lock()
			delete(c.live, ds[mine].tag) // d stands for it
			c.liveMu.Unlock()
			d.record(ds[mine].tag, true)
		} else {
			// Returned to the queue meanwhile (stale inbox): it runs again.
			d.record("", false)
		}
	}
	extras := make([]*delivery, 0, len(ds))
	for k, e := range ds {
		if k != mine {
			extras = append(extras, e)
		}
	}
	for k, e := range extras {
		sent := false
		select {
		case c.slots <- struct{}{}:
			select {
			case c.out <- e:
				sent = true
			case <-ctx.Done():
				<-c.slots
			}
		case <-ctx.Done():
		}
		if !sent {
			for _, r := range extras[k:] {
				r.requeueUnsent()
			}
			return false
		}
	}
	return true
}

// inboxStale is how long an inbox registration lives without a refresh
// before RestoreVisible returns the inbox's messages to their queue.
func inboxStale(o *Options) time.Duration {
	return max(10*o.PollTimeout, 30*time.Second)
}

// block waits up to PollTimeout for a message on list src and moves it to
// inbox; it returns the message, or nil when none came.
func (c *consumer) block(ctx context.Context, client *goredis.Conn, src, inbox string) ([]byte, error) {
	pt := c.b.opts.PollTimeout
	bctx := context.WithoutCancel(ctx)
	var v string
	var err error
	if pt < time.Second || pt%time.Second != 0 {
		v, err = client.Do(bctx, "blmove", src, inbox, "RIGHT", "LEFT", strconv.FormatFloat(pt.Seconds(), 'f', 3, 64)).Text()
	} else {
		v, err = client.BLMove(bctx, src, inbox, "RIGHT", "LEFT", pt).Result()
	}
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// fetch runs the fetch script on lists (the unacked hash and index, then the
// lists to pop from), names the queue of each list to pop from, and srcs the
// list a delivery from each goes back to when requeued.
func (c *consumer) fetch(ctx context.Context, lists []string, names []any, srcs []string, n int) ([]*delivery, error) {
	seq := c.seq.Add(1)
	score := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	args := make([]any, 0, 3+len(names))
	args = append(args, n, score, c.nonce+"."+strconv.FormatUint(seq, 10))
	args = append(args, names...)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.b.opts.ConnectTimeout)
	defer cancel()
	res, err := fetchScript.Run(fctx, c.b.client, lists, args...).Slice()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	if len(res)%3 != 0 {
		return nil, fmt.Errorf("fetch script: unexpected reply of %d elements", len(res))
	}
	ds := make([]*delivery, 0, len(res)/3)
	for i := 0; i < len(res); i += 3 {
		idx, _ := res[i].(int64)
		tag, _ := res[i+1].(string)
		env, _ := res[i+2].(string)
		if idx < 1 || int(idx) > len(names) {
			return nil, fmt.Errorf("fetch script: bad list index %v", res[i])
		}
		// Decoded on first use, by the worker's goroutines: the fetch loop
		// goes on to its next round trip meanwhile.
		ds = append(ds, &delivery{c: c, tag: tag, raw: []byte(env), queue: names[idx-1].(string), list: srcs[idx-1], done: true, recorded: true})
	}
	if len(ds) > 0 {
		c.liveMu.Lock()
		for _, d := range ds {
			c.live[d.tag] = struct{}{}
		}
		c.liveMu.Unlock()
	}
	return ds, nil
}

// ---- deliveries ----

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
func (d *delivery) Raw() []byte              { return d.raw }
func (d *delivery) DecodeError() error       { d.decode(); return d.err }

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

func (b *Broker) ack(tag string) error {
	select {
	case b.ackCh <- tag:
		return nil
	case <-b.closing:
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	return b.flushAcks(ctx, []string{tag})
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

// ---- acknowledgements ----

func (b *Broker) acker() {
	batch := make([]string, 0, maxAckBatch)
	backoff := 50 * time.Millisecond
	for {
		if len(batch) == 0 {
			select {
			case t := <-b.ackCh:
				batch = append(batch, t)
			case <-b.closing:
				// Flush what is left, bounded.
				for {
					select {
					case t := <-b.ackCh:
						batch = append(batch, t)
						continue
					default:
					}
					break
				}
				if len(batch) > 0 {
					ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
					if err := b.flushAcks(ctx, batch); err != nil {
						b.log.Error("redis: flushing acknowledgements at close failed; those messages will be redelivered", "n", len(batch), "err", err)
					}
					cancel()
				}
				return
			}
		}
	drain:
		for len(batch) < maxAckBatch {
			select {
			case t := <-b.ackCh:
				batch = append(batch, t)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
		err := b.flushAcks(ctx, batch)
		cancel()
		if err != nil {
			b.log.Warn("redis: acknowledging failed; retrying", "n", len(batch), "err", err)
			select {
			case <-time.After(backoff):
			case <-b.closing:
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		batch = batch[:0]
	}
}

func (b *Broker) flushAcks(ctx context.Context, tags []string) error {
	members := make([]any, len(tags))
	for i, t := range tags {
		members[i] = t
	}
	pipe := b.client.Pipeline()
	pipe.ZRem(ctx, b.opts.key("unacked_index"), members...)
	pipe.HDel(ctx, b.opts.key("unacked"), tags...)
	_, err := pipe.Exec(ctx)
	return err
}

// ---- visibility timeout ----

// restoreLockTTL is how long the unacked_mutex taken by RestoreVisible
// lives if its holder dies before releasing it. kombu takes it for 300 s;
// a Go worker SIGKILLed while holding it would stop every restore for that
// long. The lock only saves duplicate work: each entry is restored by an
// atomic script (and kombu restores by tag in MULTI), so two restorers never
// restore one entry twice.
const restoreLockTTL = 10 * time.Second

// RestoreVisible restores messages delivered longer than the visibility
// timeout ago and never acknowledged (their consumer died), as kombu does:
// under the unacked_mutex lock, each goes back to the front of its queue
// marked redelivered. It returns how many it restored. Consumers call it
// periodically; it is exported for tools and tests.
func (b *Broker) RestoreVisible(ctx context.Context) (int, error) {
	// Inboxes first, without the lock: each inbox moves in one atomic
	// script.
	fromInboxes, err := b.restoreInboxes(ctx)
	if err != nil {
		return fromInboxes, err
	}
	token := string(newTag(nil))
	mutex := b.opts.key("unacked_mutex")
	ok, err := b.client.SetNX(ctx, mutex, token, restoreLockTTL).Result()
	if err != nil || !ok {
		return fromInboxes, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(uctx, b.client, []string{mutex}, token).Err()
	}()
	restored := 0
	ceil := float64(time.Now().Add(-b.opts.VisibilityTimeout).UnixMicro()) / 1e6
	tags, err := b.client.ZRevRangeByScore(ctx, b.opts.key("unacked_index"), &goredis.ZRangeBy{
		Max: strconv.FormatFloat(ceil, 'f', 6, 64), Min: "0", Count: int64(b.opts.RestoreLimit)}).Result()
	if err != nil || len(tags) == 0 {
		return fromInboxes + restored, err
	}
	entries, err := b.client.HMGet(ctx, b.opts.key("unacked"), tags...).Result()
	if err != nil {
		return fromInboxes + restored, err
	}
	for i, tag := range tags {
		entry, _ := entries[i].(string)
		keys := []string{b.opts.key("unacked"), b.opts.key("unacked_index"), ""}
		var env []byte
		if entry == "" {
			keys[2] = b.opts.key("unacked_index") // unused: the script only ZREMs
		} else {
			raw, exchange, rk, err := parseUnackedEntry([]byte(entry))
			if err != nil || rk == "" {
				if err == nil {
					err = errors.New("no routing key")
				}
				b.log.Error("redis: unrestorable unacked entry; moving it to the dead-letter list", "tag", tag, "err", err)
				keys[2] = b.opts.key(b.DeadLetterList("unknown"))
				env = appendDeadLetter(nil, []byte(entry), "unrestorable unacked entry: "+err.Error(), "", b.opts.host, time.Now())
			} else {
				queue := rk
				if exchange != "" {
					// kombu routes through the exchange's bindings; Celery's
					// direct exchanges bind routing key = queue name.
					queue = b.lookupBinding(ctx, exchange, rk)
				}
				keys[2] = b.opts.key(listName(queue, priorityStep(envelopePriority(raw))))
				env = markRedelivered(raw)
			}
		}
		n, err := restoreScript.Run(ctx, b.client, keys, tag, entry, env).Int()
		if err != nil {
			return fromInboxes + restored, err
		}
		restored += n
	}
	if restored > 0 {
		b.log.Warn("redis: restored messages whose visibility timeout expired", "n", restored, "visibility_timeout", b.opts.VisibilityTimeout)
	}
	return fromInboxes + restored, nil
}

// restoreInboxes returns to their queues the messages in consumers' inboxes
// whose registration was not refreshed for inboxStale (the consumer died
// between moving a message and fetching it, or lost Redis meanwhile). A live
// consumer whose inbox is emptied this way loses nothing: every move is
// atomic, and it fetches from the queue.
func (b *Broker) restoreInboxes(ctx context.Context) (int, error) {
	reg, err := b.client.HGetAll(ctx, b.opts.key(inboxRegistry)).Result()
	if err != nil {
		return 0, err
	}
	ceil := time.Now().Add(-inboxStale(b.opts))
	restored := 0
	for inbox, val := range reg {
		at, src, ok := strings.Cut(val, "|")
		sec, perr := strconv.ParseFloat(at, 64)
		if !ok || perr != nil || src == "" {
			b.log.Error("redis: malformed inbox registration; removing it", "inbox", inbox, "value", val)
			_ = b.client.HDel(ctx, b.opts.key(inboxRegistry), inbox).Err()
			continue
		}
		if time.UnixMicro(int64(sec * 1e6)).After(ceil) {
			continue
		}
		n, err := inboxRestoreScript.Run(ctx, b.client, []string{b.opts.key(inboxRegistry), inbox, src}, val).Int()
		if err != nil {
			return restored, err
		}
		restored += n
	}
	if restored > 0 {
		b.log.Warn("redis: returned messages from a stale consumer inbox to their queue", "n", restored)
	}
	return restored, nil
}

// lookupBinding finds the queue bound to exchange with routing key rk
// (kombu's _lookup for direct exchanges); rk itself when there is none.
func (b *Broker) lookupBinding(ctx context.Context, exchange, rk string) string {
	members, err := b.client.SMembers(ctx, b.opts.key("_kombu.binding."+exchange)).Result()
	if err == nil {
		for _, m := range members {
			parts := splitBinding(m)
			if len(parts) == 3 && parts[0] == rk {
				return parts[2]
			}
		}
	}
	return rk
}

func splitBinding(m string) []string {
	var parts []string
	for {
		i := indexSep(m)
		if i < 0 {
			return append(parts, m)
		}
		parts = append(parts, m[:i])
		m = m[i+len(sep):]
	}
}

func indexSep(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == sep[0] && s[i+1] == sep[1] {
			return i
		}
	}
	return -1
}

// ---- dead letters ----

// appendDeadLetter appends the dead-letter list entry: a JSON object with
// the reason, queue, time, hostname and the original bytes ("message" as a
// string, or "message_base64" when they are not UTF-8).
func appendDeadLetter(b, raw []byte, reason, queue, host string, t time.Time) []byte {
	b = append(b, `{"reason": `...)
	b = wire.AppendJSONString(b, reason)
	b = append(b, `, "queue": `...)
	b = wire.AppendJSONString(b, queue)
	b = append(b, `, "time": "`...)
	b = driver.AppendTime(b, t)
	b = append(b, `", "hostname": `...)
	b = wire.AppendJSONString(b, host)
	if utf8.Valid(raw) {
		b = append(b, `, "message": `...)
		b = wire.AppendJSONString(b, string(raw))
	} else {
		b = append(b, `, "message_base64": "`...)
		b = base64.StdEncoding.AppendEncode(b, raw)
		b = append(b, '"')
	}
	return append(b, '}')
}

func parseDeadLetter(b []byte) (DeadLetter, error) {
	var dl DeadLetter
	v, err := wire.ParseJSON(b, wire.UntagNone)
	if err != nil {
		return dl, fmt.Errorf("dead letter: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return dl, errors.New("dead letter: not an object")
	}
	dl.Reason, _ = m["reason"].(string)
	dl.Queue, _ = m["queue"].(string)
	dl.Hostname, _ = m["hostname"].(string)
	if s, ok := m["time"].(string); ok {
		dl.Time, _ = driver.ParseTime(s)
	}
	if s, ok := m["message"].(string); ok {
		dl.Raw = []byte(s)
	} else if s, ok := m["message_base64"].(string); ok {
		dl.Raw, err = base64.StdEncoding.DecodeString(s)
	}
	return dl, err
}
