package monitor

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
)

// beatJSON is one schedule of GET /api/beat.
type beatJSON struct {
	Leader       *string  `json:"leader"`
	Token        int64    `json:"token"`
	LeaseLeft    *float64 `json:"lease_left_seconds"`
	LeaseSeconds *float64 `json:"lease_seconds"`
	Updated      *float64 `json:"updated"`
	Stale        bool     `json:"stale"`
	EntriesTotal int      `json:"entries_total"`
	Entries      []struct {
		Name        string   `json:"name"`
		Schedule    *string  `json:"schedule"`
		Signature   *string  `json:"signature"`
		CatchUp     *string  `json:"catch_up"`
		Next        *float64 `json:"next"`
		LastSent    *float64 `json:"last_sent"`
		LastClaimed *float64 `json:"last_claimed"`
		Sent        *int64   `json:"sent"`
		Missed      *int64   `json:"missed"`
	} `json:"entries"`
	Stats *struct {
		Leader      bool  `json:"leader"`
		Elections   int64 `json:"elections"`
		SlotsSent   int64 `json:"slots_sent"`
		SlotsMissed int64 `json:"slots_missed"`
		SendErrors  int64 `json:"send_errors"`
	} `json:"stats"`
	Polled *float64 `json:"polled"`
	Error  *string  `json:"error"`
}

func (b beatJSON) leader() string {
	if b.Leader == nil {
		return ""
	}
	return *b.Leader
}

// getBeat reads /api/beat.
func getBeat(t *testing.T, base string) map[string]beatJSON {
	t.Helper()
	var out map[string]beatJSON
	require.Equal(t, 200, getJSON(t, base+"/api/beat", &out))
	return out
}

// tickUntil ticks s in real time until cond holds.
func tickUntil(t *testing.T, s *beat.Scheduler, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		wake, err := s.Tick(context.Background())
		require.NoError(t, err)
		require.True(t, time.Now().Before(deadline), "scheduler: condition never met")
		time.Sleep(min(max(time.Until(wake), time.Millisecond), 50*time.Millisecond))
	}
}

