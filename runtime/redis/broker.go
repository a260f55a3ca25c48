package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

func init() {
	for _, scheme := range []string{"redis", "rediss"} {
		driver.RegisterBroker(scheme, func(u *url.URL, o driver.TransportOptions) (driver.Broker, error) {
			return Open(u, o)
		})
		driver.RegisterBackend(scheme, func(u *url.URL, o driver.TransportOptions) (driver.ResultBackend, error) {
			return OpenBackend(u, o)
		})
	}
}

// Broker is the kombu-compatible Redis transport. It is safe for concurrent
// use. Create it through runtime.New with a redis:// or rediss:// URL, or
// with Open.
type Broker struct {
	opts   *Options
	client *goredis.Client
	log    *slog.Logger
	url    string // redacted

	pubMu    sync.Mutex
	pending  []*pubReq // waiting to be written
	flushers int       // goroutines writing a batch now
	handoff  bool      // a pending caller was told to write the next batch
	declared sync.Map  // queue name -> struct{}: binding set member written

	ackCh chan string

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // acker
	consumers sync.WaitGroup // consume loops and their helpers

	// blockClient serves the consumers' blocking BLMOVEs, one connection
	// each, so that many consumed queues never exhaust client's pool.
	blockOnce   sync.Once
	blockClient *goredis.Client
}

var (
	_ driver.Broker         = (*Broker)(nil)
	_ driver.Delayer        = (*Broker)(nil)
	_ driver.QueueInspector = (*Broker)(nil)
	_ driver.PublishBounder = (*Broker)(nil)
)

// ErrClosed is returned by a Broker or Backend used after Close.
var ErrClosed = errors.New("redis transport closed")

const (
	publishFlushers = 1 // batches written concurrently
	maxPublishBatch = 512
	maxAckBatch     = 1024
	fetchers        = 2 // concurrent fetch loops per Consume
)

// Open opens a broker for a redis:// or rediss:// URL (see the package
// documentation for the options). It does not contact Redis: an unreachable
// server shows in Publish and Consume.
func Open(u *url.URL, topts driver.TransportOptions) (*Broker, error) {
	o, err := parseOptions(u, topts)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		opts:    o,
		client:  goredis.NewClient(o.redis),
		log:     o.log.With("transport", "redis", "url", driver.Redact(u.String())),
		url:     driver.Redact(u.String()),
		ackCh:   make(chan string, 4096),
		closing: make(chan struct{}),
	}
	b.wg.Go(b.acker)
	return b, nil
}

// blocking returns the client of blocking commands (created on first use).
func (b *Broker) blocking() *goredis.Client {
	b.blockOnce.Do(func() {
		ro := *b.opts.redis
		ro.PoolSize = 1024 // one connection per blocked command: as many as there are blockers
		ro.MinIdleConns, ro.MaxIdleConns = 0, 0
		// No silent retry: a blocked command whose connection dies may have
		// moved a message into the inbox; the blocker must wake the fetch
		// loops at once rather than block again for a poll.
		ro.MaxRetries = -1
		b.blockClient = goredis.NewClient(&ro)
	})
	return b.blockClient
}

// Options returns the broker's parsed options.
func (b *Broker) Options() Options { return *b.opts }

// Client returns the underlying go-redis client (for tests and tools).
func (b *Broker) Client() *goredis.Client { return b.client }

// Close stops the broker's background work, flushes pending acknowledgements
// and closes its connections. Consumers should be stopped (their ctx ended)
// first; deliveries still un-acknowledged stay in kombu's unacked hash and
// are restored after the visibility timeout.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closing)
		b.wg.Wait()
		b.pubMu.Lock()
		keep := b.pending[:0]
		for _, r := range b.pending {
			if r.lead {
				keep = append(keep, r) // it will write (and fail) itself
				continue
			}
			r.done <- ErrClosed
		}
		b.pending = keep
		b.pubMu.Unlock()
		b.consumers.Wait()
		if b.blockClient != nil {
			_ = b.blockClient.Close()
		}
		b.closeFanout() // events and remote control (fanout.go)
		b.closeErr = b.client.Close()
	})
	return b.closeErr
}

func (b *Broker) isClosing() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}

// ---- publish ----

type pubReq struct {
	lead  bool // told to write the next batch (guarded by Broker.pubMu)
	ctx   context.Context
	queue string
	list  string
	env   []byte
	done  chan error
}

var reqPool = sync.Pool{New: func() any { return &pubReq{done: make(chan error, 1), env: make([]byte, 0, 1024)} }}

// BoundsPublish reports that Publish returns by itself during an outage
// (runtime.PublishBounder): each pipeline it writes is bounded by
// publish_timeout, so a call returns within publish_timeout of its batch
// being written — at most twice publish_timeout when it queued behind a
// batch already stuck.
func (b *Broker) BoundsPublish() bool { return true }

