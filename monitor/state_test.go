package monitor

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// fakeClock is an injected monitor clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Unix(1795463130, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestState(c *fakeClock, max int) *State {
	return NewState(StateOptions{MaxTasks: max, Now: c.Now, LocalUTCOffset: func() int { return 0 }})
}

func ev(typ string, fields ...any) map[string]any {
	m := map[string]any{"type": typ, "hostname": "w1@host", "utcoffset": 0.0, "pid": 1.0, "clock": 1.0}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fields[i+1]
	}
	return m
}

func TestState_TaskLifecycle(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newTestState(c, 0)
	s.Event(ev("task-received", "uuid", "a", "name", "signup.send", "args", "('ann@example.com',)", "kwargs", "{}",
		"root_id", "a", "parent_id", nil, "retries", 0.0, "eta", nil, "expires", nil, "timestamp", 100.0, "routing_key", "emails"))
	s.Event(ev("task-started", "uuid", "a", "timestamp", 100.5))
	s.Event(ev("task-succeeded", "uuid", "a", "result", "'msg-1'", "runtime", 0.25, "timestamp", 100.75))

	task, ok := s.Task("a")
	require.True(t, ok)
	require.Equal(t, StateSuccess, task.State)
	require.Equal(t, "signup.send", task.Name)
	require.Equal(t, "('ann@example.com',)", task.Args)
	require.Equal(t, "'msg-1'", task.Result)
	require.Equal(t, 0.25, task.Runtime)
	require.True(t, task.HasRuntime())
	require.Equal(t, "w1@host", task.Worker)
	require.Equal(t, "a", task.RootID)
	require.Equal(t, "emails", task.RoutingKey)
	require.Equal(t, 100.0, task.Received)
	require.Equal(t, 100.5, task.Started)
	require.Equal(t, 100.75, task.Succeeded)
	require.Equal(t, []TimelineEntry{{StateReceived, 100, "w1@host"}, {StateStarted, 100.5, "w1@host"}, {StateSuccess, 100.75, "w1@host"}}, task.Timeline)
	require.Equal(t, []string{"emails"}, s.SeenQueues())

	ws := s.Workers()
	require.Len(t, ws, 1)
	require.EqualValues(t, 1, ws[0].Succeeded)
	require.EqualValues(t, 1, ws[0].Received)
	require.Equal(t, "online", ws[0].Status, "task events count as heartbeats")
	require.EqualValues(t, 1, s.Totals().Succeeded)
}

func TestState_LateEventsDoNotRewindState(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	s.Event(ev("task-succeeded", "uuid", "a", "result", "1", "runtime", 0.1, "timestamp", 101.0))
	s.Event(ev("task-received", "uuid", "a", "name", "t.add", "args", "(1,)", "timestamp", 100.0))
	s.Event(ev("task-started", "uuid", "a", "timestamp", 100.5))
	task, _ := s.Task("a")
	require.Equal(t, StateSuccess, task.State, "a late started event does not undo success")
	require.Equal(t, "t.add", task.Name, "but its fields are merged")
	var order []string
	for _, e := range task.Timeline {
		order = append(order, e.State)
	}
	require.Equal(t, []string{StateReceived, StateStarted, StateSuccess}, order, "timeline in time order")
}

func TestState_RetryThenSuccess(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	s.Event(ev("task-received", "uuid", "a", "name", "t", "retries", 0.0, "timestamp", 1.0))
	s.Event(ev("task-started", "uuid", "a", "timestamp", 2.0))
	s.Event(ev("task-retried", "uuid", "a", "exception", "HTTPError('email provider answered 503')", "traceback", "tb", "timestamp", 3.0))
	task, _ := s.Task("a")
	require.Equal(t, StateRetry, task.State)
	require.Equal(t, "HTTPError('email provider answered 503')", task.Exception)
	s.Event(ev("task-received", "uuid", "a", "name", "t", "retries", 1.0, "parent_id", "a", "timestamp", 4.0))
	task, _ = s.Task("a")
	require.Equal(t, StateReceived, task.State, "RETRY takes any next state")
	s.Event(ev("task-started", "uuid", "a", "timestamp", 5.0))
	s.Event(ev("task-succeeded", "uuid", "a", "result", "'ok'", "runtime", 0.5, "timestamp", 6.0))
	task, _ = s.Task("a")
	require.Equal(t, StateSuccess, task.State)
	require.Equal(t, 1, task.Retries)
	require.Len(t, task.Timeline, 6)
	w := s.Workers()[0]
	require.EqualValues(t, 1, w.Retried)
	require.EqualValues(t, 1, w.Succeeded)
	require.EqualValues(t, 2, w.Started)
}

