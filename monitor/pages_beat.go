package monitor

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// beatRow is one row of a schedule's entries table.
type beatRow struct {
	beatEntry
	NextAt, NextIn   string // "" when there is no next run to show
	LastAt, LastAgo  string // "" when never sent
	ClaimedAt        string // a claim later than the last sent slot
	SentS, MissedS   string // "—" when no document describes the entry
	Signature, Sched string // "—" when unknown
}

// beatSection is one schedule on /beat.
type beatSection struct {
	beatView
	Leading                bool // a scheduler leads and the document is its own
	LeaseLeft, LeaseOf     string
	UpdatedAt, UpdatedAgo  string
	PolledAt, ErrAt        string
	DocHolder              string
	DocToken               int64
	Rows                   []beatRow
	More                   int // entries the document does not list
	Nothing                bool
	NotPolled, ShowBackend bool
}

func fmtIn(d time.Duration) string {
	switch {
	case d <= 0:
		return "due"
	case d < time.Minute:
		return fmt.Sprintf("in %.0f s", max(d.Seconds(), 1))
	case d < time.Hour:
		return fmt.Sprintf("in %.0f min", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("in %.1f h", d.Hours())
	}
	return fmt.Sprintf("in %.0f days", d.Hours()/24)
}

func (m *Monitor) beatSections() []beatSection {
	now := m.cfg.Now()
	views := m.beatViews()
	out := make([]beatSection, len(views))
	for i, v := range views {
		s := beatSection{beatView: v, Leading: v.Leader != "" && v.Current, NotPolled: v.Polled.IsZero()}
		if v.Leader != "" {
			s.LeaseLeft = fmtDur(v.LeaseLeft.Seconds())
		}
		if d := v.Doc; d != nil {
			s.LeaseOf = fmtDur(d.LeaseSeconds)
			s.UpdatedAt, s.UpdatedAgo = m.fmtTime(d.Updated), fmtAgo(now.Sub(d.Updated))
			s.DocHolder, s.DocToken = d.Holder, d.Token
			s.More = max(v.EntriesTotal-len(d.Entries), 0)
		}
		if !v.Polled.IsZero() {
			s.PolledAt = m.fmtTime(v.Polled)
		}
		if v.Err != "" {
			s.ErrAt = m.fmtTime(v.ErrAt)
		}
		s.Nothing = !s.NotPolled && v.Leader == "" && v.Doc == nil && len(v.Entries) == 0
		// Schedulers prefer a Redis result backend to the broker: one
		// reading the broker may be looking in the wrong place.
		s.ShowBackend = s.Nothing && m.beat.from == "broker"
		for _, e := range v.Entries {
			r := beatRow{beatEntry: e, SentS: "—", MissedS: "—", Signature: "—", Sched: "—"}
			if e.Described {
				r.SentS, r.MissedS = strconv.FormatInt(e.Sent, 10), strconv.FormatInt(e.Missed, 10)
				r.Signature, r.Sched = e.Signature, e.Schedule
			}
			if !e.Next.IsZero() {
				r.NextAt, r.NextIn = m.fmtTime(e.Next), fmtIn(e.Next.Sub(now))
			}
			if !e.LastSent.IsZero() {
				r.LastAt, r.LastAgo = m.fmtTime(e.LastSent), fmtAgo(now.Sub(e.LastSent))
			}
			if e.LastClaimed.After(e.LastSent) {
				r.ClaimedAt = m.fmtTime(e.LastClaimed)
			}
			s.Rows = append(s.Rows, r)
		}
		out[i] = s
	}
	return out
}

// pageBeat is /beat: each watched schedule's leader, lease, counters and
// entries.
func (m *Monitor) pageBeat(w http.ResponseWriter, r *http.Request) {
	var sections []beatSection
	if m.beat.store != nil {
		sections = m.beatSections()
	}
	m.render(w, http.StatusOK, "beat", "Beat", struct {
		Store     bool
		From, URL string
		Broker    string
		Poll      time.Duration
		Sections  []beatSection
	}{m.beat.store != nil, m.beat.from, m.beat.url, driver.Redact(m.app.Config().Broker), m.cfg.PollInterval, sections})
}

// apiBeat answers GET /api/beat: {key: schedule} for each watched key,
// from the latest poll; 404 when the monitor has no store to read.
func (m *Monitor) apiBeat(w http.ResponseWriter, r *http.Request) {
	if m.beat.store == nil {
		jsonError(w, http.StatusNotFound, "no beat schedule store: neither the result backend nor the broker of this monitor holds runtime/beat's state (RabbitMQ does not); start taskmon with -backend redis://… (the schedulers' result backend)")
		return
	}
	out := object{}
	for _, v := range m.beatViews() {
		out = append(out, kv{v.Key, beatObject(v)})
	}
	writeJSON(w, http.StatusOK, out)
}
