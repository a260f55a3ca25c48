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