func TestWorker_AliveFollowsFlowersRule(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newTestState(c, 0)
	online := func() string { return s.Workers()[0].Status }

	s.Event(ev("worker-online", "freq", 2.0, "active", 0.0, "processed", 0.0, "loadavg", []any{0.1, 0.2, 0.3},
		"sw_ident", "taskgen", "sw_ver", "1", "sw_sys", "Linux", "timestamp", 1.0))
	require.Equal(t, "online", online())
	c.Advance(3999 * time.Millisecond)
	require.Equal(t, "online", online(), "alive until last heartbeat + freq*2")
	c.Advance(time.Millisecond)
	require.Equal(t, "offline", online(), "offline at last heartbeat + freq*2")
	require.Zero(t, s.OnlineWorkers())

	s.Event(ev("worker-heartbeat", "freq", 2.0, "active", 3.0, "processed", 7.0, "timestamp", 5.0))
	w := s.Workers()[0]
	require.Equal(t, "online", w.Status)
	require.EqualValues(t, 3, w.Active)
	require.EqualValues(t, 7, w.Processed)
	require.Equal(t, []float64{0.1, 0.2, 0.3}, w.LoadAvg)
	require.Equal(t, "taskgen", w.SWIdent)

	c.Advance(time.Second)
	s.Event(ev("worker-offline", "freq", 2.0, "timestamp", 6.0))
	require.Equal(t, "offline", online(), "worker-offline is immediate")

	// A worker known only from task events gets the default freq of 60 s.
	s.Event(map[string]any{"type": "task-started", "uuid": "x", "hostname": "w2@host", "timestamp": 7.0})
	w2 := s.Workers()[1]
	require.Equal(t, "w2@host", w2.Hostname)
	require.Equal(t, 60.0, w2.Freq)
	c.Advance(119 * time.Second)
	require.Equal(t, "online", s.Workers()[1].Status)
	c.Advance(time.Second)
	require.Equal(t, "offline", s.Workers()[1].Status)
}

func TestState_EvictsOldestBeyondBound(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 100)
	for i := 0; i < 250; i++ {
		s.Event(ev("task-received", "uuid", fmt.Sprintf("t%03d", i), "name", "n", "timestamp", float64(i)))
	}
	tot := s.Totals()
	require.Equal(t, 100, tot.Tasks)
	require.EqualValues(t, 150, tot.Evicted)
	_, ok := s.Task("t149")
	require.False(t, ok, "oldest evicted")
	_, ok = s.Task("t150")
	require.True(t, ok)
	page, total := s.Tasks(TaskQuery{})
	require.Equal(t, 100, total)
	require.Equal(t, "t249", page[0].UUID, "newest first")
}

func TestState_CeleryFixtures(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/celery/" + name)
		require.NoError(t, err)
		return b
	}
	require.NoError(t, s.HandleBody(read("msgpackrun_task_multi_EMPTY_LIST.bin")), "an empty task.multi list is fine")
	require.NoError(t, s.HandleMessage(&driver.RawMessage{RoutingKey: "task.multi", Body: read("msgpackrun_task_multi_task_received_task_started_task_succeeded_task_received_task_started_task_failed.bin")}))
	require.NoError(t, s.HandleBody(read("jsonrun_task_multi_task_received_task_started_task_failed.bin")))
	require.NoError(t, s.HandleBody(read("jsonrun_worker_heartbeat.bin")))

	add, ok := s.Task("66666666-6666-4666-8666-666666666662")
	require.True(t, ok)
	require.Equal(t, "tasks.add", add.Name)
	require.Equal(t, StateSuccess, add.State)
	require.Equal(t, "5", add.Result)
	require.Equal(t, "(2, 3)", add.Args)
	fail, ok := s.Task("3eb95c1f-6d56-4176-b253-92095523e332")
	require.True(t, ok)
	require.Equal(t, StateFailure, fail.State)
	require.Equal(t, "ExceptionWithTraceback()", fail.Exception)
	require.Contains(t, fail.Traceback, "ValueError: ('boom', 42)")

	ws := s.Workers()
	require.Len(t, ws, 1)
	require.Equal(t, "w2@localhost", ws[0].Hostname)
	require.Equal(t, "py-celery", ws[0].SWIdent)
	require.Equal(t, "online", ws[0].Status)
	require.NoError(t, s.HandleBody(read("jsonrun_worker_offline.bin")))
	require.Equal(t, "offline", s.Workers()[0].Status)

	require.ErrorIs(t, s.HandleBody([]byte("{not json")), ErrBadEvent)
	require.ErrorIs(t, s.HandleBody([]byte("null")), ErrBadEvent)
	require.NoError(t, s.HandleBody([]byte(" [] ")))
	require.EqualValues(t, 2, s.Totals().BadEvents)
}

