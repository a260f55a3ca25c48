package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

// scheduleStore keeps the state of runtime/beat's schedulers in Redis,
// under <global prefix>taskgen.beat.<key>.{lease,token,claimed,sent,schedule}.
type scheduleStore struct {
	client *goredis.Client
	prefix string
}

var (
	_ driver.ScheduleStore = (*Backend)(nil)
	_ driver.ScheduleStore = (*Broker)(nil)
)

func (s scheduleStore) key(key, part string) string {
	return s.prefix + "taskgen.beat." + key + "." + part
}

func (s scheduleStore) acquire(ctx context.Context, key, holder string, ttl time.Duration) (int64, bool, error) {
	res, err := leaseScript.Run(ctx, s.client, []string{s.key(key, "lease"), s.key(key, "token")}, holder, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("redis beat lease: %w", err)
	}
	if len(res) != 2 {
		return 0, false, errors.New("redis beat lease: unexpected reply")
	}
	return res[1], res[0] == 1, nil
}

func (s scheduleStore) release(ctx context.Context, key, holder string) error {
	if err := releaseLeaseScript.Run(ctx, s.client, []string{s.key(key, "lease")}, holder).Err(); err != nil {
		return fmt.Errorf("redis beat release: %w", err)
	}
	return nil
}

func (s scheduleStore) info(ctx context.Context, key string) (driver.Lease, error) {
	pipe := s.client.Pipeline()
	h := pipe.Get(ctx, s.key(key, "lease"))
	left := pipe.PTTL(ctx, s.key(key, "lease"))
	tok := pipe.Get(ctx, s.key(key, "token"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return driver.Lease{}, fmt.Errorf("redis beat lease info: %w", err)
	}
	t, _ := tok.Int64()
	return driver.Lease{Holder: h.Val(), Token: t, Left: max(left.Val(), 0)}, nil
}

func (s scheduleStore) claim(ctx context.Context, key, holder string, token int64, entry string, slot time.Time) (bool, error) {
	n, err := claimSlotScript.Run(ctx, s.client, []string{s.key(key, "lease"), s.key(key, "token"), s.key(key, "claimed")},
		token, holder, entry, slot.UnixMilli()).Int64()
	if err != nil {
		return false, fmt.Errorf("redis beat claim: %w", err)
	}
	return n == 1, nil
}

func (s scheduleStore) markSent(ctx context.Context, key, entry string, slot time.Time) error {
	if err := markSentScript.Run(ctx, s.client, []string{s.key(key, "sent")}, entry, slot.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("redis beat mark sent: %w", err)
	}
	return nil
}

func (s scheduleStore) states(ctx context.Context, key string) (map[string]driver.SlotState, error) {
	pipe := s.client.Pipeline()
	claimed := pipe.HGetAll(ctx, s.key(key, "claimed"))
	sent := pipe.HGetAll(ctx, s.key(key, "sent"))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis beat slot states: %w", err)
	}
	out := make(map[string]driver.SlotState, len(claimed.Val()))
	for name, v := range claimed.Val() {
		st := out[name]
		st.Claimed = unixMilli(v)
		out[name] = st
	}
	for name, v := range sent.Val() {
		st := out[name]
		st.Sent = unixMilli(v)
		out[name] = st
	}
	return out, nil
}

func unixMilli(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (s scheduleStore) putSchedule(ctx context.Context, key string, doc []byte, ttl time.Duration) error {
	if err := s.client.Set(ctx, s.key(key, "schedule"), doc, ttl).Err(); err != nil {
		return fmt.Errorf("redis beat schedule: %w", err)
	}
	return nil
}

func (s scheduleStore) schedule(ctx context.Context, key string) ([]byte, error) {
	b, err := s.client.Get(ctx, s.key(key, "schedule")).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis beat schedule: %w", err)
	}
	return b, nil
}

