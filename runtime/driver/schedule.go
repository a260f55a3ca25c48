package driver

import (
	"context"
	"time"
)

// ScheduleStore is implemented by result backends and brokers that can
// hold the state of taskgen's periodic-task scheduler (package
// runtime/beat), so that any number of schedulers may run and each slot is
// sent once. A store keeps, under a scheduler key:
//
//   - a lease naming the leader, with a fencing token that grows each time
//     the lease changes hands;
//   - per entry, the latest slot claimed and the latest slot sent. A claim
//     succeeds only for the current leader with its current token and only
//     for a slot later than the entry's latest claim, checked atomically:
//     a slot is never claimed twice, and a leader that lost its lease
//     (paused, partitioned) claims nothing;
//   - a schedule document the leader publishes for monitors.
//
// The Redis backend and broker implement it (lua/lease.lua,
// lua/claim_slot.lua), the memory backend in process. RabbitMQ holds no
// such state: a scheduler on RabbitMQ keeps it in the Redis result backend.
type ScheduleStore interface {
	// AcquireLease takes the lease key for holder, or renews it when
	// holder has it already, for ttl. It returns the lease's fencing
	// token and whether holder holds the lease now.
	AcquireLease(ctx context.Context, key, holder string, ttl time.Duration) (token int64, held bool, err error)
	// ReleaseLease gives up the lease key if holder holds it.
	ReleaseLease(ctx context.Context, key, holder string) error
	// LeaseInfo returns the lease of key (Holder "" when it is free).
	LeaseInfo(ctx context.Context, key string) (Lease, error)
	// ClaimSlots claims slots for holder, the leader of key with token,
	// in one atomic step, and reports which it claimed: none when holder
	// does not hold the lease or token is stale; otherwise each slot whose
	// entry's latest claim is earlier than it (slots of one entry are
	// taken in order).
	ClaimSlots(ctx context.Context, key, holder string, token int64, slots []Slot) ([]bool, error)
	// MarkSent records that slots were published; an entry's mark only
	// moves forward.
	MarkSent(ctx context.Context, key string, slots []Slot) error
	// SlotStates returns, per entry, its latest claimed and sent slots.
	SlotStates(ctx context.Context, key string) (map[string]SlotState, error)
	// PutSchedule stores the leader's schedule document (JSON, for
	// monitors) for ttl; Schedule reads it (nil when there is none).
	PutSchedule(ctx context.Context, key string, doc []byte, ttl time.Duration) error
	// Schedule returns the document PutSchedule stored, or nil.
	Schedule(ctx context.Context, key string) ([]byte, error)
}

// Lease is a scheduler lease as a ScheduleStore reports it.
type Lease struct {
	Holder string        // "" when no scheduler holds it
	Token  int64         // the fencing token of the latest tenure
	Left   time.Duration // time until it expires unless renewed
}

// Slot is one scheduled run of a schedule's entry.
type Slot struct {
	Entry string    // the entry's name
	At    time.Time // the slot's time (stored to the millisecond)
}

// SlotState is an entry's progress in a ScheduleStore.
type SlotState struct {
	Claimed time.Time // the latest slot claimed (zero: none)
	Sent    time.Time // the latest slot published (zero: none)
}
