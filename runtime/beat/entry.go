package beat

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat/crontab"
)

// Entry is one periodic task of a schedule: a stable name, when it runs,
// and the typed signature it sends. Build entries with [Every] and [Cron].
type Entry struct {
	name    string
	sched   schedule
	sig     string // the signature, for people (Signature.String)
	send    func(ctx context.Context, opts ...runtime.Option) error
	loc     *time.Location
	expires time.Duration
	opts    []runtime.Option
	catchUp CatchUpPolicy
	offset  *time.Duration // Every: the phase of the slots (nil: from the name)
	err     error
}

// Name returns the entry's name.
func (e Entry) Name() string { return e.name }

// String describes the entry: its name, schedule and signature.
func (e Entry) String() string {
	if e.sched == nil {
		return e.name
	}
	return e.name + ": " + e.sched.String() + " → " + e.sig
}

// An EntryOption configures an [Entry].
type EntryOption func(*Entry)

// TimeZone sets the time zone a [Cron] entry's fields are read in
// (default UTC, Celery's default with enable_utc). Every entries ignore it.
func TimeZone(loc *time.Location) EntryOption {
	return func(e *Entry) {
		if loc != nil {
			e.loc = loc
		}
	}
}

// Expires makes each message the entry sends expire d after its slot
// (Celery's options={"expires": seconds}): a worker that receives it later
// revokes it instead of running it. Default: no expiry.
func Expires(d time.Duration) EntryOption { return func(e *Entry) { e.expires = d } }

// Options adds per-call options to every message the entry sends
// (runtime.Queue, runtime.Priority, runtime.Headers, ...). runtime.TaskID
// and runtime.Expires are set by the scheduler and ignored here.
func Options(opts ...runtime.Option) EntryOption {
	return func(e *Entry) { e.opts = append(e.opts, opts...) }
}

// Offset sets the phase of an [Every] entry's slots: they fall at the
// multiples of the interval since the Unix epoch, plus off.
// Offset(0) aligns them to the clock (a 15-minute entry at :00, :15, :30
// and :45 UTC). Without it, the phase comes from a hash of the entry's
// name, so entries with one interval are spread over it instead of all
// firing at the same instant. Cron entries ignore it.
func Offset(off time.Duration) EntryOption { return func(e *Entry) { e.offset = &off } }

// CatchUp sets what the entry does about slots that came due while no
// scheduler ran (default [Once], Celery beat's behaviour).
func CatchUp(p CatchUpPolicy) EntryOption { return func(e *Entry) { e.catchUp = p } }

// CatchUpPolicy says which missed slots a scheduler sends when it takes
// over: [Skip], [Once] or [All].
type CatchUpPolicy struct {
	mode  catchUpMode
	limit int
}

type catchUpMode uint8

const (
	catchUpOnce catchUpMode = iota
	catchUpSkip
	catchUpAll
)

var (
	// Skip sends none of the missed slots: the entry resumes at its next
	// slot.
	Skip = CatchUpPolicy{mode: catchUpSkip}
	// Once sends one message for all the missed slots, the latest, as
	// Celery beat does after a restart. It is the default.
	Once = CatchUpPolicy{mode: catchUpOnce}
)

// DefaultCatchUpLimit bounds All(0).
const DefaultCatchUpLimit = 100

// All sends every missed slot, oldest first, but at most limit of them
// (the latest limit; 0 means [DefaultCatchUpLimit]); older ones are
// counted as missed.
func All(limit int) CatchUpPolicy {
	if limit <= 0 {
		limit = DefaultCatchUpLimit
	}
	return CatchUpPolicy{mode: catchUpAll, limit: limit}
}

// String returns "skip", "once" or "all(N)".
func (p CatchUpPolicy) String() string {
	switch p.mode {
	case catchUpSkip:
		return "skip"
	case catchUpAll:
		return fmt.Sprintf("all(%d)", p.limit)
	}
	return "once"
}

// Every returns the entry name that sends sig every d. Its slots are a
// fixed grid, the same for every scheduler: the multiples of d since the
// Unix epoch shifted by a phase, which comes from the entry's name unless
// [Offset] sets it (Offset(0): on the clock, a 15-minute entry at :00,
// :15, :30, :45). The first slot is the first after the scheduler starts.
// d is rounded down to the millisecond and must be at least one.
func Every[R any](name string, d time.Duration, sig runtime.Signature[R], opts ...EntryOption) Entry {
	e := newEntry(name, sig, opts)
	d = d.Truncate(time.Millisecond)
	if d < time.Millisecond {
		e.err = fmt.Errorf("beat: entry %q: interval %v is shorter than a millisecond", name, d)
		d = time.Millisecond
	}
	var phase time.Duration
	if e.offset != nil {
		phase = *e.offset % d
		if phase < 0 {
			phase += d
		}
	} else {
		h := fnv.New64a()
		h.Write([]byte(name))
		phase = time.Duration(h.Sum64()%uint64(d.Milliseconds())) * time.Millisecond
	}
	e.sched = every{d: d, phase: phase}
	return e
}

// Cron returns the entry name that sends sig at the slots of the crontab
// expression expr, "minute hour day-of-month month day-of-week", with
// Celery's semantics (see [crontab.Schedule]), read in the entry's [TimeZone].
// A malformed expression makes [Scheduler.Run] fail with its position.
func Cron[R any](name, expr string, sig runtime.Signature[R], opts ...EntryOption) Entry {
	e := newEntry(name, sig, opts)
	c, err := crontab.Parse(expr)
	if err != nil {
		e.err = fmt.Errorf("beat: entry %q: %w", name, err)
		c = &crontab.Schedule{}
	}
	e.sched = cronSchedule{c: c, loc: e.loc}
	return e
}

func newEntry[R any](name string, sig runtime.Signature[R], opts []EntryOption) Entry {
	e := Entry{name: name, loc: time.UTC, sig: sig.String()}
	for _, o := range opts {
		o(&e)
	}
	e.send = func(ctx context.Context, opts ...runtime.Option) error {
		_, err := sig.With(opts...).Delay(ctx)
		return err
	}
	if name == "" {
		e.err = errors.New("beat: an entry needs a name (its stable key in the schedule state)")
	}
	return e
}

// schedule computes an entry's slots.
type schedule interface {
	// next returns the first slot after t (zero: never).
	next(t time.Time) time.Time
	String() string
}

// every is a grid of slots: phase + k·d since the Unix epoch.
type every struct{ d, phase time.Duration }

func (e every) next(t time.Time) time.Time {
	ms, ph := e.d.Milliseconds(), e.phase.Milliseconds()
	n := t.UnixMilli() - ph
	k := n / ms
	if n < 0 && n%ms != 0 {
		k-- // floor
	}
	return time.UnixMilli((k+1)*ms + ph)
}

func (e every) String() string {
	if e.phase == 0 {
		return "every " + e.d.String()
	}
	return "every " + e.d.String() + " (+" + e.phase.String() + ")"
}

type cronSchedule struct {
	c   *crontab.Schedule
	loc *time.Location
}

func (c cronSchedule) next(t time.Time) time.Time { return c.c.Next(t, c.loc) }

func (c cronSchedule) String() string {
	if c.loc == time.UTC {
		return "cron " + c.c.String()
	}
	return "cron " + c.c.String() + " (" + c.loc.String() + ")"
}
