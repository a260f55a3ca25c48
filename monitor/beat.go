package monitor

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
)

// beatWatch follows the state of runtime/beat schedules in a
// driver.ScheduleStore: for each key, the leader's schedule document, the
// lease and the entries' latest claimed and sent slots, polled each
// PollInterval.
type beatWatch struct {
	store driver.ScheduleStore // nil: none to read
	from  string               // "result backend", "broker" or "Config.BeatStore"
	url   string               // the store's URL, redacted ("" for Config.BeatStore)
	keys  []string

	mu    sync.Mutex
	polls map[string]beatPoll
}

// beatPoll is what the latest poll of one key found.
type beatPoll struct {
	Polled time.Time // the latest successful poll (zero: none yet)
	Err    string    // the latest poll's error ("" when it succeeded)
	ErrAt  time.Time
	Doc    *beat.ScheduleDoc // nil: no scheduler published one lately
	Lease  driver.Lease
	Slots  map[string]driver.SlotState // read only once recorded
}

func (b *beatWatch) init(cfg Config, app *runtime.App) {
	seen := map[string]bool{}
	for _, k := range cfg.BeatKeys {
		if k = strings.TrimSpace(k); k != "" && !seen[k] {
			seen[k] = true
			b.keys = append(b.keys, k)
		}
	}
	if len(b.keys) == 0 {
		b.keys = []string{beat.DefaultKey}
	}
	if cfg.BeatStore != nil {
		b.store, b.from = cfg.BeatStore, "Config.BeatStore"
	} else if st, ok := app.Backend().(driver.ScheduleStore); ok {
		b.store, b.from, b.url = st, "result backend", driver.Redact(app.Config().Backend)
	} else if st, ok := app.Broker().(driver.ScheduleStore); ok {
		b.store, b.from, b.url = st, "broker", driver.Redact(app.Config().Broker)
	}
	b.polls = make(map[string]beatPoll, len(b.keys))
}