func TestState_UTCOffsetAdjustsTimestamps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		sender, local int
		want          float64
	}{
		{"same zone", 0, 0, 1000},
		{"sender UTC+2, monitor UTC", -2, 0, 1000 + 7200},
		{"sender UTC, monitor UTC+2", 0, -2, 1000 - 7200},
		{"both UTC+2", -2, -2, 1000},
		{"sender UTC-5, monitor UTC+1", 5, -1, 1000 - 6*3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewState(StateOptions{Now: newClock().Now, LocalUTCOffset: func() int { return tc.local }})
			s.Event(map[string]any{"type": "task-received", "uuid": "a", "hostname": "w", "timestamp": 1000.0, "utcoffset": float64(tc.sender)})
			task, _ := s.Task("a")
			require.Equal(t, tc.want, task.Received)
		})
	}
}

func TestState_SeriesCountsPerSecond(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newTestState(c, 0)
	require.Len(t, s.Series(300), 1, "no history before the state existed")
	c.Advance(10 * time.Second)
	s.Event(ev("task-succeeded", "uuid", "a", "timestamp", 1.0))
	s.Event(ev("task-succeeded", "uuid", "b", "timestamp", 1.0))
	s.Event(ev("task-failed", "uuid", "c", "timestamp", 1.0))
	c.Advance(time.Second)
	s.Event(ev("task-retried", "uuid", "d", "timestamp", 1.0))
	c.Advance(time.Second)
	pts := s.Series(3)
	base := c.Now().Unix()
	require.Equal(t, []Point{{base - 3, 0, 0, 0}, {base - 2, 2, 1, 0}, {base - 1, 0, 0, 1}}, pts)

	s.SetQueue(QueueInfo{Name: "celery", Ready: 4, Unacked: -1})
	s.RecordQueueSample()
	c.Advance(2 * time.Second)
	q := s.QueueSeries(3)
	require.Equal(t, []int64{-1, 4, 4}, q["celery"])
}

