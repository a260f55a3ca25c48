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

// AcquireLease implements driver.ScheduleStore (lua/lease.lua).
func (s scheduleStore) AcquireLease(ctx context.Context, key, holder string, ttl time.Duration) (int64, bool, error) {
	res, err := leaseScript.Run(ctx, s.client, []string{s.key(key, "lease"), s.key(key, "token")}, holder, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("redis beat lease: %w", err)
	}
	if len(res) != 2 {
		return 0, false, errors.New("redis beat lease: unexpected reply")
	}
	return res[1], res[0] == 1, nil
}

// ReleaseLease implements driver.ScheduleStore (lua/release_lease.lua).
func (s scheduleStore) ReleaseLease(ctx context.Context, key, holder string) error {
	if err := releaseLeaseScript.Run(ctx, s.client, []string{s.key(key, "lease")}, holder).Err(); err != nil {
		return fmt.Errorf("redis beat release: %w", err)
	}
	return nil
}

// LeaseInfo implements driver.ScheduleStore.
func (s scheduleStore) LeaseInfo(ctx context.Context, key string) (driver.Lease, error) {
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

// ClaimSlots implements driver.ScheduleStore (lua/claim_slot.lua).
func (s scheduleStore) ClaimSlots(ctx context.Context, key, holder string, token int64, slots []driver.Slot) ([]bool, error) {
	args := make([]any, 0, 2+2*len(slots))
	args = append(args, token, holder)
	for _, sl := range slots {
		args = append(args, sl.Entry, sl.At.UnixMilli())
	}
	res, err := claimSlotScript.Run(ctx, s.client, []string{s.key(key, "lease"), s.key(key, "token"), s.key(key, "claimed")}, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redis beat claim: %w", err)
	}
	out := make([]bool, len(slots))
	if len(res) == len(slots) {
		for i, r := range res {
			out[i] = r == 1
		}
	}
	return out, nil
}

// MarkSent implements driver.ScheduleStore (lua/mark_sent.lua).
func (s scheduleStore) MarkSent(ctx context.Context, key string, slots []driver.Slot) error {
	if len(slots) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(slots))
	for _, sl := range slots {
		args = append(args, sl.Entry, sl.At.UnixMilli())
	}
	if err := markSentScript.Run(ctx, s.client, []string{s.key(key, "sent")}, args...).Err(); err != nil {
		return fmt.Errorf("redis beat mark sent: %w", err)
	}
	return nil
}

// SlotStates implements driver.ScheduleStore.
func (s scheduleStore) SlotStates(ctx context.Context, key string) (map[string]driver.SlotState, error) {
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

// PutSchedule implements driver.ScheduleStore.
func (s scheduleStore) PutSchedule(ctx context.Context, key string, doc []byte, ttl time.Duration) error {
	if err := s.client.Set(ctx, s.key(key, "schedule"), doc, ttl).Err(); err != nil {
		return fmt.Errorf("redis beat schedule: %w", err)
	}
	return nil
}

// Schedule implements driver.ScheduleStore.
func (s scheduleStore) Schedule(ctx context.Context, key string) ([]byte, error) {
	b, err := s.client.Get(ctx, s.key(key, "schedule")).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis beat schedule: %w", err)
	}
	return b, nil
}
