package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

var _ driver.Locker = (*Backend)(nil)

// uniqueKey is the Redis key of a unique-task lock: the global key prefix,
// then key (which starts with driver.UniqueKeyPrefix).
func (b *Backend) uniqueKey(key string) string { return b.opts.GlobalKeyPrefix + key }

// Lock takes the lock with SET key id NX PX ttl; when another task holds
// it, it returns that task's id (the lock's value).
func (b *Backend) Lock(ctx context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	k := b.uniqueKey(key)
	ms := max(ttl.Milliseconds(), 1)
	for attempt := 0; attempt < 3; attempt++ {
		ok, err := b.client.SetNX(ctx, k, id, time.Duration(ms)*time.Millisecond).Result()
		if err != nil {
			return "", false, fmt.Errorf("redis unique lock on %s: %w", b.url, err)
		}
		if ok {
			return id, true, nil
		}
		holder, err := b.client.Get(ctx, k).Result()
		if errors.Is(err, goredis.Nil) {
			continue // released between the two commands: try again
		}
		if err != nil {
			return "", false, fmt.Errorf("redis unique lock on %s: %w", b.url, err)
		}
		if holder == id {
			return id, true, nil
		}
		return holder, false, nil
	}
	return "", false, fmt.Errorf("redis unique lock on %s: key %s changes hands too fast", b.url, k)
}

// Unlock deletes the lock if id still holds it (lua/unlock.lua: the
// compare and the DEL in one step).
func (b *Backend) Unlock(ctx context.Context, key, id string) error {
	if err := b.opts.runScript(ctx, b.client, unlockScript, []string{b.uniqueKey(key)}, id).Err(); err != nil {
		return fmt.Errorf("redis unique unlock on %s: %w", b.url, err)
	}
	return nil
}