// pollBeat reads every watched schedule each PollInterval, when there is a
// store to read.
func (m *Monitor) pollBeat(ctx context.Context) {
	b := &m.beat
	if b.store == nil {
		return
	}
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		for _, key := range b.keys {
			cctx, cancel := context.WithTimeout(ctx, max(m.cfg.PollInterval, time.Second))
			p, err := readBeat(cctx, b.store, key)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				m.log.Debug("reading a beat schedule failed", "key", key, "err", err)
			}
			b.record(key, p, err, m.cfg.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readBeat reads key's schedule document, lease and slot states: three
// small reads.
func readBeat(ctx context.Context, store driver.ScheduleStore, key string) (beatPoll, error) {
	var p beatPoll
	var err error
	if p.Doc, err = beat.ReadSchedule(ctx, store, key); err != nil {
		return p, err
	}
	if p.Lease, err = store.LeaseInfo(ctx, key); err != nil {
		return p, err
	}
	p.Slots, err = store.SlotStates(ctx, key)
	return p, err
}

// record keeps a successful poll; a failed one keeps the previous poll's
// findings and notes the error.
func (b *beatWatch) record(key string, p beatPoll, err error, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		old := b.polls[key]
		old.Err, old.ErrAt = err.Error(), now
		b.polls[key] = old
		return
	}
	p.Polled = now
	b.polls[key] = p
}

// beatView is one schedule as the monitor shows it, at a given time.
type beatView struct {
	Key       string
	Polled    time.Time // zero: not polled yet
	Err       string
	ErrAt     time.Time
	Leader    string        // the lease's holder ("" when no scheduler leads)
	Token     int64         // the lease's fencing token (of the latest tenure)
	LeaseLeft time.Duration // estimated from the poll
	// Doc is the latest schedule document; Current tells whether the
	// current leader (holder and token) published it. A leader that stopped
	// leaves its document behind for up to three leases.
	Doc     *beat.ScheduleDoc
	Current bool
	Stats   *beat.Stats // the document's, Leader false unless Current; nil without one
	Entries []beatEntry
	// EntriesTotal counts the document's entries (it holds at most 500),
	// else len(Entries).
	EntriesTotal int
}

// beatEntry is one entry of a schedule: from the leader's document when
// there is one (Described), else only what the store records.
type beatEntry struct {
	Name                         string
	Described                    bool
	Schedule, Signature, CatchUp string
	Next                         time.Time // zero: never, or no current leader
	LastSent                     time.Time // the later of the document's and the store's
	LastClaimed                  time.Time
	Sent, Missed                 int64 // by the document's leader
}

// beatViews returns the watched schedules as of the latest polls.
func (m *Monitor) beatViews() []beatView {
	b := &m.beat
	now := m.cfg.Now()
	b.mu.Lock()
	polls := make([]beatPoll, len(b.keys))
	for i, k := range b.keys {
		polls[i] = b.polls[k]
	}
	b.mu.Unlock()
	out := make([]beatView, len(polls))
	for i, p := range polls {
		out[i] = makeBeatView(b.keys[i], p, now)
	}
	return out
}

func makeBeatView(key string, p beatPoll, now time.Time) beatView {
	v := beatView{Key: key, Polled: p.Polled, Err: p.Err, ErrAt: p.ErrAt, Leader: p.Lease.Holder, Token: p.Lease.Token, Doc: p.Doc}
	if v.Leader != "" {
		v.LeaseLeft = max(p.Lease.Left-now.Sub(p.Polled), 0)
	}
	if d := p.Doc; d != nil {
		v.Current = v.Leader != "" && d.Holder == v.Leader && d.Token == v.Token
		st := d.Stats
		st.Leader = st.Leader && v.Current
		v.Stats = &st
		v.EntriesTotal = max(d.EntriesTotal, len(d.Entries))
		for _, e := range d.Entries {
			ss := p.Slots[e.Name]
			be := beatEntry{Name: e.Name, Described: true, Schedule: e.Schedule, Signature: e.Signature, CatchUp: e.CatchUp,
				LastSent: later(e.LastSent, ss.Sent), LastClaimed: ss.Claimed, Sent: e.Sent, Missed: e.Missed}
			if v.Current {
				be.Next = e.Next
			}
			v.Entries = append(v.Entries, be)
		}
		return v
	}
	for _, name := range slices.Sorted(maps.Keys(p.Slots)) {
		ss := p.Slots[name]
		v.Entries = append(v.Entries, beatEntry{Name: name, LastSent: ss.Sent, LastClaimed: ss.Claimed})
	}
	v.EntriesTotal = len(v.Entries)
	return v
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// unixOrNull is t in Unix seconds for JSON, null when zero.
func unixOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return float64(t.UnixNano()) / 1e9
}

// beatObject is a schedule in /api/beat's shape.
func beatObject(v beatView) object {
	entries := make([]object, 0, len(v.Entries))
	for _, e := range v.Entries {
		var sent, missed any
		if e.Described {
			sent, missed = e.Sent, e.Missed
		}
		entries = append(entries, object{{"name", e.Name}, {"schedule", nullS(e.Schedule)}, {"signature", nullS(e.Signature)},
			{"catch_up", nullS(e.CatchUp)}, {"next", unixOrNull(e.Next)}, {"last_sent", unixOrNull(e.LastSent)},
			{"last_claimed", unixOrNull(e.LastClaimed)}, {"sent", sent}, {"missed", missed}})
	}
	var left, lease, updated, stats any
	if v.Leader != "" {
		left = v.LeaseLeft.Seconds()
	}
	if v.Doc != nil {
		lease, updated = v.Doc.LeaseSeconds, unixOrNull(v.Doc.Updated)
	}
	if s := v.Stats; s != nil {
		stats = object{{"leader", s.Leader}, {"elections", s.Elections}, {"slots_sent", s.SlotsSent},
			{"slots_missed", s.SlotsMiss}, {"send_errors", s.SendErrors}}
	}
	return object{{"leader", nullS(v.Leader)}, {"token", v.Token}, {"lease_left_seconds", left}, {"lease_seconds", lease},
		{"updated", updated}, {"stale", v.Doc != nil && !v.Current}, {"entries_total", v.EntriesTotal}, {"entries", entries},
		{"stats", stats}, {"polled", unixOrNull(v.Polled)}, {"error", nullS(v.Err)}}
}
