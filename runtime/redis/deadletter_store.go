package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

var (
	_ driver.DeadLetterStore = (*Broker)(nil)
	_ driver.QueuePurger     = (*Broker)(nil)
)

// takeDeadScript removes one dead-letter entry and, for a requeue, pushes
// the original bytes to the queue's list, atomically (a message is never in
// both lists, nor in neither).
//
// KEYS[1] the dead-letter list, KEYS[2] the queue list; ARGV[1] the entry,
// ARGV[2] the bytes to LPUSH to KEYS[2] ("" to drop). Returns 1 when the
// entry was still there.
var takeDeadScript = goredis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  if ARGV[2] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[2]) end
  return 1
end
return 0`)

// sharedDeadLetters reports whether one list holds the dead letters of
// every queue (the dead_letter_queue option), so entries must be filtered.
func (b *Broker) sharedDeadLetters() bool { return b.opts.DeadLetterQueue != "" }

// deadEntries reads the whole dead-letter list of queue (newest first) with
// each entry's stored form.
func (b *Broker) deadEntries(ctx context.Context, queue string, limit int) ([]driver.DeadLetter, []string, error) {
	stop := int64(-1)
	if limit > 0 && !b.sharedDeadLetters() {
		stop = int64(limit - 1)
	}
	vals, err := b.client.LRange(ctx, b.opts.key(b.DeadLetterList(queue)), 0, stop).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("redis dead letters of %q: %w", queue, err)
	}
	out, raws := []driver.DeadLetter{}, []string{}
	for _, v := range vals {
		if limit > 0 && len(out) >= limit {
			break
		}
		dl, err := parseDeadLetter([]byte(v))
		if err != nil {
			continue // not ours: left alone
		}
		if b.sharedDeadLetters() && dl.Queue != queue {
			continue
		}
		e := driver.DeadLetter{Queue: dl.Queue, Reason: dl.Reason, Time: dl.Time, Hostname: dl.Hostname}
		if e.Queue == "" {
			e.Queue = queue
		}
		m, _, err := decodeEnvelope(dl.Raw, e.Queue)
		if err != nil {
			m = nil
		}
		driver.DeadLetterFromMessage(&e, m, dl.Raw)
		out, raws = append(out, e), append(raws, v)
	}
	return out, raws, nil
}

// ListDeadLetters returns up to limit entries of queue's dead-letter list,
// newest first.
func (b *Broker) ListDeadLetters(ctx context.Context, queue string, limit int) ([]driver.DeadLetter, error) {
	out, _, err := b.deadEntries(ctx, queue, limit)
	return out, err
}

// CountDeadLetters returns the length of queue's dead-letter list (with a
// shared dead_letter_queue, the entries that came from queue).
func (b *Broker) CountDeadLetters(ctx context.Context, queue string) (int64, error) {
	if b.sharedDeadLetters() {
		out, _, err := b.deadEntries(ctx, queue, 0)
		return int64(len(out)), err
	}
	n, err := b.client.LLen(ctx, b.opts.key(b.DeadLetterList(queue))).Result()
	if err != nil {
		return 0, fmt.Errorf("redis dead letters of %q: %w", queue, err)
	}
	return n, nil
}

// RequeueDeadLetters moves the matching entries back to queue (LPUSH of the
// original bytes onto the list of their priority, as a publish does).
func (b *Broker) RequeueDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	return b.takeDead(ctx, queue, ids, true)
}

// DropDeadLetters removes the matching entries from queue's dead-letter list.
func (b *Broker) DropDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	return b.takeDead(ctx, queue, ids, false)
}

func (b *Broker) takeDead(ctx context.Context, queue string, ids []string, requeue bool) (int, error) {
	want := driver.IDSet(ids)
	out, raws, err := b.deadEntries(ctx, queue, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, e := range out {
		if !want[e.ID] {
			continue
		}
		push, step := "", 0
		if requeue {
			dl, err := parseDeadLetter([]byte(raws[i]))
			if err != nil {
				return n, err
			}
			push = string(dl.Raw)
			if e.Message != nil {
				step = priorityStep(int(e.Message.Priority))
			}
		}
		keys := []string{b.opts.key(b.DeadLetterList(queue)), b.opts.key(listName(e.Queue, step))}
		got, err := takeDeadScript.Run(ctx, b.client, keys, raws[i], push).Int()
		if err != nil {
			return n, fmt.Errorf("redis dead letter %s: %w", e.ID, err)
		}
		n += got
	}
	return n, nil
}

// PurgeQueue deletes queue's lists (every priority) and returns how many
// messages they held.
func (b *Broker) PurgeQueue(ctx context.Context, queue string) (int64, error) {
	pipe := b.client.TxPipeline()
	var lens [len(steps)]*goredis.IntCmd
	for i, step := range steps {
		k := b.opts.key(listName(queue, step))
		lens[i] = pipe.LLen(ctx, k)
		pipe.Del(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis purge %q: %w", queue, err)
	}
	var n int64
	for _, c := range lens {
		n += c.Val()
	}
	return n, nil
}
