package beat

import (
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// DefaultLease is a scheduler's default lease time.
const DefaultLease = 5 * time.Second

// DefaultKey is the default name of a schedule's state in the store.
const DefaultKey = "default"

// Scheduler sends the entries of a schedule at their slots. Any number of
// schedulers may run the same schedule (same Key, same store): one leads,
// holding a lease it renews every Lease/3; the others wait to take over.
// Before sending a slot the leader claims it in the store, atomically
// checking that it still holds the lease with its fencing token and that
// the slot was not claimed before, so no slot is sent twice — not even by
// a leader that was paused past its lease and resumes mid-send.
//
// Each message has a task id derived from the key, the entry's name and
// the slot (a name-based UUID), so a slot's message can be recognised.
// A slot claimed but not marked sent (the leader died between the claim
// and the publish) is published by the next leader with that same id:
// nothing is lost, and a slot is sent twice only if a leader dies in the
// instant after a publish and before recording it.
//
// The state (lease, claims, last sent slot per entry, the schedule for
// monitors) lives in the app's result backend when it is a
// [driver.ScheduleStore] (Redis, memory), else in its broker (Redis). With
// RabbitMQ as broker, use the Redis result backend.
//
// Set the exported fields before Run; they are not read after.
type Scheduler struct {
	// Key names the schedule's state in the store (default "default").
	// Schedulers with one key share one schedule: give them the same
	// entries.
	Key string
	// Lease is how long a leader's lease lasts unless renewed (default
	// [DefaultLease]). A follower takes over at most this long after the
	// leader stopped.
	Lease time.Duration
	// Holder names this scheduler in the lease (default: the app's
	// hostname, the process id and a random suffix).
	Holder string
	// Store holds the state (default: the app's backend or broker, see
	// above).
	Store driver.ScheduleStore
	// Logger receives the scheduler's log (default: the app's).
	Logger *slog.Logger
	// OnSend, when set, is called after each slot is published, with the
	// slot and the time of the publish (tests, benchmarks).
	OnSend func(entry string, slot, sent time.Time)

	app     *runtime.App
	entries []*entryState
	err     error

	mu       sync.Mutex
	init     bool
	leader   bool
	token    int64
	renewAt  time.Time
	queue    entryHeap
	stats    Stats
	lateness histogram
}

// Stats are a scheduler's counters since it started.
type Stats struct {
	Leader     bool  `json:"leader"`       // holds the lease now
	Elections  int64 `json:"elections"`    // times it took the lease
	SlotsSent  int64 `json:"slots_sent"`   // slots published
	SlotsMiss  int64 `json:"slots_missed"` // slots not sent: skipped by the catch-up policy, or beyond All's limit
	SendErrors int64 `json:"send_errors"`  // publish attempts that failed (the slot is retried)
}

type entryState struct {
	Entry
	next    time.Time // the next slot to send (zero: never)
	unsent  bool      // next is claimed but not yet published
	sent    int64
	missed  int64
	lastRun time.Time // the latest slot sent (by any scheduler, as last read)
	index   int       // in the heap
}

// New returns a scheduler of entries for app. Entries with the same name,
// or built with bad arguments, make Run fail.
func New(app *runtime.App, entries ...Entry) *Scheduler {
	s := &Scheduler{app: app}
	seen := make(map[string]bool, len(entries))
	var errs []error
	for _, e := range entries {
		if e.err != nil {
			errs = append(errs, e.err)
			continue
		}
		if seen[e.name] {
			errs = append(errs, fmt.Errorf("beat: two entries are named %q; names must be unique in a schedule", e.name))
			continue
		}
		seen[e.name] = true
		s.entries = append(s.entries, &entryState{Entry: e})
	}
	if app == nil {
		errs = append(errs, errors.New("beat: New needs an app"))
	}
	s.err = errors.Join(errs...)
	return s
}

// Entries returns the schedule's entries.
func (s *Scheduler) Entries() []Entry {
	out := make([]Entry, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.Entry
	}
	return out
}

// Stats returns the scheduler's counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Leader = s.leader
	return st
}

