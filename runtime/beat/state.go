package beat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// latenessBuckets are the upper bounds, in seconds, of the fire-lateness
// histogram (how long after its slot a message was published).
var latenessBuckets = [...]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts [len(latenessBuckets) + 1]int64 // the last: +Inf
	sum    float64
	n      int64
}

func (h *histogram) observe(d time.Duration) {
	v := max(d.Seconds(), 0)
	i := 0
	for i < len(latenessBuckets) && v > latenessBuckets[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.n++
}

// ScheduleDoc is the document a leading scheduler stores every Lease/3
// for monitors (driver.ScheduleStore.PutSchedule), as JSON. It lives for
// three lease times, so a schedule without a leader disappears.
type ScheduleDoc struct {
	Key          string     `json:"key"`
	Holder       string     `json:"holder"`
	Token        int64      `json:"token"`
	LeaseSeconds float64    `json:"lease_seconds"`
	Updated      time.Time  `json:"updated"`
	Entries      []EntryDoc `json:"entries"`
	EntriesTotal int        `json:"entries_total"` // Entries holds at most 500
	Stats        Stats      `json:"stats"`
	// Lateness is the fire-lateness histogram: cumulative counts per
	// upper bound in seconds (the last, +Inf, is the total).
	LatenessBuckets []float64 `json:"lateness_buckets"`
	LatenessCounts  []int64   `json:"lateness_counts"`
	LatenessSum     float64   `json:"lateness_sum"`
}

// EntryDoc describes one entry in a [ScheduleDoc].
type EntryDoc struct {
	Name      string    `json:"name"`
	Schedule  string    `json:"schedule"`  // "every 15m0s", "cron 0 3 * * 1-5 (Europe/Paris)"
	Signature string    `json:"signature"` // Signature.String: tasks.report("daily")
	CatchUp   string    `json:"catch_up"`
	Next      time.Time `json:"next"`      // zero: never
	LastSent  time.Time `json:"last_sent"` // zero: never
	Sent      int64     `json:"sent"`      // by this leader
	Missed    int64     `json:"missed"`    // by this leader
}

const maxDocEntries = 500

// doc returns the schedule document; with entries, the first
// maxDocEntries entries' descriptions too.
func (s *Scheduler) doc(now time.Time, entries bool) ScheduleDoc {
	d := ScheduleDoc{
		Key: s.Key, Holder: s.Holder, Token: s.token, LeaseSeconds: s.Lease.Seconds(), Updated: now.UTC(),
		EntriesTotal: len(s.entries), Stats: s.stats,
		LatenessBuckets: latenessBuckets[:], LatenessSum: s.lateness.sum,
	}
	d.Stats.Leader = s.leader
	var cum int64
	for _, c := range s.lateness.counts {
		cum += c
		d.LatenessCounts = append(d.LatenessCounts, cum)
	}
	for i, e := range s.entries {
		if !entries || i == maxDocEntries {
			break
		}
		d.Entries = append(d.Entries, EntryDoc{
			Name: e.name, Schedule: e.sched.String(), Signature: e.sig, CatchUp: e.catchUp.String(),
			Next: e.next, LastSent: e.lastRun, Sent: e.sent, Missed: e.missed,
		})
	}
	return d
}

func (s *Scheduler) publishSchedule(ctx context.Context, now time.Time) error {
	b, err := json.Marshal(s.doc(now, true))
	if err != nil {
		return err
	}
	return s.Store.PutSchedule(ctx, s.Key, b, 3*s.Lease)
}

// ReadSchedule returns the schedule document of key in store, or nil when
// no scheduler leads it (monitors call it).
func ReadSchedule(ctx context.Context, store driver.ScheduleStore, key string) (*ScheduleDoc, error) {
	b, err := store.Schedule(ctx, key)
	if err != nil || b == nil {
		return nil, err
	}
	var d ScheduleDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("beat: schedule document of %q: %w", key, err)
	}
	return &d, nil
}