func TestBeat_MemoryStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.BeatKeys = []string{"default", "reports", "default", "absent"} })
	ctx := context.Background()
	s := beat.New(e.app,
		beat.Every("tick", 40*time.Millisecond, runtime.Named[int]("tasks.tick", 7), beat.Offset(0), beat.Options(runtime.Queue("beat"))),
		beat.Cron("nightly", "30 2 * * *", runtime.Named[string]("tasks.report", "daily"), beat.CatchUp(beat.Skip), beat.Options(runtime.Queue("beat"))),
	)
	s.Holder = "beat@memory"
	reports := beat.New(e.app, beat.Every("weekly", 7*24*time.Hour, runtime.Named[int]("tasks.weekly"), beat.Options(runtime.Queue("beat"))))
	reports.Key, reports.Holder = "reports", "reports@memory"
	_, err := reports.Tick(ctx)
	require.NoError(t, err)
	// Tick until the monitor has read a document with two slots sent (the
	// leader publishes one each Lease/3).
	var got map[string]beatJSON
	tickUntil(t, s, func() bool {
		got = getBeat(t, e.url)
		d := got["default"]
		return d.Stats != nil && d.Stats.SlotsSent >= 2 && got["reports"].leader() != ""
	})
	require.Len(t, got, 3, "keys deduplicated")
	d := got["default"]
	require.Equal(t, "beat@memory", d.leader())
	require.EqualValues(t, 1, d.Token)
	require.NotNil(t, d.LeaseLeft)
	require.Greater(t, *d.LeaseLeft, 0.0)
	require.LessOrEqual(t, *d.LeaseLeft, beat.DefaultLease.Seconds())
	require.Equal(t, beat.DefaultLease.Seconds(), *d.LeaseSeconds)
	require.NotNil(t, d.Updated)
	require.False(t, d.Stale)
	require.Nil(t, d.Error)
	require.Equal(t, 2, d.EntriesTotal)
	require.Len(t, d.Entries, 2)
	tick, nightly := d.Entries[0], d.Entries[1]
	require.Equal(t, "tick", tick.Name)
	require.Equal(t, "every 40ms", *tick.Schedule)
	require.Equal(t, "tasks.tick(7)", *tick.Signature)
	require.Equal(t, "once", *tick.CatchUp)
	require.NotNil(t, tick.Next)
	require.NotNil(t, tick.LastSent)
	require.GreaterOrEqual(t, *tick.Sent, int64(1))
	require.Zero(t, *tick.Missed)
	require.Equal(t, "nightly", nightly.Name)
	require.Equal(t, "cron 30 2 * * *", *nightly.Schedule)
	require.Equal(t, "skip", *nightly.CatchUp)
	require.Nil(t, nightly.LastSent)
	require.Greater(t, *nightly.Next, float64(time.Now().Unix()))
	require.True(t, d.Stats.Leader)
	require.EqualValues(t, 1, d.Stats.Elections)
	require.Equal(t, "reports@memory", got["reports"].leader())
	a := got["absent"]
	require.Nil(t, a.Leader)
	require.Nil(t, a.Stats)
	require.Empty(t, a.Entries)
	require.NotNil(t, a.Polled)

	// The page.
	code, body := get(t, e.url+"/beat")
	require.Equal(t, 200, code)
	for _, s := range []string{`data-key="default"`, `data-key="reports"`, `data-key="absent"`, "beat@memory", ">leading<",
		`data-entry="tick"`, `data-entry="nightly"`, "tasks.tick(7)", "cron 30 2 * * *", "Nothing is recorded under the key", `href="/beat" class="active"`} {
		require.Contains(t, body, s)
	}

	// The metrics: the leaders' families once each, every key's leader gauge.
	_, body = get(t, e.url+"/metrics")
	checkExposition(t, body)
	for _, l := range []string{`taskgen_beat_leader{key="default"} 1`, `taskgen_beat_leader{key="reports"} 1`, `taskgen_beat_leader{key="absent"} 0`,
		`taskgen_beat_elections_total{key="default"} 1`, `taskgen_beat_slots_missed_total{entry="nightly",key="default"} 0`,
		`taskgen_beat_slots_sent_total{entry="weekly",key="reports"} 0`, `taskgen_beat_send_errors_total{key="default"} 0`,
		`taskgen_beat_fire_lateness_seconds_bucket{key="default",le="+Inf"} `, "# TYPE taskgen_workers_online gauge"} {
		require.Contains(t, body, l)
	}
	require.Equal(t, 1, strings.Count(body, "# TYPE taskgen_beat_leader gauge"))
	require.NotContains(t, body, `taskgen_beat_elections_total{key="absent"}`)

	// The leader stops: no leader, its document is stale, the last sent
	// slots remain.
	require.NoError(t, s.Store.ReleaseLease(ctx, s.Key, s.Holder))
	require.Eventually(t, func() bool { got = getBeat(t, e.url); return got["default"].Leader == nil }, 5*time.Second, 20*time.Millisecond)
	d = got["default"]
	require.True(t, d.Stale)
	require.False(t, d.Stats.Leader)
	require.Nil(t, d.LeaseLeft)
	require.Nil(t, d.Entries[0].Next)
	require.NotNil(t, d.Entries[0].LastSent)
	_, body = get(t, e.url+"/beat")
	require.Contains(t, body, "No scheduler leads this schedule")
	require.Contains(t, body, ">no leader<")
	_, body = get(t, e.url+"/metrics")
	checkExposition(t, body)
	require.Contains(t, body, `taskgen_beat_leader{key="default"} 0`)
}