func (s *Scheduler) setup() error {
	if s.init {
		return s.err
	}
	s.init = true
	if s.err != nil {
		return s.err
	}
	if s.Key == "" {
		s.Key = DefaultKey
	}
	if s.Lease <= 0 {
		s.Lease = DefaultLease
	}
	if s.Logger == nil {
		s.Logger = s.app.Logger()
	}
	if s.Holder == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		s.Holder = fmt.Sprintf("%s/%s", s.app.Config().Hostname, hex.EncodeToString(b[:]))
	}
	if s.Store == nil {
		if st, ok := s.app.Backend().(driver.ScheduleStore); ok {
			s.Store = st
		} else if st, ok := s.app.Broker().(driver.ScheduleStore); ok {
			s.Store = st
		} else {
			s.err = errors.New("beat: neither the app's result backend nor its broker can hold the schedule's state; " +
				"use the Redis result backend (Config.Backend = \"redis://...\"), as with RabbitMQ, or set Scheduler.Store")
		}
	}
	return s.err
}

func (s *Scheduler) now() time.Time {
	if now := s.app.Config().Now; now != nil {
		return now()
	}
	return time.Now()
}

// Validate reports what would make Run fail at once: bad entries, or no
// store for the state. A worker with WorkerOptions.Beat calls it before
// it starts.
func (s *Scheduler) Validate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setup()
}

// Run runs the scheduler until ctx is done, then gives up its lease so
// another scheduler takes over at once. Store errors are logged and
// retried; Run returns an error only for a schedule that cannot run (bad
// entries, no store) or ctx's end (nil).
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Validate(); err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = s.Store.ReleaseLease(rctx, s.Key, s.Holder)
		s.mu.Lock()
		s.leader = false
		s.mu.Unlock()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		wake, err := s.Tick(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.Logger.Warn("beat: store unreachable; retrying", "err", err)
			wake = s.now().Add(min(s.Lease/5, time.Second))
		}
		timer.Reset(max(wake.Sub(s.now()), 0))
	}
}

// Tick does one round of scheduling at the app's current time (the
// app's Config.Now): it takes or renews the lease, and as leader sends
// every slot that is due. It returns when it should run next. [Run] calls
// it in a loop; tests on a virtual clock call it directly.
func (s *Scheduler) Tick(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.setup(); err != nil {
		return time.Time{}, err
	}
	now := s.now()
	if !s.leader || !now.Before(s.renewAt) {
		if err := s.lease(ctx, now); err != nil {
			return time.Time{}, err
		}
	}
	if !s.leader {
		l, err := s.Store.LeaseInfo(ctx, s.Key)
		if err != nil {
			return time.Time{}, err
		}
		// Wake just after the leader's lease would expire, but look
		// again within Lease/3 in case it was released.
		return now.Add(min(l.Left+10*time.Millisecond, s.Lease/3)), nil
	}
	for len(s.queue) > 0 && !s.queue[0].next.After(now) {
		if err := s.fireDue(ctx, now); err != nil {
			return time.Time{}, err
		}
		if !s.leader {
			return now.Add(s.Lease / 3), nil
		}
		if now = s.now(); !now.Before(s.renewAt) {
			if err := s.lease(ctx, now); err != nil || !s.leader {
				return now.Add(s.Lease / 3), err
			}
		}
	}
	wake := s.renewAt
	if len(s.queue) > 0 && s.queue[0].next.Before(wake) {
		wake = s.queue[0].next
	}
	return wake, nil
}