func (b *Backend) sched() scheduleStore { return scheduleStore{b.client, b.opts.GlobalKeyPrefix} }
func (b *Broker) sched() scheduleStore  { return scheduleStore{b.client, b.opts.GlobalKeyPrefix} }

// AcquireLease implements driver.ScheduleStore (lua/lease.lua).
func (b *Backend) AcquireLease(ctx context.Context, key, holder string, ttl time.Duration) (int64, bool, error) {
	return b.sched().acquire(ctx, key, holder, ttl)
}

// ReleaseLease implements driver.ScheduleStore (lua/release_lease.lua).
func (b *Backend) ReleaseLease(ctx context.Context, key, holder string) error {
	return b.sched().release(ctx, key, holder)
}

// LeaseInfo implements driver.ScheduleStore.
func (b *Backend) LeaseInfo(ctx context.Context, key string) (driver.Lease, error) {
	return b.sched().info(ctx, key)
}

// ClaimSlot implements driver.ScheduleStore (lua/claim_slot.lua).
func (b *Backend) ClaimSlot(ctx context.Context, key, holder string, token int64, entry string, slot time.Time) (bool, error) {
	return b.sched().claim(ctx, key, holder, token, entry, slot)
}

// MarkSent implements driver.ScheduleStore (lua/mark_sent.lua).
func (b *Backend) MarkSent(ctx context.Context, key, entry string, slot time.Time) error {
	return b.sched().markSent(ctx, key, entry, slot)
}

// SlotStates implements driver.ScheduleStore.
func (b *Backend) SlotStates(ctx context.Context, key string) (map[string]driver.SlotState, error) {
	return b.sched().states(ctx, key)
}

// PutSchedule implements driver.ScheduleStore.
func (b *Backend) PutSchedule(ctx context.Context, key string, doc []byte, ttl time.Duration) error {
	return b.sched().putSchedule(ctx, key, doc, ttl)
}

// Schedule implements driver.ScheduleStore.
func (b *Backend) Schedule(ctx context.Context, key string) ([]byte, error) {
	return b.sched().schedule(ctx, key)
}

// AcquireLease implements driver.ScheduleStore (lua/lease.lua).
func (b *Broker) AcquireLease(ctx context.Context, key, holder string, ttl time.Duration) (int64, bool, error) {
	return b.sched().acquire(ctx, key, holder, ttl)
}

// ReleaseLease implements driver.ScheduleStore (lua/release_lease.lua).
func (b *Broker) ReleaseLease(ctx context.Context, key, holder string) error {
	return b.sched().release(ctx, key, holder)
}

// LeaseInfo implements driver.ScheduleStore.
func (b *Broker) LeaseInfo(ctx context.Context, key string) (driver.Lease, error) {
	return b.sched().info(ctx, key)
}

// ClaimSlot implements driver.ScheduleStore (lua/claim_slot.lua).
func (b *Broker) ClaimSlot(ctx context.Context, key, holder string, token int64, entry string, slot time.Time) (bool, error) {
	return b.sched().claim(ctx, key, holder, token, entry, slot)
}

// MarkSent implements driver.ScheduleStore (lua/mark_sent.lua).
func (b *Broker) MarkSent(ctx context.Context, key, entry string, slot time.Time) error {
	return b.sched().markSent(ctx, key, entry, slot)
}

// SlotStates implements driver.ScheduleStore.
func (b *Broker) SlotStates(ctx context.Context, key string) (map[string]driver.SlotState, error) {
	return b.sched().states(ctx, key)
}

// PutSchedule implements driver.ScheduleStore.
func (b *Broker) PutSchedule(ctx context.Context, key string, doc []byte, ttl time.Duration) error {
	return b.sched().putSchedule(ctx, key, doc, ttl)
}

// Schedule implements driver.ScheduleStore.
func (b *Broker) Schedule(ctx context.Context, key string) ([]byte, error) {
	return b.sched().schedule(ctx, key)
}