// A schedule without a document (a scheduler that never published one, or
// whose document expired) shows the entries the store records.
func TestBeat_slotStatesWithoutDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.BeatKeys = []string{"orphan"} })
	ctx := context.Background()
	store := e.app.Backend().(driver.ScheduleStore)
	tok, ok, err := store.AcquireLease(ctx, "orphan", "gone", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	sent := time.UnixMilli(1_800_000_000_000)
	claimed, err := store.ClaimSlots(ctx, "orphan", "gone", tok, []driver.Slot{{Entry: "b", At: sent}, {Entry: "a", At: sent.Add(time.Second)}})
	require.NoError(t, err)
	require.Equal(t, []bool{true, true}, claimed)
	require.NoError(t, store.MarkSent(ctx, "orphan", []driver.Slot{{Entry: "b", At: sent}}))

	// A leader without a document yet.
	var got map[string]beatJSON
	require.Eventually(t, func() bool { got = getBeat(t, e.url); return got["orphan"].leader() == "gone" }, 5*time.Second, 10*time.Millisecond)
	o := got["orphan"]
	require.Equal(t, "gone", o.leader())
	require.False(t, o.Stale)
	require.Nil(t, o.Updated)
	_, body := get(t, e.url+"/beat")
	require.Contains(t, body, "its schedule document has not been read yet")

	require.NoError(t, store.ReleaseLease(ctx, "orphan", "gone"))
	require.Eventually(t, func() bool { got = getBeat(t, e.url); return got["orphan"].Leader == nil }, 5*time.Second, 10*time.Millisecond)
	o = got["orphan"]
	require.EqualValues(t, tok, o.Token)
	require.Nil(t, o.Stats)
	require.Len(t, o.Entries, 2)
	require.Equal(t, "a", o.Entries[0].Name, "by name")
	require.Nil(t, o.Entries[0].LastSent)
	require.Equal(t, float64(sent.Add(time.Second).UnixMilli())/1e3, *o.Entries[0].LastClaimed)
	require.Nil(t, o.Entries[0].Schedule)
	require.Nil(t, o.Entries[0].Sent)
	require.Equal(t, "b", o.Entries[1].Name)
	require.Equal(t, float64(sent.UnixMilli())/1e3, *o.Entries[1].LastSent)

	_, body = get(t, e.url+"/beat")
	for _, s := range []string{"No scheduler leads this schedule", "The store records these entries", `data-entry="a"`,
		"claimed " + e.mon.fmtTime(sent.Add(time.Second)) + ", not recorded as sent", e.mon.fmtTime(sent)} {
		require.Contains(t, body, s)
	}
	_, body = get(t, e.url+"/metrics")
	checkExposition(t, body)
	require.Contains(t, body, `taskgen_beat_leader{key="orphan"} 0`)
	require.NotContains(t, body, "taskgen_beat_slots_sent_total")
}

// eventsOnlyBroker is a memory broker that holds no schedule state, as
// RabbitMQ's.
type eventsOnlyBroker struct {
	driver.Broker
	events driver.EventTransport
}

func (b eventsOnlyBroker) PublishEvent(ctx context.Context, msg *driver.RawMessage) error {
	return b.events.PublishEvent(ctx, msg)
}

func (b eventsOnlyBroker) SubscribeEvents(ctx context.Context) (<-chan *driver.RawMessage, error) {
	return b.events.SubscribeEvents(ctx)
}

func init() {
	driver.RegisterBroker("taskmon-nostore", func(*url.URL, driver.TransportOptions) (driver.Broker, error) {
		b := memory.NewBroker()
		return eventsOnlyBroker{Broker: b, events: b}, nil
	})
}

// With neither a backend nor a broker that holds schedules, the page and
// the API say how to get one.
func TestBeat_noStore(t *testing.T) {
	t.Parallel()
	app, err := runtime.New(runtime.Config{Broker: "taskmon-nostore://x", Logger: quietLogger()})
	require.NoError(t, err)
	defer app.Close()
	m, err := New(Config{App: app})
	require.NoError(t, err)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	code, body := get(t, srv.URL+"/api/beat")
	require.Equal(t, 404, code)
	require.Contains(t, body, "-backend redis://")
	code, body = get(t, srv.URL+"/beat")
	require.Equal(t, 200, code)
	require.Contains(t, body, `id="beat-no-store"`)
	require.Contains(t, body, "-backend redis://")
	_, body = get(t, srv.URL+"/metrics")
	require.NotContains(t, body, "taskgen_beat_")
}