// lease takes or renews the lease; on taking it, it loads the state and
// applies the catch-up policies.
func (s *Scheduler) lease(ctx context.Context, now time.Time) error {
	tok, held, err := s.Store.AcquireLease(ctx, s.Key, s.Holder, s.Lease)
	if err != nil {
		s.leader = false
		return err
	}
	was := s.leader && tok == s.token
	s.leader, s.token = held, tok
	if !held {
		return nil
	}
	s.renewAt = now.Add(s.Lease / 3)
	if !was {
		s.stats.Elections++
		s.Logger.Info("beat: leading the schedule", "key", s.Key, "holder", s.Holder, "token", tok)
		if err := s.takeOver(ctx, now); err != nil {
			s.leader = false
			return err
		}
	}
	return s.publishSchedule(ctx, now)
}

// takeOver reads the entries' state and decides their next slots.
func (s *Scheduler) takeOver(ctx context.Context, now time.Time) error {
	states, err := s.Store.SlotStates(ctx, s.Key)
	if err != nil {
		return err
	}
	s.queue = s.queue[:0]
	for _, e := range s.entries {
		st := states[e.name]
		e.unsent = false
		e.lastRun = st.Sent
		last := st.Sent
		if st.Claimed.After(last) {
			// Claimed by a leader that died before recording the
			// publish: send it again, with the same task id.
			if err := s.send(ctx, e, st.Claimed); err != nil {
				s.stats.SendErrors++
				return err
			}
			s.recordSent(e, st.Claimed, s.now())
			if err := s.Store.MarkSent(ctx, s.Key, []driver.Slot{{Entry: e.name, At: st.Claimed}}); err != nil {
				return err
			}
			last = st.Claimed
		}
		if last.IsZero() {
			e.next = e.sched.next(now)
		} else {
			e.next = s.catchUp(e, last, now)
		}
		if !e.next.IsZero() {
			heap.Push(&s.queue, e)
		}
	}
	return nil
}

// catchUp applies e's catch-up policy to the slots in (last, now] and
// returns the first slot to send normally: the latest missed slot for
// Once, the oldest kept for All, the first after now for Skip.
func (s *Scheduler) catchUp(e *entryState, last, now time.Time) time.Time {
	keep := 1
	if e.catchUp.mode == catchUpAll {
		keep = e.catchUp.limit
	}
	slots, n := missed(e.sched, last, now, keep)
	if n == 0 {
		return e.sched.next(last)
	}
	if e.catchUp.mode == catchUpSkip {
		slots = nil
	}
	dropped := n - int64(len(slots))
	e.missed += dropped
	s.stats.SlotsMiss += dropped
	s.Logger.Info("beat: slots came due while no scheduler ran", "entry", e.name,
		"missed", n, "sending", len(slots), "policy", e.catchUp.String())
	if len(slots) == 0 {
		return e.sched.next(now)
	}
	return slots[0]
}

// missed returns the number n of sched's slots in (last, now] and the
// latest keep of them, oldest first.
func missed(sched schedule, last, now time.Time, keep int) ([]time.Time, int64) {
	first := sched.next(last)
	if first.IsZero() || first.After(now) {
		return nil, 0
	}
	if ev, ok := sched.(every); ok {
		d := ev.d
		n := int64(now.Sub(first)/d) + 1
		k := min(n, int64(keep))
		out := make([]time.Time, k)
		for i := range out {
			out[i] = first.Add(time.Duration(n-k+int64(i)) * d)
		}
		return out, n
	}
	var ring []time.Time
	var n int64
	for t := first; !t.IsZero() && !t.After(now); t = sched.next(t) {
		n++
		if len(ring) == keep {
			ring = append(ring[:0:0], ring[1:]...)
		}
		ring = append(ring, t)
	}
	return ring, n
}

// maxBatch bounds the slots claimed in one store call, and sendParallel
// the publishes under way at once.
const (
	maxBatch     = 512
	sendParallel = 16
)

