package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
)

// openMetricsAccept is what Prometheus sends to scrape OpenMetrics 1.0.
const openMetricsAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

type families map[string]*dto.MetricFamily

// parseMetrics decodes an exposition in format with expfmt; a family that
// comes twice fails the test.
func parseMetrics(t *testing.T, body []byte, format expfmt.Format) families {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	out := families{}
	for {
		f := &dto.MetricFamily{}
		err := dec.Decode(f)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s:\n%s", format, body)
		require.NotContains(t, out, f.GetName(), "family %s twice", f.GetName())
		out[f.GetName()] = f
	}
	return out
}

// checkExposition fails unless text parses as Prometheus' text format,
// each family once.
func checkExposition(t *testing.T, text string) families {
	t.Helper()
	return parseMetrics(t, []byte(text), expfmt.NewFormat(expfmt.TypeTextPlain))
}

// scrape GETs base/metrics with the Accept header given ("" for none) and
// parses the answer in the format it declares.
func scrape(t *testing.T, base, accept string) (families, string, expfmt.Format) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	format := expfmt.ResponseFormat(resp.Header)
	return parseMetrics(t, body, format), string(body), format
}

// metric returns the series of family name whose labels are exactly
// labels (name=value pairs), failing the test when there is none.
func (fs families) metric(t *testing.T, name string, labels ...string) *dto.Metric {
	t.Helper()
	m := fs.find(name, labels...)
	require.NotNil(t, m, "no %s%v in %v", name, labels, fs.series(name))
	return m
}

func (fs families) find(name string, labels ...string) *dto.Metric {
	f := fs[name]
	if f == nil {
		return nil
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) == len(want) {
			eq := true
			for k, v := range want {
				if got[k] != v {
					eq = false
				}
			}
			if eq {
				return m
			}
		}
	}
	return nil
}