// TestBeat_Redis runs two schedulers of one schedule and one of another in
// this process, on a private Redis (broker and result backend), and
// follows them in a monitor: the leader, a fail-over, the metrics, then
// no leader.
func TestBeat_Redis(t *testing.T) {
	testenv.SkipIfShort(t, "starts Redis")
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	cfg := runtime.Config{Broker: srv.URL(), Backend: testenv.RedisDB(srv.URL(), 1), Logger: quietLogger(), Hostname: "taskmon@test"}
	app, err := runtime.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	m, err := New(Config{App: app, PollInterval: 100 * time.Millisecond, Queues: []string{"beat"}, BeatKeys: []string{"default", "reports"}})
	require.NoError(t, err)
	base, stop, err := m.Start(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(stop)

	// Schedulers as separate programs would run them: their own app each.
	start := func(holder, key string, entries ...beat.Entry) (s *beat.Scheduler, halt func()) {
		cfg := cfg
		cfg.Hostname = holder
		sapp, err := runtime.New(cfg)
		require.NoError(t, err)
		s = beat.New(sapp, entries...)
		s.Holder, s.Key, s.Lease = holder, key, time.Second
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		halt = func() {
			cancel()
			require.NoError(t, <-done)
			sapp.Close()
		}
		t.Cleanup(func() {
			select {
			case <-ctx.Done():
			default:
				halt()
			}
		})
		return s, halt
	}
	entries := func() []beat.Entry {
		return []beat.Entry{
			beat.Every("tick", 100*time.Millisecond, runtime.Named[int]("tasks.tick", 1), beat.Options(runtime.Queue("beat"))),
			beat.Cron("nightly", "0 3 * * *", runtime.Named[int]("tasks.nightly"), beat.CatchUp(beat.All(5)), beat.Options(runtime.Queue("beat"))),
		}
	}
	a, haltA := start("beat-a@test", "default", entries()...)
	var got map[string]beatJSON
	require.Eventually(t, func() bool {
		got = getBeat(t, base)
		d := got["default"]
		return d.leader() == a.Holder && d.Stats != nil && d.Stats.SlotsSent >= 3
	}, 10*time.Second, 20*time.Millisecond)
	b, haltB := start("beat-b@test", "default", entries()...)
	_, haltR := start("beat-r@test", "reports", beat.Every("weekly", 7*24*time.Hour, runtime.Named[int]("tasks.weekly"), beat.Options(runtime.Queue("beat"))))
	d := got["default"]
	require.EqualValues(t, 1, d.Token)
	require.Greater(t, *d.LeaseLeft, 0.0)
	require.LessOrEqual(t, *d.LeaseLeft, 1.0)
	require.Equal(t, 1.0, *d.LeaseSeconds)
	require.Equal(t, []string{"tick", "nightly"}, []string{d.Entries[0].Name, d.Entries[1].Name})
	require.Equal(t, "all(5)", *d.Entries[1].CatchUp)
	require.Equal(t, "tasks.tick(1)", *d.Entries[0].Signature)
	require.NotNil(t, d.Entries[0].LastSent)
	require.GreaterOrEqual(t, *d.Entries[0].Sent, int64(3))

	require.Eventually(t, func() bool { return getBeat(t, base)["reports"].leader() == "beat-r@test" }, 10*time.Second, 20*time.Millisecond)
	_, body := get(t, base+"/metrics")
	checkExposition(t, body)
	for _, l := range []string{`taskgen_beat_leader{key="default"} 1`, `taskgen_beat_leader{key="reports"} 1`,
		`taskgen_beat_slots_sent_total{entry="tick",key="default"} `, `taskgen_beat_slots_sent_total{entry="weekly",key="reports"} 0`,
		`taskgen_beat_fire_lateness_seconds_count{key="default"} `, `taskgen_queue_depth{queue="beat"} `} {
		require.Contains(t, body, l)
	}

	// The leader stops (releasing its lease): the follower takes over with
	// the next fencing token.
	haltA()
	require.Eventually(t, func() bool {
		got = getBeat(t, base)
		d := got["default"]
		return d.leader() == b.Holder && !d.Stale && d.Stats != nil && d.Stats.SlotsSent >= 1
	}, 10*time.Second, 20*time.Millisecond)
	d = got["default"]
	require.EqualValues(t, 2, d.Token)
	require.EqualValues(t, 1, d.Stats.Elections)
	_, body = get(t, base+"/beat")
	require.Contains(t, body, b.Holder)
	require.Contains(t, body, ">leading<")

	// Every scheduler of "default" stops: no leader; the store still has
	// the last sent slots.
	haltB()
	haltR()
	require.Eventually(t, func() bool { got = getBeat(t, base); return got["default"].Leader == nil }, 10*time.Second, 20*time.Millisecond)
	d = got["default"]
	require.EqualValues(t, 2, d.Token)
	require.NotNil(t, d.Entries[0].LastSent)
	require.Nil(t, d.Entries[0].Next)
	_, body = get(t, base+"/metrics")
	checkExposition(t, body)
	require.Contains(t, body, `taskgen_beat_leader{key="default"} 0`)
	_, body = get(t, base+"/beat")
	require.Contains(t, body, "No scheduler leads this schedule")
}
