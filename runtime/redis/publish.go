package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

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
// and returns once Redis has answered. Concurrent calls are written
// together, one pipeline per batch, with up to publishFlushers batches in
// flight.
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
	if b.mayFlush(b.flushers) {
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

// mayFlush reports whether the pending batch should be written now, with
// writing other batches in flight; b.pubMu is held. The first writer
// always starts. A further one (up to publishFlushers, each on a pooled
// connection of its own) starts only once the pending batch is as large as
// the one taken last: concurrent callers overlap their round trips yet are
// still written together, not one pipeline each.
func (b *Broker) mayFlush(writing int) bool {
	if b.handoff || len(b.pending) == 0 {
		return false
	}
	return writing == 0 || writing < publishFlushers && len(b.pending) >= max(2, b.lastSize)
}

// takePending returns the pending requests; b.pubMu is held.
func (b *Broker) takePending() []*pubReq {
	batch := b.pending
	b.lastSize = len(batch)
	b.pending = make([]*pubReq, 0, max(8, len(batch)))
	return batch
}

// writeBatches writes batch, then hands the writer role to the first
// caller that queued meanwhile (its wake-up, which it needs anyway to learn
// its result, does double duty) when mayFlush says so, or gives the role
// up: a writer still in flight hands off when it returns.
func (b *Broker) writeBatches(batch []*pubReq) {
	for len(batch) > 0 {
		n := min(len(batch), maxPublishBatch)
		b.flushPublish(batch[:n])
		batch = batch[n:]
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if b.mayFlush(b.flushers - 1) {
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
	backoff := reconnect.Backoff{Policy: commandPolicy}
	pending := groups
	var lastErr error // of the last attempt that is retried
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
		var waitCmd *goredis.Cmd
		if b.opts.MinReplicas > 0 {
			// On the same connection, so it waits for these writes.
			waitCmd = b.opts.queueWait(ctx, pipe)
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
		var waitErr error
		if waitCmd != nil {
			waitErr = b.opts.checkWait(waitCmd, execErr)
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
			if err == nil {
				// Written, but maybe not replicated: a connection lost
				// before WAIT answered is retried (at least once: the
				// master may have died with the only copy); fewer replicas
				// than asked is the caller's error.
				err = waitErr
			}
			if err != nil && !errors.Is(err, ErrNotReplicated) && retryable(err) && ctx.Err() == nil {
				again = append(again, g)
				lastErr = err
				continue
			}
			switch {
			case err != nil && lastErr != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
				// Out of time: say what kept failing.
				err = fmt.Errorf("redis publish to %s: %w (last failure: %v)", b.url, err, lastErr)
			case err != nil:
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
		case <-time.After(backoff.Next()):
		}
	}
}

// retryable reports whether err is a connection problem (or a server that
// is still loading) rather than an error reply to the command or a
// certificate that does not verify (which waiting does not fix).
func retryable(err error) bool {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return false
	}
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