// series lists the label sets of family name, for messages.
func (fs families) series(name string) []string {
	var out []string
	if f := fs[name]; f != nil {
		for _, m := range f.Metric {
			var l []string
			for _, p := range m.Label {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			out = append(out, strings.Join(l, ","))
		}
	}
	sort.Strings(out)
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

// buckets maps a histogram's upper bounds to their cumulative counts.
func buckets(m *dto.Metric) map[float64]uint64 {
	out := map[float64]uint64{}
	for _, b := range m.Histogram.Bucket {
		out[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	return out
}

// exemplars maps a histogram's upper bounds to their exemplars' labels
// and values.
func exemplars(m *dto.Metric) map[float64]string {
	out := map[float64]string{}
	for _, b := range m.Histogram.Bucket {
		if e := b.Exemplar; e != nil {
			var l []string
			for _, p := range e.Label {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			sort.Strings(l)
			out[b.GetUpperBound()] = strings.Join(l, ",") + " " + strconv.FormatFloat(e.GetValue(), 'g', -1, 64)
		}
	}
	return out
}

// metricsMonitor is a monitor on memory:// with an injected clock, not
// running (the test feeds its state), served over HTTP.
func metricsMonitor(t *testing.T, c *fakeClock, mod func(*Config)) (*Monitor, string) {
	t.Helper()
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	cfg := Config{App: app, Now: c.Now}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg)
	require.NoError(t, err)
	m.state.opts.LocalUTCOffset = func() int { return 0 }
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, srv.URL
}

const (
	traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanA  = "00f067aa0ba902b7"
	traceB = "0af7651916cd43dd8448eb211c80319c"
	spanB  = "b7ad6b7169203331"
)

// feedKnownEvents gives the state a known history: two t.add runs (one
// traced by trace_id/span_id fields, one by a traceparent), a prefetched
// t.add, an ETA t.mul, a nameless failure, a task-sent from a client, an
// event type Celery does not define, and two workers.
func feedKnownEvents(s *State) {
	s.Event(ev("worker-online", "freq", 2.0, "active", 3.0, "timestamp", 1.0))
	s.Event(map[string]any{"type": "worker-heartbeat", "hostname": "w\"2", "freq": 2.0})
	s.Event(map[string]any{"type": "task-sent", "hostname": "client@x", "uuid": "f", "name": "t.add", "timestamp": 99.0})
	s.Event(ev("task-received", "uuid", "a", "name", "t.add", "timestamp", 100.0, "trace_id", strings.ToUpper(traceA), "span_id", spanA))
	s.Event(ev("task-started", "uuid", "a", "timestamp", 100.25))
	s.Event(ev("task-progress", "uuid", "a", "timestamp", 100.26))
	s.Event(ev("task-succeeded", "uuid", "a", "runtime", 0.03, "timestamp", 100.3))
	s.Event(ev("task-received", "uuid", "b", "name", "t.add", "timestamp", 101.0))
	s.Event(ev("task-started", "uuid", "b", "timestamp", 103.0, "traceparent", "00-"+traceB+"-"+spanB+"-01"))
	s.Event(ev("task-succeeded", "uuid", "b", "runtime", 3.0, "timestamp", 103.5))
	s.Event(ev("task-received", "uuid", "c", "name", "t.mul", "eta", "2030-01-01T00:00:00+00:00", "timestamp", 104.0))
	s.Event(ev("task-received", "uuid", "d", "name", "t.add", "timestamp", 105.0, "trace_id", "00000000000000000000000000000000"))
	s.Event(ev("task-failed", "uuid", "e", "timestamp", 106.0))
	s.SetQueue(QueueInfo{Name: "celery", Ready: 7, Unacked: -1})
	s.SetQueue(QueueInfo{Name: "emails", Ready: 1, Unacked: 2})
	s.SetQueue(QueueInfo{Name: "broken", Err: "no such queue"})
}

// checkKnownMetrics checks the metrics of feedKnownEvents, as one scrape
// parsed them; with exemplars (OpenMetrics), theirs too.
func checkKnownMetrics(t *testing.T, fs families, withExemplars bool) {
	t.Helper()
	for name, typ := range map[string]dto.MetricType{
		"taskgen_tasks_total": dto.MetricType_COUNTER, "taskgen_task_runtime_seconds": dto.MetricType_HISTOGRAM,
		"taskgen_task_queue_wait_seconds": dto.MetricType_HISTOGRAM, "taskgen_queue_depth": dto.MetricType_GAUGE,
		"taskgen_queue_unacked": dto.MetricType_GAUGE, "taskgen_workers_online": dto.MetricType_GAUGE,
		"taskgen_worker_online": dto.MetricType_GAUGE, "taskgen_monitor_events_total": dto.MetricType_COUNTER,
		"taskgen_monitor_bad_events_total": dto.MetricType_COUNTER, "taskgen_monitor_tasks": dto.MetricType_GAUGE,
		"flower_events_total": dto.MetricType_COUNTER, "flower_task_runtime_seconds": dto.MetricType_HISTOGRAM,
		"flower_task_prefetch_time_seconds": dto.MetricType_GAUGE, "flower_worker_prefetched_tasks": dto.MetricType_GAUGE,
		"flower_worker_online": dto.MetricType_GAUGE, "flower_worker_number_of_currently_executing_tasks": dto.MetricType_GAUGE,
		"go_goroutines": dto.MetricType_GAUGE,
	} {
		require.Contains(t, fs, name)
		require.Equal(t, typ, fs[name].GetType(), name)
		require.NotEmpty(t, fs[name].GetHelp(), name)
	}

	for _, c := range []struct {
		name string
		want float64
		l    []string
	}{
		{"taskgen_tasks_total", 3, []string{"name", "t.add", "state", "RECEIVED"}},
		{"taskgen_tasks_total", 2, []string{"name", "t.add", "state", "STARTED"}},
		{"taskgen_tasks_total", 2, []string{"name", "t.add", "state", "SUCCESS"}},
		{"taskgen_tasks_total", 1, []string{"name", "t.add", "state", "PENDING"}},
		{"taskgen_tasks_total", 1, []string{"name", "t.mul", "state", "RECEIVED"}},
		{"taskgen_tasks_total", 1, []string{"name", "unknown", "state", "FAILURE"}},
		{"taskgen_queue_depth", 7, []string{"queue", "celery"}},
		{"taskgen_queue_depth", 1, []string{"queue", "emails"}},
		{"taskgen_queue_unacked", 2, []string{"queue", "emails"}},
		{"taskgen_workers_online", 2, nil},
		{"taskgen_worker_online", 1, []string{"worker", "w1@host"}},
		{"taskgen_worker_online", 1, []string{"worker", `w"2`}},
		{"taskgen_monitor_events_total", 13, nil},
		{"taskgen_monitor_bad_events_total", 0, nil},
		{"taskgen_monitor_tasks", 6, nil},
		{"flower_events_total", 1, []string{"worker", "client@x", "type", "task-sent", "task", "t.add"}},
		{"flower_events_total", 3, []string{"worker", "w1@host", "type", "task-received", "task", "t.add"}},
		{"flower_events_total", 2, []string{"worker", "w1@host", "type", "task-started", "task", "t.add"}},
		{"flower_events_total", 2, []string{"worker", "w1@host", "type", "task-succeeded", "task", "t.add"}},
		{"flower_events_total", 1, []string{"worker", "w1@host", "type", "task-progress", "task", "t.add"}},
		{"flower_events_total", 1, []string{"worker", "w1@host", "type", "task-received", "task", "t.mul"}},
		{"flower_events_total", 1, []string{"worker", "w1@host", "type", "task-failed", "task", ""}},
		{"flower_worker_prefetched_tasks", 1, []string{"worker", "w1@host", "task", "t.add"}},
		{"flower_task_prefetch_time_seconds", 0, []string{"worker", "w1@host", "task", "t.add"}},
		{"flower_worker_online", 1, []string{"worker", "w1@host"}},
		{"flower_worker_online", 1, []string{"worker", `w"2`}},
		{"flower_worker_number_of_currently_executing_tasks", 3, []string{"worker", "w1@host"}},
	} {
		require.Equal(t, c.want, value(fs.metric(t, c.name, c.l...)), "%s%v", c.name, c.l)
	}
	require.Nil(t, fs.find("taskgen_queue_unacked", "queue", "celery"), "unknown unacked is left out")
	require.Nil(t, fs.find("taskgen_queue_depth", "queue", "broken"), "a failed poll is left out")
	require.Nil(t, fs.find("flower_worker_prefetched_tasks", "worker", "w1@host", "task", "t.mul"), "an ETA task is not prefetched")
	require.Nil(t, fs.find("flower_worker_number_of_currently_executing_tasks", "worker", `w"2`), "no active field, no series")
	require.Len(t, fs["flower_events_total"].Metric, 7)

	rt := fs.metric(t, "taskgen_task_runtime_seconds", "name", "t.add").Histogram
	require.EqualValues(t, 2, rt.GetSampleCount())
	require.InDelta(t, 3.03, rt.GetSampleSum(), 1e-9)
	b := buckets(fs.metric(t, "taskgen_task_runtime_seconds", "name", "t.add"))
	require.EqualValues(t, 0, b[0.025])
	require.EqualValues(t, 1, b[0.05])
	require.EqualValues(t, 1, b[2.5])
	require.EqualValues(t, 2, b[5])
	require.EqualValues(t, 2, b[10])

	qw := fs.metric(t, "taskgen_task_queue_wait_seconds", "name", "t.add")
	require.EqualValues(t, 2, qw.Histogram.GetSampleCount(), "a and b waited; d has not started")
	require.InDelta(t, 2.25, qw.Histogram.GetSampleSum(), 1e-9)
	b = buckets(qw)
	require.EqualValues(t, 0, b[0.1])
	require.EqualValues(t, 1, b[0.25])
	require.EqualValues(t, 1, b[1])
	require.EqualValues(t, 2, b[2.5])
	require.Nil(t, fs.find("taskgen_task_queue_wait_seconds", "name", "t.mul"))

	fr := fs.metric(t, "flower_task_runtime_seconds", "worker", "w1@host", "task", "t.add")
	require.EqualValues(t, 2, fr.Histogram.GetSampleCount())
	b = buckets(fr)
	require.EqualValues(t, 1, b[0.05])
	require.EqualValues(t, 1, b[0.075], "Flower's buckets")
	require.EqualValues(t, 2, b[7.5])

	if !withExemplars {
		return
	}
	require.Equal(t, map[float64]string{0.05: "span_id=" + spanA + ",trace_id=" + traceA + " 0.03", 5: "span_id=" + spanB + ",trace_id=" + traceB + " 3"},
		exemplars(fs.metric(t, "taskgen_task_runtime_seconds", "name", "t.add")),
		"a's trace on its bucket; b's task-succeeded came after its traceparent, on le=5")
	require.Equal(t, map[float64]string{
		0.25: "span_id=" + spanA + ",trace_id=" + traceA + " 0.25",
		2.5:  "span_id=" + spanB + ",trace_id=" + traceB + " 2",
	}, exemplars(qw))
	require.Equal(t, map[float64]string{0.05: "span_id=" + spanA + ",trace_id=" + traceA + " 0.03", 5: "span_id=" + spanB + ",trace_id=" + traceB + " 3"},
		exemplars(fr))
}

func TestMetrics_ScrapeTextAndOpenMetrics(t *testing.T) {
	t.Parallel()
	c := newClock()
	m, url := metricsMonitor(t, c, nil)
	feedKnownEvents(m.State())

	fs, body, format := scrape(t, url, "")
	require.Equal(t, expfmt.TypeTextPlain, format.FormatType(), "without Accept: the text format")
	require.NotContains(t, body, "trace_id", "exemplars only in OpenMetrics")
	require.Contains(t, body, `taskgen_worker_online{worker="w\"2"} 1`+"\n")
	checkKnownMetrics(t, fs, false)

	fs, body, format = scrape(t, url, openMetricsAccept)
	require.Equal(t, expfmt.TypeOpenMetrics, format.FormatType(), "OpenMetrics negotiated")
	require.True(t, strings.HasSuffix(body, "# EOF\n"))
	require.Contains(t, body, `taskgen_task_queue_wait_seconds_bucket{name="t.add",le="2.5"} 2 # {`)
	checkKnownMetrics(t, fs, true)

	// Workers go silent: offline after 2 × freq, in both families.
	c.Advance(5 * time.Second)
	fs, _, _ = scrape(t, url, "")
	require.Equal(t, 0.0, value(fs.metric(t, "taskgen_workers_online")))
	require.Equal(t, 0.0, value(fs.metric(t, "flower_worker_online", "worker", "w1@host")))
	require.Equal(t, 0.0, value(fs.metric(t, "taskgen_worker_online", "worker", "w1@host")))
}

// The Flower gauges through a task's life, retries and late events.
func TestMetrics_FlowerPrefetch(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 3)
	gather := func() families {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(s)
		got, err := reg.Gather()
		require.NoError(t, err)
		fs := families{}
		for _, f := range got {
			fs[f.GetName()] = f
		}
		return fs
	}
	prefetched := func() float64 {
		return value(gather().metric(t, "flower_worker_prefetched_tasks", "worker", "w1@host", "task", "t"))
	}
	prefetchTime := func() float64 {
		return value(gather().metric(t, "flower_task_prefetch_time_seconds", "worker", "w1@host", "task", "t"))
	}
	s.Event(ev("task-received", "uuid", "a", "name", "t", "timestamp", 10.0))
	s.Event(ev("task-received", "uuid", "a", "name", "t", "timestamp", 10.0)) // a duplicate
	require.Equal(t, 1.0, prefetched())
	require.Nil(t, gather().find("flower_task_prefetch_time_seconds", "worker", "w1@host", "task", "t"), "no series before a start")
	s.Event(ev("task-started", "uuid", "a", "timestamp", 11.5))
	require.Equal(t, 0.0, prefetched())
	require.Equal(t, 1.5, prefetchTime())
	s.Event(ev("task-retried", "uuid", "a", "timestamp", 12.0))
	s.Event(ev("task-received", "uuid", "a", "name", "t", "retries", 1.0, "timestamp", 13.0))
	require.Equal(t, 1.0, prefetched(), "the retry's delivery is prefetched again")
	s.Event(ev("task-started", "uuid", "a", "timestamp", 13.25))
	s.Event(ev("task-started", "uuid", "a", "timestamp", 13.25)) // a duplicate
	require.Equal(t, 0.0, prefetched())
	require.Equal(t, 0.25, prefetchTime())
	s.Event(ev("task-succeeded", "uuid", "a", "runtime", 0.1, "timestamp", 13.5))
	require.Equal(t, 0.0, prefetchTime(), "Flower's: 0 once the task ended")

	// Out of order: task-started before task-received counts nothing.
	s.Event(ev("task-started", "uuid", "b", "name", "t", "timestamp", 21.0))
	s.Event(ev("task-received", "uuid", "b", "name", "t", "timestamp", 20.0))
	require.Equal(t, 0.0, prefetched())
	wait := gather().metric(t, "taskgen_task_queue_wait_seconds", "name", "t").Histogram
	require.EqualValues(t, 2, wait.GetSampleCount(), "a's two deliveries")
	require.Equal(t, 1.75, wait.GetSampleSum())

	// A prefetched task evicted (MaxTasks 3) leaves the gauge.
	s.Event(ev("task-received", "uuid", "c", "name", "t", "timestamp", 30.0))
	require.Equal(t, 1.0, prefetched())
	s.Event(ev("task-received", "uuid", "d", "name", "u", "timestamp", 31.0))
	s.Event(ev("task-received", "uuid", "e", "name", "u", "timestamp", 32.0))
	s.Event(ev("task-received", "uuid", "f", "name", "u", "timestamp", 33.0))
	_, kept := s.Task("c")
	require.False(t, kept)
	require.Equal(t, 0.0, prefetched())
}

func TestMetrics_TraceContext(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ev          map[string]any
		trace, span string
	}{
		{map[string]any{"trace_id": traceA, "span_id": spanA}, traceA, spanA},
		{map[string]any{"trace_id": strings.ToUpper(traceA)}, traceA, ""},
		{map[string]any{"trace_id": traceA, "span_id": "xyz"}, traceA, ""},
		{map[string]any{"trace_id": "00000000000000000000000000000000", "traceparent": "00-" + traceB + "-" + spanB + "-01"}, traceB, spanB},
		{map[string]any{"traceparent": "00-" + traceB + "-" + spanB + "-01"}, traceB, spanB},
		{map[string]any{"traceparent": " 00-" + traceB + "-" + spanB + "-00 "}, traceB, spanB},
		{map[string]any{"traceparent": "ff-" + traceB + "-" + spanB + "-01"}, "", ""},
		{map[string]any{"traceparent": "00-" + traceB + "-0000000000000000-01"}, "", ""},
		{map[string]any{"traceparent": "00_" + traceB + "-" + spanB + "-01"}, "", ""},
		{map[string]any{"traceparent": "00-" + traceB[:31] + "g-" + spanB + "-01"}, "", ""},
		{map[string]any{"trace_id": 7.0}, "", ""},
		{map[string]any{}, "", ""},
	} {
		tr, sp := traceContext(c.ev)
		require.Equal(t, c.trace, tr, "%v", c.ev)
		require.Equal(t, c.span, sp, "%v", c.ev)
	}
}

// The schedules' collector, from polls recorded by hand: a leader, a
// stopped leader's document, a key without one, a key not polled yet.
func TestMetrics_BeatCollector(t *testing.T) {
	t.Parallel()
	c := newClock()
	m, url := metricsMonitor(t, c, func(cfg *Config) { cfg.BeatKeys = []string{"k", "gone", "none", "later"} })
	now := c.Now()
	doc := &beat.ScheduleDoc{Key: "k", Holder: "h", Token: 3, Entries: []beat.EntryDoc{{Name: "a", Sent: 5, Missed: 1}, {Name: "a", Sent: 9}, {Name: "b", Sent: 2}},
		Stats:           beat.Stats{Leader: true, Elections: 2, SlotsSent: 7, SendErrors: 1},
		LatenessBuckets: []float64{0.001, 0.01, 0.1}, LatenessCounts: []int64{1, 3, 4, 5}, LatenessSum: 0.5}
	m.beat.record("k", beatPoll{Doc: doc, Lease: driver.Lease{Holder: "h", Token: 3, Left: 10 * time.Second}}, nil, now)
	old := &beat.ScheduleDoc{Key: "gone", Holder: "old", Token: 1, Stats: beat.Stats{Leader: true, Elections: 1}, Entries: []beat.EntryDoc{{Name: "x", Sent: 4}}}
	m.beat.record("gone", beatPoll{Doc: old, Lease: driver.Lease{Token: 1}}, nil, now)
	m.beat.record("none", beatPoll{}, nil, now)

	for _, accept := range []string{"", openMetricsAccept} {
		fs, _, _ := scrape(t, url, accept)
		for _, c := range []struct {
			name string
			want float64
			l    []string
		}{
			{"taskgen_beat_leader", 1, []string{"key", "k"}},
			{"taskgen_beat_leader", 0, []string{"key", "gone"}},
			{"taskgen_beat_leader", 0, []string{"key", "none"}},
			{"taskgen_beat_elections_total", 2, []string{"key", "k"}},
			{"taskgen_beat_elections_total", 1, []string{"key", "gone"}},
			{"taskgen_beat_slots_sent_total", 5, []string{"key", "k", "entry", "a"}},
			{"taskgen_beat_slots_sent_total", 2, []string{"key", "k", "entry", "b"}},
			{"taskgen_beat_slots_sent_total", 4, []string{"key", "gone", "entry", "x"}},
			{"taskgen_beat_slots_missed_total", 1, []string{"key", "k", "entry", "a"}},
			{"taskgen_beat_send_errors_total", 1, []string{"key", "k"}},
		} {
			require.Equal(t, c.want, value(fs.metric(t, c.name, c.l...)), "%s%v", c.name, c.l)
		}
		require.Len(t, fs["taskgen_beat_leader"].Metric, 3, "the key not polled yet has none")
		require.Len(t, fs["taskgen_beat_slots_sent_total"].Metric, 3)
		require.Nil(t, fs.find("taskgen_beat_elections_total", "key", "none"))
		h := fs.metric(t, "taskgen_beat_fire_lateness_seconds", "key", "k")
		require.Equal(t, dto.MetricType_HISTOGRAM, fs["taskgen_beat_fire_lateness_seconds"].GetType())
		require.EqualValues(t, 5, h.Histogram.GetSampleCount())
		require.Equal(t, 0.5, h.Histogram.GetSampleSum())
		b := buckets(h)
		require.EqualValues(t, 1, b[0.001])
		require.EqualValues(t, 3, b[0.01])
		require.EqualValues(t, 4, b[0.1])
		require.EqualValues(t, 0, fs.metric(t, "taskgen_beat_fire_lateness_seconds", "key", "gone").Histogram.GetSampleCount())
	}
}

// promtool (Debian's prometheus package; scripts/testenv.sh installs it)
// lints a scrape. Without promtool the test skips, or fails when CI is
// set.
func TestMetrics_Promtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not on PATH (scripts/testenv.sh install adds Debian's prometheus package)")
		}
		t.Skip("promtool is not on PATH (apt-get install prometheus)")
	}
	c := newClock()
	m, url := metricsMonitor(t, c, func(cfg *Config) { cfg.BeatKeys = []string{"k"} })
	feedKnownEvents(m.State())
	m.beat.record("k", beatPoll{Doc: &beat.ScheduleDoc{Key: "k", Holder: "h", Token: 1, Entries: []beat.EntryDoc{{Name: "a", Sent: 1}},
		LatenessBuckets: []float64{0.001, 0.01}, LatenessCounts: []int64{1, 1, 1}, LatenessSum: 0.0005}, Lease: driver.Lease{Holder: "h", Token: 1}}, nil, c.Now())
	_, body, _ := scrape(t, url, "")
	require.Contains(t, body, "taskgen_beat_fire_lateness_seconds_bucket")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "promtool's lint findings")
}