// fireDue sends up to maxBatch due slots: it claims them in one call
// (entries whose slot was claimed but not published are retried without a
// claim), publishes the claimed in parallel, records them in one call and
// moves each entry to its next slot. A publish that fails leaves its entry
// on the slot, to be retried at the next tick.
func (s *Scheduler) fireDue(ctx context.Context, now time.Time) error {
	var due, claim []*entryState
	var slots []driver.Slot
	for len(s.queue) > 0 && !s.queue[0].next.After(now) && len(due) < maxBatch {
		e := heap.Pop(&s.queue).(*entryState)
		due = append(due, e)
		if !e.unsent {
			claim = append(claim, e)
			slots = append(slots, driver.Slot{Entry: e.name, At: e.next})
		}
	}
	defer func() {
		for _, e := range due {
			if !e.next.IsZero() {
				heap.Push(&s.queue, e)
			}
		}
	}()
	if len(claim) > 0 {
		ok, err := s.Store.ClaimSlots(ctx, s.Key, s.Holder, s.token, slots)
		if err != nil {
			return err
		}
		lost := false
		for i, e := range claim {
			if ok[i] {
				e.unsent = true
			} else {
				lost = true
			}
		}
		if lost {
			// Either the lease is gone or slots were claimed already
			// (by this schedule's earlier leader: they were sent or are
			// resent at take-over).
			l, err := s.Store.LeaseInfo(ctx, s.Key)
			if err != nil {
				return err
			}
			if l.Holder != s.Holder || l.Token != s.token {
				s.Logger.Warn("beat: lost the lease; following", "key", s.Key, "holder", l.Holder)
				s.leader = false
				for _, e := range due {
					e.unsent = false
				}
				return nil
			}
		}
	}
	// Publish the claimed slots, sendParallel at a time.
	errs := make([]error, len(due))
	at := make([]time.Time, len(due))
	sem := make(chan struct{}, sendParallel)
	var wg sync.WaitGroup
	for i, e := range due {
		if !e.unsent {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.send(ctx, e, e.next)
			at[i] = s.now()
		})
	}
	wg.Wait()
	var sent []driver.Slot
	var firstErr error
	for i, e := range due {
		switch {
		case errs[i] != nil:
			s.stats.SendErrors++
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue // still unsent: retried next tick
		case e.unsent:
			e.unsent = false
			sent = append(sent, driver.Slot{Entry: e.name, At: e.next})
			s.recordSent(e, e.next, at[i])
		}
		e.next = e.sched.next(e.next)
	}
	if err := s.Store.MarkSent(ctx, s.Key, sent); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// send publishes e's message for slot.
func (s *Scheduler) send(ctx context.Context, e *entryState, slot time.Time) error {
	opts := make([]runtime.Option, 0, len(e.opts)+3)
	opts = append(opts, e.opts...)
	opts = append(opts, runtime.WithApp(s.app), runtime.TaskID(SlotID(s.Key, e.name, slot)))
	if e.expires > 0 {
		opts = append(opts, runtime.Expires(slot.Add(e.expires)))
	}
	if err := e.send(ctx, opts...); err != nil {
		return fmt.Errorf("beat: sending %s's slot %s: %w", e.name, slot.Format(time.RFC3339Nano), err)
	}
	return nil
}

func (s *Scheduler) recordSent(e *entryState, slot, at time.Time) {
	s.stats.SlotsSent++
	e.sent++
	e.lastRun = slot
	s.lateness.observe(at.Sub(slot))
	if s.OnSend != nil {
		s.OnSend(e.name, slot, at)
	}
}

// SlotID returns the task id of the message a schedule (key) sends for
// entry's slot: a name-based (version 5 layout) UUID of the three, so the
// same slot always has the same id.
func SlotID(key, entry string, slot time.Time) string {
	h := sha1.New()
	fmt.Fprintf(h, "taskgen.beat\x00%s\x00%s\x00%d", key, entry, slot.UnixMilli())
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return wire.FormatUUID(u)
}

// entryHeap orders entries by their next slot.
type entryHeap []*entryState

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entryState)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
