package redis

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// inboxRegistry is the hash of consumers' inboxes (after the global key
// prefix): field inbox key, value "<unix time of the last refresh>|<list the
// inbox's messages came from>".
const inboxRegistry = "_taskgen.inboxes"

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
	backoff := reconnect.Backoff{Policy: consumePolicy}
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
			if !backoff.Wait(ctx) {
				return
			}
			continue
		}
		failing = false
		backoff.Reset()
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
	backoff := reconnect.Backoff{Policy: ackPolicy}
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
		time.Sleep(backoff.Next())
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