func TestTasks_SearchFilterSortPage(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	for i, n := range []string{"signup.send_welcome_email", "billing.charge", "signup.send_welcome_email", "report.build"} {
		id := fmt.Sprintf("id-%d", i)
		s.Event(map[string]any{"type": "task-received", "uuid": id, "name": n, "hostname": fmt.Sprintf("w%d@h", i%2),
			"args": fmt.Sprintf("('user%d@example.com',)", i), "kwargs": "{}", "timestamp": float64(1000 + i*100)})
	}
	s.Event(map[string]any{"type": "task-succeeded", "uuid": "id-0", "hostname": "w0@h", "result": "'msg-alpha'", "runtime": 2.0, "timestamp": 1001.0})
	s.Event(map[string]any{"type": "task-failed", "uuid": "id-1", "hostname": "w1@h", "exception": "HTTPError('503')", "timestamp": 1101.0})
	s.Event(map[string]any{"type": "task-succeeded", "uuid": "id-2", "hostname": "w0@h", "result": "'msg-beta'", "runtime": 0.5, "timestamp": 1201.0})

	ids := func(q TaskQuery) []string {
		page, _ := s.Tasks(q)
		var out []string
		for _, t := range page {
			out = append(out, t.UUID)
		}
		return out
	}
	require.Equal(t, []string{"id-0"}, ids(TaskQuery{Search: "ALPHA"}), "result text")
	require.Equal(t, []string{"id-3"}, ids(TaskQuery{Search: "user3"}), "args")
	require.Equal(t, []string{"id-1"}, ids(TaskQuery{Search: "id-1"}), "id")
	require.Equal(t, []string{"id-2", "id-0"}, ids(TaskQuery{Search: "welcome"}), "name")
	require.Equal(t, []string{"id-2"}, ids(TaskQuery{Search: "name:welcome result:beta"}), "prefixed terms AND")
	require.Equal(t, []string{"id-1"}, ids(TaskQuery{Search: "503"}), "exception")
	require.Equal(t, []string{"id-2", "id-0"}, ids(TaskQuery{States: []string{StateSuccess}}))
	require.Equal(t, []string{"id-3", "id-1"}, ids(TaskQuery{Worker: "w1@h"}))
	require.Equal(t, []string{"id-1"}, ids(TaskQuery{Name: "billing.charge"}))
	require.Equal(t, []string{"id-2", "id-1"}, ids(TaskQuery{ReceivedStart: time.Unix(1100, 0), ReceivedEnd: time.Unix(1200, 0)}))
	require.Equal(t, []string{"id-0", "id-1", "id-2", "id-3"}, ids(TaskQuery{SortBy: "received"}))
	require.Equal(t, []string{"id-0", "id-2", "id-3", "id-1"}, ids(TaskQuery{SortBy: "-runtime"}), "runtime desc, stable")
	page, total := s.Tasks(TaskQuery{SortBy: "received", Offset: 1, Limit: 2})
	require.Equal(t, 4, total)
	require.Equal(t, "id-1", page[0].UUID)
	require.Equal(t, "id-2", page[1].UUID)

	q, err := ParseTaskQuery(url.Values{"limit": {"2"}, "offset": {"1"}, "sort_by": {"-received"}, "workername": {"w0@h"},
		"taskname": {"x"}, "state": {"success,failure"}, "received_start": {"2026-11-23 10:00"}, "received_end": {"2026-11-23T11:00"}, "search": {"a b"}}, time.UTC)
	require.NoError(t, err)
	require.Equal(t, TaskQuery{Search: "a b", States: []string{"SUCCESS", "FAILURE"}, Worker: "w0@h", Name: "x",
		ReceivedStart: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), ReceivedEnd: time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC),
		SortBy: "-received", Offset: 1, Limit: 2}, q)
	_, err = ParseTaskQuery(url.Values{"sort_by": {"bogus"}}, time.UTC)
	require.ErrorContains(t, err, "sort_by")
	_, err = ParseTaskQuery(url.Values{"limit": {"-1"}}, time.UTC)
	require.ErrorContains(t, err, "limit")
}

func TestWriteMetrics_Exposition(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newTestState(c, 0)
	s.Event(ev("worker-online", "freq", 2.0, "timestamp", 1.0))
	s.Event(map[string]any{"type": "worker-heartbeat", "hostname": "w\"2", "freq": 2.0})
	s.Event(ev("task-received", "uuid", "a", "name", "t.add", "timestamp", 1.0))
	s.Event(ev("task-succeeded", "uuid", "a", "runtime", 0.03, "timestamp", 2.0))
	s.Event(ev("task-received", "uuid", "b", "name", "t.add", "timestamp", 1.0))
	s.Event(ev("task-succeeded", "uuid", "b", "runtime", 3.0, "timestamp", 2.0))
	s.Event(ev("task-failed", "uuid", "c", "timestamp", 2.0))
	s.SetQueue(QueueInfo{Name: "celery", Ready: 7, Unacked: -1})
	s.SetQueue(QueueInfo{Name: "emails", Ready: 1, Unacked: 2})
	var b bytes.Buffer
	require.NoError(t, s.WriteMetrics(&b))
	out := b.String()
	for _, line := range []string{
		"# TYPE taskgen_tasks_total counter",
		`taskgen_tasks_total{name="t.add",state="RECEIVED"} 2`,
		`taskgen_tasks_total{name="t.add",state="SUCCESS"} 2`,
		`taskgen_tasks_total{name="unknown",state="FAILURE"} 1`,
		"# TYPE taskgen_task_runtime_seconds histogram",
		`taskgen_task_runtime_seconds_bucket{name="t.add",le="0.025"} 0`,
		`taskgen_task_runtime_seconds_bucket{name="t.add",le="0.05"} 1`,
		`taskgen_task_runtime_seconds_bucket{name="t.add",le="2.5"} 1`,
		`taskgen_task_runtime_seconds_bucket{name="t.add",le="5"} 2`,
		`taskgen_task_runtime_seconds_bucket{name="t.add",le="+Inf"} 2`,
		`taskgen_task_runtime_seconds_sum{name="t.add"} 3.03`,
		`taskgen_task_runtime_seconds_count{name="t.add"} 2`,
		`taskgen_queue_depth{queue="celery"} 7`,
		`taskgen_queue_depth{queue="emails"} 1`,
		`taskgen_queue_unacked{queue="emails"} 2`,
		"taskgen_workers_online 2",
		`taskgen_worker_online{worker="w\"2"} 1`,
		`taskgen_worker_online{worker="w1@host"} 1`,
		"taskgen_monitor_tasks 3",
	} {
		require.Contains(t, out, line+"\n")
	}
	require.NotContains(t, out, `taskgen_queue_unacked{queue="celery"}`)
	// Every non-comment line is "name{labels} value" or "name value".
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		require.GreaterOrEqual(t, len(f), 2, l)
		require.True(t, strings.HasPrefix(l, "taskgen_") || strings.HasPrefix(l, "flower_"), l)
	}
	c.Advance(5 * time.Second)
	b.Reset()
	require.NoError(t, s.WriteMetrics(&b))
	require.Contains(t, b.String(), "taskgen_workers_online 0\n")
}