// Publish LPUSHes kombu's envelope of msg onto queue's list for msg.Priority
// and returns once Redis has answered. Concurrent calls are written in one
// pipeline.
func (b *Broker) Publish(ctx context.Context, queue string, msg *driver.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.isClosing() {
		return ErrClosed
	}
	req := reqPool.Get().(*pubReq)
	env, err := appendEnvelope(req.env[:0], queue, msg)
	if err != nil {
		reqPool.Put(req)
		return fmt.Errorf("redis publish: %w", err)
	}
	req.ctx, req.queue, req.env = ctx, queue, env
	req.list = b.opts.key(listName(queue, priorityStep(int(msg.Priority))))
	req.lead = false
	b.pubMu.Lock()
	if b.isClosing() {
		b.pubMu.Unlock()
		return ErrClosed
	}
	b.pending = append(b.pending, req)
	if b.flushers < publishFlushers && !b.handoff {
		// Write the batch on this goroutine: no hand-off to a writer.
		b.flushers++
		batch := b.takePending()
		b.pubMu.Unlock()
		b.writeBatches(batch)
	} else {
		b.pubMu.Unlock()
	}
	for {
		select {
		case err := <-req.done:
			if err == errLead {
				b.pubMu.Lock()
				b.handoff = false
				batch := b.takePending()
				b.pubMu.Unlock()
				b.writeBatches(batch)
				continue
			}
			req.ctx = nil
			if cap(req.env) <= 64<<10 {
				reqPool.Put(req)
			}
			return err
		case <-ctx.Done():
			b.pubMu.Lock()
			if i := slices.Index(b.pending, req); i >= 0 && !req.lead {
				b.pending = slices.Delete(b.pending, i, i+1)
				b.pubMu.Unlock()
				return ctx.Err()
			}
			lead := req.lead
			b.pubMu.Unlock()
			if lead {
				// Told to write the next batch: do it, then give up.
				if err := <-req.done; err == errLead {
					b.pubMu.Lock()
					b.handoff = false
					batch := b.takePending()
					b.pubMu.Unlock()
					b.writeBatches(batch)
				}
			}
			// Being written by another goroutine: it answers into the
			// buffered channel, which nobody reads.
			return ctx.Err()
		}
	}
}

// errLead tells a waiting Publish call to write the next batch itself.
var errLead = errors.New("redis publish: write the next batch")

// takePending returns the pending requests; b.pubMu is held.
func (b *Broker) takePending() []*pubReq {
	batch := b.pending
	b.pending = make([]*pubReq, 0, max(8, len(batch)))
	return batch
}

