package memory

import (
	"context"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// schedules holds the state of runtime/beat's schedulers in process, one
// scheduleState per scheduler key; Backend and Broker embed it, so both
// implement driver.ScheduleStore. Leases expire on the wall clock.
type schedules struct {
	mu   sync.Mutex
	keys map[string]*scheduleState
}

type scheduleState struct {
	holder   string
	token    int64
	expires  time.Time
	slots    map[string]driver.SlotState
	doc      []byte
	docUntil time.Time
}

var (
	_ driver.ScheduleStore = (*Backend)(nil)
	_ driver.ScheduleStore = (*Broker)(nil)
)

func (s *schedules) state(key string) *scheduleState {
	if s.keys == nil {
		s.keys = make(map[string]*scheduleState)
	}
	st := s.keys[key]
	if st == nil {
		st = &scheduleState{slots: make(map[string]driver.SlotState)}
		s.keys[key] = st
	}
	if st.holder != "" && !time.Now().Before(st.expires) {
		st.holder = ""
	}
	return st
}

// AcquireLease implements driver.ScheduleStore.
func (b *schedules) AcquireLease(_ context.Context, key, holder string, ttl time.Duration) (int64, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	switch st.holder {
	case holder:
	case "":
		st.holder = holder
		st.token++
	default:
		return st.token, false, nil
	}
	st.expires = time.Now().Add(ttl)
	return st.token, true, nil
}

// ReleaseLease implements driver.ScheduleStore.
func (b *schedules) ReleaseLease(_ context.Context, key, holder string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.state(key); st.holder == holder {
		st.holder = ""
	}
	return nil
}

// LeaseInfo implements driver.ScheduleStore.
func (b *schedules) LeaseInfo(_ context.Context, key string) (driver.Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	l := driver.Lease{Holder: st.holder, Token: st.token}
	if st.holder != "" {
		l.Left = time.Until(st.expires)
	}
	return l, nil
}

// ClaimSlots implements driver.ScheduleStore.
func (b *schedules) ClaimSlots(_ context.Context, key, holder string, token int64, slots []driver.Slot) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	out := make([]bool, len(slots))
	if st.holder != holder || st.token != token {
		return out, nil
	}
	for i, sl := range slots {
		at := sl.At.Truncate(time.Millisecond)
		ss := st.slots[sl.Entry]
		if ss.Claimed.IsZero() || ss.Claimed.Before(at) {
			ss.Claimed = at
			st.slots[sl.Entry] = ss
			out[i] = true
		}
	}
	return out, nil
}

// MarkSent implements driver.ScheduleStore.
func (b *schedules) MarkSent(_ context.Context, key string, slots []driver.Slot) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	for _, sl := range slots {
		at := sl.At.Truncate(time.Millisecond)
		if ss := st.slots[sl.Entry]; ss.Sent.Before(at) {
			ss.Sent = at
			st.slots[sl.Entry] = ss
		}
	}
	return nil
}

// SlotStates implements driver.ScheduleStore.
func (b *schedules) SlotStates(_ context.Context, key string) (map[string]driver.SlotState, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	out := make(map[string]driver.SlotState, len(st.slots))
	for k, v := range st.slots {
		out[k] = v
	}
	return out, nil
}

// PutSchedule implements driver.ScheduleStore.
func (b *schedules) PutSchedule(_ context.Context, key string, doc []byte, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	st.doc, st.docUntil = append([]byte(nil), doc...), time.Now().Add(ttl)
	return nil
}

// Schedule implements driver.ScheduleStore.
func (b *schedules) Schedule(_ context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(key)
	if st.doc == nil || !time.Now().Before(st.docUntil) {
		return nil, nil
	}
	return append([]byte(nil), st.doc...), nil
}
