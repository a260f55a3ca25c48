package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

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
	select {
	case b.parked <- struct{}{}:
	default:
	}
	return nil
}

// MoveDue moves deferred messages that are due to their queues and returns
// how many it moved. Consumers call it when the earliest parked message is
// due, and at least every delay_poll_interval; it is exported for tools and
// tests.
func (b *Broker) MoveDue(ctx context.Context) (int, error) {
	n, _, err := b.moveDue(ctx)
	return n, err
}

// moveDue is MoveDue that also returns when the earliest message still
// parked is due (the zero time when none is).
func (b *Broker) moveDue(ctx context.Context) (int, time.Time, error) {
	total := 0
	for {
		now := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
		res, err := moveDueScript.Run(ctx, b.client, []string{b.opts.key(b.opts.DelayedKey)}, now, 500).Slice()
		if err != nil {
			return total, time.Time{}, err
		}
		if len(res) < 1 {
			return total, time.Time{}, fmt.Errorf("redis: move_due returned %d values, want 2", len(res))
		}
		n, _ := res[0].(int64)
		total += int(n)
		if n >= 500 {
			continue
		}
		var next time.Time
		if len(res) > 1 {
			if s, ok := res[1].(string); ok {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					next = time.UnixMicro(int64(f * 1e6))
				}
			}
		}
		return total, next, nil
	}
}

// moveDueLoop moves parked messages to their queues as they come due: it
// sleeps until the earliest parked message is due, but never longer than
// poll, the delay_poll_interval, so that messages parked meanwhile by other
// processes (always due at least a worker's DelayHorizon later) are seen in
// time; Defer in this process wakes it at once.
func (b *Broker) moveDueLoop(ctx context.Context, poll time.Duration) {
	t := time.NewTimer(poll)
	defer t.Stop()
	failing := false
	for {
		cctx, cancel := context.WithTimeout(ctx, max(poll, 5*time.Second))
		_, next, err := b.moveDue(cctx)
		cancel()
		if err != nil && ctx.Err() == nil && !failing {
			b.log.Warn("redis maintenance failed (will retry)", "err", err)
		}
		failing = err != nil
		wait := poll
		if err == nil && !next.IsZero() {
			// A millisecond late rather than early: the script compares
			// the due time with this process's clock at microseconds.
			wait = min(poll, max(time.Until(next)+time.Millisecond, time.Millisecond))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.parked: // t.Reset above discards a pending fire (Go 1.23 timers)
		}
	}
}