// A real Prometheus (Debian's, the prometheus package scripts/testenv.sh
// installs) scrapes the monitor: it negotiates OpenMetrics, ingests the
// series and stores the exemplars with their trace ids. Without the binary
// the test skips, or fails when CI is set.
func TestMetrics_PrometheusScrape(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is not on PATH (scripts/testenv.sh install adds Debian's prometheus package)")
		}
		t.Skip("prometheus is not on PATH (apt-get install prometheus)")
	}
	c := &fakeClock{now: time.Now()}
	m, target := metricsMonitor(t, c, nil)
	feedKnownEvents(m.State())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: taskmon\n  static_configs:\n  - targets: ['"+
		strings.TrimPrefix(target, "http://")+"']\n"), 0o644))
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		"--enable-feature=exemplar-storage")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	api := func(path string, q url.Values, v any) error {
		resp, err := http.Get("http://" + addr + path + "?" + q.Encode())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	query := func(expr string) (float64, bool) {
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := api("/api/v1/query", url.Values{"query": {expr}}, &r); err != nil || len(r.Data.Result) != 1 {
			return 0, false
		}
		f, err := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
		return f, err == nil
	}
	require.Eventually(t, func() bool {
		v, ok := query(`taskgen_task_queue_wait_seconds_count{job="taskmon",name="t.add"}`)
		return ok && v == 2
	}, 60*time.Second, 200*time.Millisecond, "prometheus never scraped the monitor:\n%s", &logs)
	for expr, want := range map[string]float64{
		`taskgen_tasks_total{name="t.add",state="SUCCESS"}`:                       2,
		`flower_events_total{worker="w1@host",type="task-received",task="t.add"}`: 3,
		`flower_worker_prefetched_tasks{worker="w1@host",task="t.add"}`:           1,
		`taskgen_task_runtime_seconds_bucket{name="t.add",le="0.05"}`:             1,
		`taskgen_workers_online`: 2,
	} {
		v, ok := query(expr)
		require.True(t, ok, expr)
		require.Equal(t, want, v, expr)
	}
	n, ok := query(`scrape_samples_scraped{job="taskmon"}`)
	require.True(t, ok)
	require.Greater(t, n, 100.0, "the Go runtime's and the process's too")

	// The exemplars, with the events' trace and span ids (only OpenMetrics
	// carries them: Prometheus negotiated it).
	var ex struct {
		Data []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels map[string]string `json:"labels"`
				Value  string            `json:"value"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	now := time.Now()
	require.NoError(t, api("/api/v1/query_exemplars", url.Values{"query": {`taskgen_task_queue_wait_seconds_bucket{name="t.add"}`},
		"start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}, "end": {strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}}, &ex))
	got := map[string]string{}
	for _, s := range ex.Data {
		for _, e := range s.Exemplars {
			got[s.SeriesLabels["le"]] = e.Labels["trace_id"] + "/" + e.Labels["span_id"] + " " + e.Value
		}
	}
	require.Equal(t, map[string]string{"0.25": traceA + "/" + spanA + " 0.25", "2.5": traceB + "/" + spanB + " 2"}, got)
}
