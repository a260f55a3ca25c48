package beat_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// runUntil drives the schedulers on the kit's virtual clock until end:
// it ticks each, then jumps the clock to the earliest wake-up.
func runUntil(t *testing.T, kit *tasktest.Kit, end time.Time, ss ...*beat.Scheduler) {
	t.Helper()
	ctx := context.Background()
	for {
		now := kit.Clock.Now()
		next := end
		for _, s := range ss {
			wake, err := s.Tick(ctx)
			require.NoError(t, err)
			if wake.Before(next) {
				next = wake
			}
		}
		if !next.After(now) {
			next = now.Add(time.Millisecond)
		}
		if next.After(end) {
			if end.After(now) {
				kit.Advance(end.Sub(now))
			}
			return
		}
		kit.Advance(next.Sub(now))
	}
}

func ids(kit *tasktest.Kit, task string) []string {
	var out []string
	for _, c := range kit.Enqueued(task) {
		out = append(out, c.ID)
	}
	return out
}

func slotIDs(key, entry string, slots ...time.Time) []string {
	out := make([]string, len(slots))
	for i, s := range slots {
		out[i] = beat.SlotID(key, entry, s)
	}
	return out
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func newKit(t *testing.T, start string) *tasktest.Kit {
	return tasktest.NewWith(t, []tasktest.Option{tasktest.RecordOnly(), tasktest.StartTime(at(start))})
}

func TestEvery_slotsOnTheEpochGrid(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:07:00Z")
	s := beat.New(kit.App, beat.Every("cleanup", 15*time.Minute, runtime.Named[int]("tasks.cleanup", 30), beat.Offset(0)))
	runUntil(t, kit, at("2026-01-01T01:00:00Z"), s)
	want := slotIDs(beat.DefaultKey, "cleanup", at("2026-01-01T00:15:00Z"), at("2026-01-01T00:30:00Z"),
		at("2026-01-01T00:45:00Z"), at("2026-01-01T01:00:00Z"))
	assert.Equal(t, want, ids(kit, "tasks.cleanup"))
	calls := kit.Enqueued("tasks.cleanup")
	require.NotEmpty(t, calls)
	assert.Equal(t, []any{int64(30)}, calls[0].Args)
	st := s.Stats()
	assert.True(t, st.Leader)
	assert.EqualValues(t, 4, st.SlotsSent)
	assert.EqualValues(t, 1, st.Elections)
}

func TestCron_dstAsCelery(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	kit := newKit(t, "2023-03-10T12:00:00Z")
	s := beat.New(kit.App, beat.Cron("nightly", "30 2 * * *", runtime.Named[string]("tasks.report", "nightly"), beat.TimeZone(ny)))
	runUntil(t, kit, at("2023-03-14T12:00:00Z"), s)
	// 02:30 EST on the 11th; on the 12th 02:30 does not exist: Celery runs
	// it when the clock jumps, 03:00 EDT (07:00Z); then 02:30 EDT.
	want := slotIDs(beat.DefaultKey, "nightly", at("2023-03-11T07:30:00Z"), at("2023-03-12T07:00:00Z"), at("2023-03-13T06:30:00Z"),
		at("2023-03-14T06:30:00Z"))
	assert.Equal(t, want, ids(kit, "tasks.report"))
}

func TestCatchUp_policies(t *testing.T) {
	for _, tc := range []struct {
		policy beat.CatchUpPolicy
		after  []string // slots sent after the restart, up to 01:20
	}{
		{beat.Skip, []string{}},
		{beat.Once, []string{"01:15"}},
		{beat.All(0), []string{"00:30", "00:45", "01:00", "01:15"}},
		{beat.All(2), []string{"01:00", "01:15"}},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			kit := newKit(t, "2026-01-01T00:07:00Z")
			entry := func() beat.Entry {
				return beat.Every("cleanup", 15*time.Minute, runtime.Named[int]("tasks.cleanup", 30), beat.Offset(0), beat.CatchUp(tc.policy))
			}
			first := beat.New(kit.App, entry())
			runUntil(t, kit, at("2026-01-01T00:20:00Z"), first)
			require.Len(t, ids(kit, "tasks.cleanup"), 1)
			// The scheduler stops (Run's end releases the lease); an hour
			// later another starts.
			require.NoError(t, first.Store.ReleaseLease(context.Background(), first.Key, first.Holder))
			kit.Advance(time.Hour) // 01:20
			second := beat.New(kit.App, entry())
			runUntil(t, kit, at("2026-01-01T01:20:00Z"), second)
			var want []time.Time
			want = append(want, at("2026-01-01T00:15:00Z"))
			for _, hm := range tc.after {
				want = append(want, at("2026-01-01T"+hm+":00Z"))
			}
			assert.Equal(t, slotIDs(beat.DefaultKey, "cleanup", want...), ids(kit, "tasks.cleanup"))
			// And it goes on normally.
			runUntil(t, kit, at("2026-01-01T01:30:00Z"), second)
			assert.Equal(t, beat.SlotID(beat.DefaultKey, "cleanup", at("2026-01-01T01:30:00Z")), last(ids(kit, "tasks.cleanup")))
		})
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func TestSchedulers_oneLeaderEachSlotOnce(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:00:00.5Z")
	entries := func() []beat.Entry {
		return []beat.Entry{
			beat.Every("tick", time.Second, runtime.Named[int]("tasks.tick"), beat.Offset(0)),
			beat.Every("slow", 7*time.Second, runtime.Named[int]("tasks.slow"), beat.Offset(0)),
		}
	}
	a, b, c := beat.New(kit.App, entries()...), beat.New(kit.App, entries()...), beat.New(kit.App, entries()...)
	runUntil(t, kit, at("2026-01-01T00:01:00Z"), a, b, c)
	var want []time.Time
	for i := 1; i <= 60; i++ {
		want = append(want, at("2026-01-01T00:00:00Z").Add(time.Duration(i)*time.Second))
	}
	assert.Equal(t, slotIDs(beat.DefaultKey, "tick", want...), ids(kit, "tasks.tick"))
	assert.Len(t, ids(kit, "tasks.slow"), 8) // 7 s … 56 s
	leaders := 0
	for _, s := range []*beat.Scheduler{a, b, c} {
		if s.Stats().Leader {
			leaders++
		}
	}
	assert.Equal(t, 1, leaders)
}

func TestScheduler_deposedLeaderSendsNothing(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:00:00.5Z")
	ctx := context.Background()
	entry := func() beat.Entry {
		return beat.Every("tick", time.Second, runtime.Named[int]("tasks.tick"), beat.Offset(0))
	}
	a := beat.New(kit.App, entry())
	a.Lease = 40 * time.Millisecond // real time: the memory store's leases expire on the wall clock
	runUntil(t, kit, at("2026-01-01T00:00:03Z"), a)
	require.Len(t, ids(kit, "tasks.tick"), 3)
	// a pauses; its lease runs out; b takes over and sends slot 4.
	time.Sleep(60 * time.Millisecond)
	b := beat.New(kit.App, entry())
	b.Lease = time.Hour
	kit.Advance(time.Second)
	_, err := b.Tick(ctx)
	require.NoError(t, err)
	require.True(t, b.Stats().Leader)
	// a resumes believing it leads (its renewal is not due on the
	// virtual clock) and tries slot 4 and 5: the claim fails.
	kit.Advance(time.Second)
	_, err = a.Tick(ctx)
	require.NoError(t, err)
	assert.False(t, a.Stats().Leader)
	_, err = b.Tick(ctx)
	require.NoError(t, err)
	var want []time.Time
	for i := 1; i <= 5; i++ {
		want = append(want, at("2026-01-01T00:00:00Z").Add(time.Duration(i)*time.Second))
	}
	assert.Equal(t, slotIDs(beat.DefaultKey, "tick", want...), ids(kit, "tasks.tick"))
}

func TestScheduler_claimedButUnsentSlotIsSentByTheNextLeader(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:00:00.5Z")
	ctx := context.Background()
	store := kit.App.Backend().(driver.ScheduleStore)
	// A leader claimed slot 1 and died before publishing it.
	tok, ok, err := store.AcquireLease(ctx, beat.DefaultKey, "dead", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	slot := []driver.Slot{{Entry: "tick", At: at("2026-01-01T00:00:01Z")}}
	claimed, err := store.ClaimSlots(ctx, beat.DefaultKey, "dead", tok, slot)
	require.NoError(t, err)
	require.Equal(t, []bool{true}, claimed)
	again, err := store.ClaimSlots(ctx, beat.DefaultKey, "dead", tok, slot)
	require.NoError(t, err)
	require.Equal(t, []bool{false}, again, "a slot is claimed once")
	require.NoError(t, store.ReleaseLease(ctx, beat.DefaultKey, "dead"))

	kit.Advance(time.Second)
	s := beat.New(kit.App, beat.Every("tick", time.Second, runtime.Named[int]("tasks.tick"), beat.Offset(0)))
	runUntil(t, kit, at("2026-01-01T00:00:03Z"), s)
	want := slotIDs(beat.DefaultKey, "tick", at("2026-01-01T00:00:01Z"), at("2026-01-01T00:00:02Z"), at("2026-01-01T00:00:03Z"))
	assert.Equal(t, want, ids(kit, "tasks.tick"))
}

func TestNew_badEntries(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:00:00Z")
	s := beat.New(kit.App,
		beat.Cron("report", "0 3 * * mun", runtime.Named[int]("tasks.report")),
		beat.Every("x", time.Minute, runtime.Named[int]("tasks.x"), beat.Offset(0)),
		beat.Every("x", time.Hour, runtime.Named[int]("tasks.x"), beat.Offset(0)),
		beat.Every("fast", time.Microsecond, runtime.Named[int]("tasks.x"), beat.Offset(0)),
	)
	err := s.Run(context.Background())
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, `entry "report"`)
	assert.Contains(t, msg, "mun")
	assert.Contains(t, msg, `two entries are named "x"`)
	assert.Contains(t, msg, `entry "fast"`)
	assert.Equal(t, 3, strings.Count(msg, "beat:"), msg)
}

func TestWorker_beatOption(t *testing.T) {
	app, err := runtime.New(runtime.Config{Broker: "memory://beat-worker", Backend: "memory://beat-worker", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer app.Close()
	got := make(chan string, 10)
	s := beat.New(app, beat.Every("tick", 20*time.Millisecond, runtime.Named[int]("tasks.tick"), beat.Offset(0)))
	s.OnSend = func(entry string, slot, _ time.Time) { got <- beat.SlotID(beat.DefaultKey, entry, slot) }
	w := app.NewWorker(runtime.WorkerOptions{Beat: s, WithoutEvents: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	first := <-got
	second := <-got
	assert.NotEqual(t, first, second)
	cancel()
	require.NoError(t, <-done)
	l, err := s.Store.LeaseInfo(context.Background(), s.Key)
	require.NoError(t, err)
	assert.Empty(t, l.Holder, "a stopping worker's scheduler gives its lease up")

	bad := app.NewWorker(runtime.WorkerOptions{Beat: beat.New(app, beat.Cron("r", "61 * * * *", runtime.Named[int]("t")))})
	err = bad.Run(context.Background())
	require.ErrorContains(t, err, `entry "r"`)
}

func TestWriteMetrics(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:07:00Z")
	s := beat.New(kit.App, beat.Every("cleanup", 15*time.Minute, runtime.Named[int]("tasks.cleanup", 30), beat.Offset(0)))
	runUntil(t, kit, at("2026-01-01T00:31:00Z"), s)
	var b strings.Builder
	require.NoError(t, s.WriteMetrics(&b))
	out := b.String()
	assert.Contains(t, out, `taskgen_beat_leader{key="default"} 1`)
	assert.Contains(t, out, `taskgen_beat_slots_sent_total{key="default",entry="cleanup"} 2`)
	assert.Contains(t, out, `taskgen_beat_fire_lateness_seconds_count{key="default"} 2`)
	doc, err := beat.ReadSchedule(context.Background(), s.Store, beat.DefaultKey)
	require.NoError(t, err)
	require.NotNil(t, doc)
	require.Len(t, doc.Entries, 1)
	assert.Equal(t, "every 15m0s", doc.Entries[0].Schedule)
	assert.Equal(t, "tasks.cleanup(30)", doc.Entries[0].Signature)
	assert.Equal(t, s.Holder, doc.Holder)
}

func TestEvery_phaseFromNameSpreadsEntries(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:00:00Z")
	var entries []beat.Entry
	for i := range 1000 {
		entries = append(entries, beat.Every(fmt.Sprintf("e%d", i), time.Minute, runtime.Named[int]("tasks.e", i)))
	}
	s := beat.New(kit.App, entries...)
	var slots []time.Time
	s.OnSend = func(_ string, slot, _ time.Time) { slots = append(slots, slot) }
	runUntil(t, kit, at("2026-01-01T00:01:00Z"), s)
	require.Len(t, slots, 1000, "each entry once in its first minute")
	seconds := map[int]int{}
	for _, sl := range slots {
		seconds[sl.Second()]++
	}
	assert.Greater(t, len(seconds), 50, "1000 one-minute entries fall on %d distinct seconds", len(seconds))
	// The phase is the same for every scheduler (a function of the name).
	e := beat.Every("e1", time.Minute, runtime.Named[int]("tasks.e", 1))
	assert.Equal(t, e.String(), beat.Every("e1", time.Minute, runtime.Named[int]("tasks.e", 1)).String())
}

func TestScheduler_manyDueAtOnce(t *testing.T) {
	kit := newKit(t, "2026-01-01T00:00:00.5Z")
	var entries []beat.Entry
	for i := range 2000 { // more than one claim batch
		entries = append(entries, beat.Every(fmt.Sprintf("e%d", i), time.Second, runtime.Named[int]("tasks.e", i), beat.Offset(0)))
	}
	s := beat.New(kit.App, entries...)
	runUntil(t, kit, at("2026-01-01T00:00:03Z"), s)
	assert.Len(t, kit.Enqueued("tasks.e"), 6000)
	seen := map[string]bool{}
	for _, c := range kit.Enqueued("tasks.e") {
		require.False(t, seen[c.ID], "slot sent twice")
		seen[c.ID] = true
	}
	st, err := s.Store.SlotStates(context.Background(), s.Key)
	require.NoError(t, err)
	for i := range 2000 {
		name := fmt.Sprintf("e%d", i)
		require.True(t, st[name].Sent.Equal(at("2026-01-01T00:00:03Z")), "%s: %v", name, st[name])
	}
}

func TestCron_dstFallBackAsCelery(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	kit := newKit(t, "2023-11-05T03:30:00Z") // 23:30 EDT on the 4th
	s := beat.New(kit.App,
		beat.Cron("daily", "30 1 * * *", runtime.Named[string]("tasks.daily"), beat.TimeZone(ny)),
		beat.Cron("hourly", "0 * * * *", runtime.Named[string]("tasks.hourly"), beat.TimeZone(ny)))
	runUntil(t, kit, at("2023-11-05T09:30:00Z"), s)
	// 01:30 runs once, at its first occurrence (EDT); the hourly entry runs
	// at 00:00 EDT, 01:00 EDT, then 02:00 EST: 01:00 EST is skipped.
	assert.Equal(t, slotIDs(beat.DefaultKey, "daily", at("2023-11-05T05:30:00Z")), ids(kit, "tasks.daily"))
	assert.Equal(t, slotIDs(beat.DefaultKey, "hourly", at("2023-11-05T04:00:00Z"), at("2023-11-05T05:00:00Z"),
		at("2023-11-05T07:00:00Z"), at("2023-11-05T08:00:00Z"), at("2023-11-05T09:00:00Z")), ids(kit, "tasks.hourly"))
}