// WriteMetrics writes the scheduler's metrics in Prometheus' text format:
//
//	taskgen_beat_leader                      gauge: 1 while it holds the lease
//	taskgen_beat_elections_total             counter: times it took the lease
//	taskgen_beat_slots_sent_total{entry}     counter: slots published
//	taskgen_beat_slots_missed_total{entry}   counter: slots not sent (catch-up policy)
//	taskgen_beat_send_errors_total           counter: failed publishes (retried)
//	taskgen_beat_fire_lateness_seconds       histogram: publish time minus slot time
func (s *Scheduler) WriteMetrics(out io.Writer) error {
	s.mu.Lock()
	d := s.doc(s.now(), false)
	per := make([]EntryDoc, len(s.entries))
	for i, e := range s.entries {
		per[i] = EntryDoc{Name: e.name, Sent: e.sent, Missed: e.missed}
	}
	s.mu.Unlock()
	d.Entries = per
	return WriteDocMetrics(out, &d)
}

// label quotes a Prometheus label value: backslash, quote and newline
// escaped, nothing else.
func label(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

// WriteDocMetrics writes the metrics of [Scheduler.WriteMetrics] from a
// schedule document (the monitor exports the leader's this way).
func WriteDocMetrics(out io.Writer, d *ScheduleDoc) error {
	w := bufio.NewWriter(out)
	key := label(d.Key)
	leader := 0
	if d.Stats.Leader {
		leader = 1
	}
	fmt.Fprintf(w, "# HELP taskgen_beat_leader 1 while this scheduler holds the schedule's lease.\n# TYPE taskgen_beat_leader gauge\n")
	fmt.Fprintf(w, "taskgen_beat_leader{key=%s} %d\n", key, leader)
	fmt.Fprintf(w, "# HELP taskgen_beat_elections_total Times the scheduler took the lease.\n# TYPE taskgen_beat_elections_total counter\n")
	fmt.Fprintf(w, "taskgen_beat_elections_total{key=%s} %d\n", key, d.Stats.Elections)
	fmt.Fprintf(w, "# HELP taskgen_beat_slots_sent_total Scheduled slots published, by entry.\n# TYPE taskgen_beat_slots_sent_total counter\n")
	for _, e := range d.Entries {
		fmt.Fprintf(w, "taskgen_beat_slots_sent_total{key=%s,entry=%s} %d\n", key, label(e.Name), e.Sent)
	}
	fmt.Fprintf(w, "# HELP taskgen_beat_slots_missed_total Slots not sent because of the entry's catch-up policy, by entry.\n# TYPE taskgen_beat_slots_missed_total counter\n")
	for _, e := range d.Entries {
		fmt.Fprintf(w, "taskgen_beat_slots_missed_total{key=%s,entry=%s} %d\n", key, label(e.Name), e.Missed)
	}
	fmt.Fprintf(w, "# HELP taskgen_beat_send_errors_total Failed publishes of a slot (each is retried).\n# TYPE taskgen_beat_send_errors_total counter\n")
	fmt.Fprintf(w, "taskgen_beat_send_errors_total{key=%s} %d\n", key, d.Stats.SendErrors)
	fmt.Fprintf(w, "# HELP taskgen_beat_fire_lateness_seconds Time from a slot to the publish of its message.\n# TYPE taskgen_beat_fire_lateness_seconds histogram\n")
	for i, c := range d.LatenessCounts {
		le := "+Inf"
		if i < len(d.LatenessBuckets) {
			le = strconv.FormatFloat(d.LatenessBuckets[i], 'g', -1, 64)
		}
		fmt.Fprintf(w, "taskgen_beat_fire_lateness_seconds_bucket{key=%s,le=%q} %d\n", key, le, c)
	}
	var n int64
	if len(d.LatenessCounts) > 0 {
		n = d.LatenessCounts[len(d.LatenessCounts)-1]
	}
	fmt.Fprintf(w, "taskgen_beat_fire_lateness_seconds_sum{key=%s} %g\n", key, d.LatenessSum)
	fmt.Fprintf(w, "taskgen_beat_fire_lateness_seconds_count{key=%s} %d\n", key, n)
	return w.Flush()
}