// writeBatches writes batch, then hands the writer role to the first
// caller that queued meanwhile (its wake-up, which it needs anyway to learn
// its result, does double duty), or gives the role up.
func (b *Broker) writeBatches(batch []*pubReq) {
	for len(batch) > 0 {
		n := min(len(batch), maxPublishBatch)
		b.flushPublish(batch[:n])
		batch = batch[n:]
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if len(b.pending) > 0 && !b.handoff {
		next := b.pending[0]
		next.lead = true
		b.handoff = true
		next.done <- errLead
		return
	}
	b.flushers--
}

type pubGroup struct {
	list string
	vals []any
	reqs []*pubReq
	cmd  *goredis.IntCmd
}

func (b *Broker) flushPublish(batch []*pubReq) {
	var groups []pubGroup
	var newQueues []string
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		gi := -1
		for i := range groups {
			if groups[i].list == r.list {
				gi = i
				break
			}
		}
		if gi < 0 {
			groups = append(groups, pubGroup{list: r.list})
			gi = len(groups) - 1
		}
		groups[gi].vals = append(groups[gi].vals, r.env)
		groups[gi].reqs = append(groups[gi].reqs, r)
		if _, ok := b.declared.Load(r.queue); !ok {
			dup := false
			for _, q := range newQueues {
				dup = dup || q == r.queue
			}
			if !dup {
				newQueues = append(newQueues, r.queue)
			}
		}
	}
	if len(groups) == 0 {
		return
	}
	// Bounded by publish_timeout; each caller also stops waiting at its own
	// ctx's end.
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	// Retry network failures (a restarted server leaves dead pooled
	// connections behind) until the deadline; a retried LPUSH whose first
	// reply was lost may duplicate the message (at least once).
	backoff := 20 * time.Millisecond
	pending := groups
	for {
		pipe := b.client.Pipeline()
		bindCmds := make([]*goredis.IntCmd, len(newQueues))
		for i, q := range newQueues {
			// What kombu writes when Python declares the queue: exchange
			// named like the queue, routing key = queue name.
			bindCmds[i] = pipe.SAdd(ctx, b.opts.key("_kombu.binding."+q), q+sep+sep+q)
		}
		for i := range pending {
			pending[i].cmd = pipe.LPush(ctx, pending[i].list, pending[i].vals...)
		}
		// go-redis leaves a command's Err() nil when the pipeline never ran
		// (the connection could not be set up: AUTH/HELLO refused, TLS,
		// dial): take Exec's error for every command without a reply. A
		// successful LPUSH or SADD-on-new-member replies at least 1.
		_, execErr := pipe.Exec(ctx)
		cmdErr := func(c *goredis.IntCmd) error {
			if err := c.Err(); err != nil || execErr == nil || c.Val() > 0 {
				return err
			}
			return execErr
		}
		var again []pubGroup
		var newAgain []string
		for i, q := range newQueues {
			if cmdErr(bindCmds[i]) == nil {
				b.declared.Store(q, struct{}{})
			} else {
				newAgain = append(newAgain, q)
			}
		}
		for _, g := range pending {
			err := cmdErr(g.cmd)
			if err != nil && retryable(err) && ctx.Err() == nil {
				again = append(again, g)
				continue
			}
			if err != nil {
				err = fmt.Errorf("redis publish to %s: %w", b.url, err)
			}
			for _, r := range g.reqs {
				r.done <- err
			}
		}
		if len(again) == 0 {
			return
		}
		pending, newQueues = again, newAgain
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// retryable reports whether err is a connection problem (or a server that
// is still loading) rather than an error reply to the command.
func retryable(err error) bool {
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "TRYAGAIN", "MASTERDOWN", "READONLY"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return !errors.Is(err, context.Canceled)
}

// ---- delays ----

// Defer parks msg in the delayed sorted set (DelayedKey), scored by due; a
// consumer of any queue moves it to queue's list when due. While parked the
// message is in no list and not in kombu's unacked hash, so the visibility
// timeout never applies to it.
func (b *Broker) Defer(ctx context.Context, queue string, msg *driver.Message, due time.Time) error {
	env, err := appendEnvelope(nil, queue, msg)
	if err != nil {
		return fmt.Errorf("redis defer: %w", err)
	}
	list := b.opts.key(listName(queue, priorityStep(int(msg.Priority))))
	member := make([]byte, 0, len(env)+len(list)+8)
	member = strconv.AppendInt(member, int64(len(list)), 10)
	member = append(member, ':')
	member = append(member, list...)
	member = append(member, env...)
	if _, ok := b.declared.Load(queue); !ok {
		if err := b.client.SAdd(ctx, b.opts.key("_kombu.binding."+queue), queue+sep+sep+queue).Err(); err == nil {
			b.declared.Store(queue, struct{}{})
		}
	}
	score := float64(due.UnixMicro()) / 1e6
	if err := b.client.ZAdd(ctx, b.opts.key(b.opts.DelayedKey), goredis.Z{Score: score, Member: member}).Err(); err != nil {
		return fmt.Errorf("redis defer to %s: %w", b.url, err)
	}
	return nil
}

// MoveDue moves deferred messages that are due to their queues and returns
// how many it moved. Consumers call it periodically; it is exported for
// tools and tests.
func (b *Broker) MoveDue(ctx context.Context) (int, error) {
	total := 0
	for {
		now := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
		n, err := moveDueScript.Run(ctx, b.client, []string{b.opts.key(b.opts.DelayedKey)}, now, 500).Int()
		total += n
		if err != nil || n < 500 {
			return total, err
		}
	}
}

// ---- inspection ----

// QueueLength returns the number of ready messages in queue (all its
// priority lists).
func (b *Broker) QueueLength(ctx context.Context, queue string) (int64, error) {
	pipe := b.client.Pipeline()
	var cmds [4]*goredis.IntCmd
	for i, step := range steps {
		cmds[i] = pipe.LLen(ctx, b.opts.key(listName(queue, step)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis queue length: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// DeadLetter is one entry of a dead-letter list.
type DeadLetter struct {
	Reason   string
	Queue    string
	Time     time.Time
	Hostname string
	// Raw is the original message bytes as they were in the queue.
	Raw []byte
}

// DeadLetterList returns the name of the list receiving dead letters of
// queue (without the global key prefix).
func (b *Broker) DeadLetterList(queue string) string {
	if b.opts.DeadLetterQueue != "" {
		return b.opts.DeadLetterQueue
	}
	return queue + ".dead_letter"
}

// DeadLetters returns up to n entries (newest first) of queue's dead-letter
// list; n <= 0 means all.
func (b *Broker) DeadLetters(ctx context.Context, queue string, n int) ([]DeadLetter, error) {
	stop := int64(n - 1)
	if n <= 0 {
		stop = -1
	}
	vals, err := b.client.LRange(ctx, b.opts.key(b.DeadLetterList(queue)), 0, stop).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(vals))
	for _, v := range vals {
		dl, err := parseDeadLetter([]byte(v))
		if err != nil {
			return out, err
		}
		out = append(out, dl)
	}
	return out, nil
}