// BenchmarkState_HandleBody measures event ingestion: one task's
// received/started/succeeded events, as one task.multi message.
func BenchmarkState_HandleBody(b *testing.B) {
	s := NewState(StateOptions{})
	bodies := make([][]byte, 1024)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(`[{"hostname": "w1@h", "utcoffset": 0, "pid": 1, "clock": 1, "uuid": "id-%d", "name": "signup.send_welcome_email", "args": "('user%d@example.com',)", "kwargs": "{}", "root_id": "id-%d", "parent_id": null, "retries": 0, "eta": null, "expires": null, "routing_key": "emails", "timestamp": 1795463132.37, "type": "task-received"}, {"hostname": "w1@h", "utcoffset": 0, "pid": 1, "clock": 2, "uuid": "id-%d", "timestamp": 1795463132.38, "type": "task-started"}, {"hostname": "w1@h", "utcoffset": 0, "pid": 1, "clock": 3, "uuid": "id-%d", "result": "'msg-1'", "runtime": 0.01, "timestamp": 1795463132.39, "type": "task-succeeded"}]`, i, i, i, i, i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.HandleBody(bodies[i%len(bodies)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(3*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkState_Event measures applying decoded events (no JSON): one
// task's received/started/succeeded events per op, with and without a
// trace id (the exemplars' path).
func BenchmarkState_Event(b *testing.B) {
	for _, traced := range []bool{false, true} {
		b.Run(fmt.Sprintf("traced=%v", traced), func(b *testing.B) {
			s := NewState(StateOptions{})
			evs := make([][3]map[string]any, 1024)
			for i := range evs {
				id := fmt.Sprintf("id-%d", i)
				base := func(typ string, ts float64) map[string]any {
					return map[string]any{"hostname": "w1@h", "utcoffset": 0.0, "pid": 1.0, "clock": 1.0, "uuid": id, "timestamp": ts, "type": typ}
				}
				r := base("task-received", 1795463132.37)
				r["name"], r["args"], r["kwargs"], r["root_id"], r["routing_key"], r["retries"] = "signup.send_welcome_email", "('u@example.com',)", "{}", id, "emails", 0.0
				if traced {
					r["trace_id"], r["span_id"] = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
				}
				st := base("task-started", 1795463132.38)
				ok := base("task-succeeded", 1795463132.39)
				ok["result"], ok["runtime"] = "'msg-1'", 0.01
				evs[i] = [3]map[string]any{r, st, ok}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, e := range evs[i%len(evs)] {
					s.Event(e)
				}
			}
			b.ReportMetric(float64(3*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkState_Collect measures a scrape's work on a busy state: 200
// task names on 10 workers (2000 Flower series), every name with runtime
// and wait histograms. snapshot is the part under the state's read lock.
func BenchmarkState_Collect(b *testing.B) {
	s := NewState(StateOptions{MaxTasks: 100000})
	n := 0
	for name := 0; name < 200; name++ {
		for w := 0; w < 10; w++ {
			n++
			id, host, task := fmt.Sprintf("id-%d", n), fmt.Sprintf("w%d@h", w), fmt.Sprintf("app.task_%d", name)
			s.Event(map[string]any{"type": "task-received", "uuid": id, "hostname": host, "name": task, "timestamp": 1.0})
			s.Event(map[string]any{"type": "task-started", "uuid": id, "hostname": host, "timestamp": 1.5})
			s.Event(map[string]any{"type": "task-succeeded", "uuid": id, "hostname": host, "runtime": 0.2, "timestamp": 1.7})
		}
	}
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			s.metricsSnapshot()
		}
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := s.WriteMetrics(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
