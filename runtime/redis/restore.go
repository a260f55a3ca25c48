package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

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
	//lint:ignore SA1019 ZRANGE BYSCORE REV needs Redis 6.2; ZREVRANGEBYSCORE works on every Redis kombu supports
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
