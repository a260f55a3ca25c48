package monitor

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/taskgen/taskgen/runtime/driver"
)

// The descriptors of the metrics the package doc lists (# Metrics): the
// state's (State.Collect), Flower's (same names, labels and help texts as
// flower/events.py) and the schedules' (beatCollector).
var (
	descTasks = prometheus.NewDesc("taskgen_tasks_total",
		"Task events seen by the monitor, by task name and the state they set.", []string{"name", "state"}, nil)
	descRuntime = prometheus.NewDesc("taskgen_task_runtime_seconds",
		"Runtime of succeeded tasks (the runtime field of task-succeeded).", []string{"name"}, nil)
	descWait = prometheus.NewDesc("taskgen_task_queue_wait_seconds",
		"Time from a task's task-received to its task-started: how long it waited at the worker, prefetched, for a free slot (tasks with an ETA are left out).", []string{"name"}, nil)
	descQueueDepth = prometheus.NewDesc("taskgen_queue_depth",
		"Ready messages in the queue at the last poll.", []string{"queue"}, nil)
	descQueueUnacked = prometheus.NewDesc("taskgen_queue_unacked",
		"Delivered, unacknowledged messages of the queue at the last poll, where the transport reports them.", []string{"queue"}, nil)
	descWorkersOnline = prometheus.NewDesc("taskgen_workers_online",
		"Workers alive by Flower's rule (a heartbeat within 2 × freq).", nil, nil)
	descWorkerOnline = prometheus.NewDesc("taskgen_worker_online",
		"1 if the worker is alive, 0 if not.", []string{"worker"}, nil)
	descEvents = prometheus.NewDesc("taskgen_monitor_events_total",
		"Events consumed by the monitor.", nil, nil)
	descBadEvents = prometheus.NewDesc("taskgen_monitor_bad_events_total",
		"Malformed events ignored by the monitor.", nil, nil)
	descTasksKept = prometheus.NewDesc("taskgen_monitor_tasks",
		"Tasks kept in the monitor's memory.", nil, nil)

	// Flower's (flower/events.py PrometheusMetrics), its help texts.
	descFlowerEvents = prometheus.NewDesc("flower_events_total",
		"Number of events", []string{"worker", "type", "task"}, nil)
	descFlowerRuntime = prometheus.NewDesc("flower_task_runtime_seconds",
		"Task runtime", []string{"worker", "task"}, nil)
	descFlowerPrefetchTime = prometheus.NewDesc("flower_task_prefetch_time_seconds",
		"The time the task spent waiting at the celery worker to be executed.", []string{"worker", "task"}, nil)
	descFlowerPrefetched = prometheus.NewDesc("flower_worker_prefetched_tasks",
		"Number of tasks of given type prefetched at a worker", []string{"worker", "task"}, nil)
	descFlowerOnline = prometheus.NewDesc("flower_worker_online",
		"Worker online status", []string{"worker"}, nil)
	descFlowerExecuting = prometheus.NewDesc("flower_worker_number_of_currently_executing_tasks",
		"Number of tasks currently executing at a worker", []string{"worker"}, nil)

	// runtime/beat's (beat.WriteDocMetrics), its help texts.
	descBeatLeader = prometheus.NewDesc("taskgen_beat_leader",
		"1 while this scheduler holds the schedule's lease.", []string{"key"}, nil)
	descBeatElections = prometheus.NewDesc("taskgen_beat_elections_total",
		"Times the scheduler took the lease.", []string{"key"}, nil)
	descBeatSent = prometheus.NewDesc("taskgen_beat_slots_sent_total",
		"Scheduled slots published, by entry.", []string{"key", "entry"}, nil)
	descBeatMissed = prometheus.NewDesc("taskgen_beat_slots_missed_total",
		"Slots not sent because of the entry's catch-up policy, by entry.", []string{"key", "entry"}, nil)
	descBeatSendErrors = prometheus.NewDesc("taskgen_beat_send_errors_total",
		"Failed publishes of a slot (each is retried).", []string{"key"}, nil)
	descBeatLateness = prometheus.NewDesc("taskgen_beat_fire_lateness_seconds",
		"Time from a slot to the publish of its message.", []string{"key"}, nil)
)

// runtimeBuckets are the upper bounds (seconds) of taskgen_task_runtime_seconds,
// Prometheus client defaults.
var runtimeBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// waitBuckets are those of taskgen_task_queue_wait_seconds: 1 ms to 10 min,
// a backlog's waits being long.
var waitBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// flowerRuntimeBuckets are flower_task_runtime_seconds' (Flower's default
// task_runtime_metric_buckets: Python prometheus_client's defaults).
var flowerRuntimeBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// histogram is a classic Prometheus histogram that keeps, per bucket, the
// latest observation that came with a trace id (its exemplar).
type histogram struct {
	bounds []float64 // upper bounds, ascending; +Inf follows
	counts []uint64  // per bucket, not cumulative; last is +Inf; nil until the first observation
	sum    float64
	count  uint64
	ex     []exemplar // per bucket; nil until the first observation with a trace id
}

// exemplar is one observation with its trace context.
type exemplar struct {
	value       float64
	trace, span string
	at          time.Time
}

func (h *histogram) observe(v float64, trace, span string, at time.Time) {
	if h.counts == nil {
		h.counts = make([]uint64, len(h.bounds)+1)
	}
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.count++
	if trace != "" {
		if h.ex == nil {
			h.ex = make([]exemplar, len(h.bounds)+1)
		}
		h.ex[i] = exemplar{value: v, trace: trace, span: span, at: at}
	}
}

// clone copies h, its slices too.
func (h *histogram) clone() histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	if h.ex != nil {
		c.ex = append([]exemplar(nil), h.ex...)
	}
	return c
}

// metric is h as a constant histogram, with its exemplars.
func (h *histogram) metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, ub := range h.bounds {
		if i < len(h.counts) {
			cum += h.counts[i]
		}
		buckets[ub] = cum
	}
	m, err := prometheus.NewConstHistogram(desc, h.count, h.sum, buckets, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	var exs []prometheus.Exemplar
	for _, e := range h.ex {
		if e.trace == "" {
			continue
		}
		l := prometheus.Labels{"trace_id": e.trace}
		if e.span != "" {
			l["span_id"] = e.span
		}
		exs = append(exs, prometheus.Exemplar{Value: e.value, Labels: l, Timestamp: e.at})
	}
	if len(exs) > 0 {
		if mx, err := prometheus.NewMetricWithExemplars(m, exs...); err == nil {
			m = mx
		}
	}
	return m
}

// nameStats are the per-task-name series.
type nameStats struct {
	states  map[string]int64
	runtime histogram // taskgen_task_runtime_seconds
	wait    histogram // taskgen_task_queue_wait_seconds
}

func newNameStats() *nameStats {
	return &nameStats{states: map[string]int64{}, runtime: histogram{bounds: runtimeBuckets}, wait: histogram{bounds: waitBuckets}}
}

// taskEventTypes are Celery's task event types, flower_events_total's type
// label; workerTaskStats.events counts them in this order.
var taskEventTypes = [...]string{driver.EventTaskSent, driver.EventTaskReceived, driver.EventTaskStarted,
	driver.EventTaskSucceeded, driver.EventTaskFailed, driver.EventTaskRetried, driver.EventTaskRevoked, driver.EventTaskRejected}

func taskEventIndex(typ string) int {
	switch typ {
	case driver.EventTaskSent:
		return 0
	case driver.EventTaskReceived:
		return 1
	case driver.EventTaskStarted:
		return 2
	case driver.EventTaskSucceeded:
		return 3
	case driver.EventTaskFailed:
		return 4
	case driver.EventTaskRetried:
		return 5
	case driver.EventTaskRevoked:
		return 6
	case driver.EventTaskRejected:
		return 7
	}
	return -1
}

// workerTask is the labels of Flower's per-worker series: the event's
// hostname and the task's name ("" when no event gave it, as Flower).
type workerTask struct{ worker, task string }

// workerTaskType adds an event type Celery does not define.
type workerTaskType struct {
	workerTask
	typ string
}

// maxWorkerTasks bounds Flower's per-worker, per-name series; further
// pairs count under worker="other", task="other". maxOtherTypes bounds the
// series of task-* event types Celery does not define (further ones are
// not counted).
const (
	maxWorkerTasks = 10000
	maxOtherTypes  = 1000
)

// workerTaskStats are Flower's per-worker, per-name series.
type workerTaskStats struct {
	key          workerTask
	events       [len(taskEventTypes)]int64 // flower_events_total by taskEventTypes
	runtime      histogram                  // flower_task_runtime_seconds
	prefetched   int64                      // flower_worker_prefetched_tasks
	prefetchTime float64                    // flower_task_prefetch_time_seconds
	// hasPrefetched, hasPrefetchTime: the gauges exist (Flower makes a
	// series at its first change).
	hasPrefetched, hasPrefetchTime bool
}

// workerTaskLocked returns the series of host and t's name (t's cached
// ones when they are those).
func (s *State) workerTaskLocked(t *Task, host string) *workerTaskStats {
	if wt := t.wt; wt != nil && wt.key.worker == host && wt.key.task == t.Name {
		return wt
	}
	k := workerTask{host, t.Name}
	wt := s.wts[k]
	if wt == nil {
		if len(s.wts) >= maxWorkerTasks {
			k = workerTask{"other", "other"}
			wt = s.wts[k]
		}
		if wt == nil {
			wt = &workerTaskStats{key: k, runtime: histogram{bounds: flowerRuntimeBuckets}}
			s.wts[k] = wt
		}
	}
	t.wt = wt
	return wt
}

// countEventLocked counts a task event in flower_events_total.
func (s *State) countEventLocked(wt *workerTaskStats, typ string) {
	if i := taskEventIndex(typ); i >= 0 {
		wt.events[i]++
		return
	}
	k := workerTaskType{wt.key, typ}
	if _, ok := s.wtOther[k]; ok || len(s.wtOther) < maxOtherTypes {
		s.wtOther[k]++
	}
}

// traceContext reads the trace context an event may carry: a trace_id
// field (32 hex digits) with an optional span_id (16), else a traceparent
// field (W3C: version-traceid-parentid-flags, the header taskgen's and
// Python's OpenTelemetry instrumentations put in the task message). It
// returns lower-case ids, "" for none. Two map lookups for an event
// without one.
func traceContext(ev map[string]any) (trace, span string) {
	if v, ok := ev["trace_id"].(string); ok {
		if trace = hexID(v, 32); trace != "" {
			sp, _ := ev["span_id"].(string)
			return trace, hexID(sp, 16)
		}
	}
	if tp, ok := ev["traceparent"].(string); ok {
		return parseTraceparent(tp)
	}
	return "", ""
}

// parseTraceparent returns the trace and parent ids of a W3C traceparent
// header (version-traceid-parentid-flags), "" when it is not one.
func parseTraceparent(v string) (trace, span string) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || !isHex(v[0]) || !isHex(v[1]) || v[:2] == "ff" {
		return "", ""
	}
	if trace, span = hexID(v[3:35], 32), hexID(v[36:52], 16); trace == "" || span == "" {
		return "", ""
	}
	return trace, span
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// hexID returns v lower-cased when it is n hex digits, not all zero (an
// invalid trace or span id), else "".
func hexID(v string, n int) string {
	if len(v) != n {
		return ""
	}
	zero, upper := true, false
	for i := 0; i < n; i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return ""
		}
		if c != '0' {
			zero = false
		}
	}
	if zero {
		return ""
	}
	if upper {
		v = strings.ToLower(v)
	}
	return v
}

// Describe sends the descriptors of the state's metrics: State is a
// prometheus.Collector, registered on the monitor's registry (see
// [Monitor.Registry]).
func (s *State) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasks, descRuntime, descWait, descQueueDepth, descQueueUnacked,
		descWorkersOnline, descWorkerOnline, descEvents, descBadEvents, descTasksKept,
		descFlowerEvents, descFlowerRuntime, descFlowerPrefetchTime, descFlowerPrefetched, descFlowerOnline, descFlowerExecuting} {
		ch <- d
	}
}

// metricsSnapshot is what Collect reports, copied under the state's lock
// (the metrics are built after it is released, so that event ingestion
// waits for a copy only).
type metricsSnapshot struct {
	names   []nameSnapshot
	wts     []workerTaskStats
	other   []otherCount
	queues  []QueueInfo
	workers []workerSnapshot
	events  int64
	bad     int64
	tasks   int
}

type nameSnapshot struct {
	name          string
	states        []stateCount
	runtime, wait histogram
}

type stateCount struct {
	state string
	n     int64
}

type otherCount struct {
	k workerTaskType
	n int64
}

type workerSnapshot struct {
	host      string
	alive     bool
	active    int64
	hasActive bool
}

func (s *State) metricsSnapshot() metricsSnapshot {
	now := s.opts.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	sn := metricsSnapshot{events: s.events, bad: s.bad, tasks: len(s.tasks),
		names: make([]nameSnapshot, 0, len(s.names)), wts: make([]workerTaskStats, 0, len(s.wts)),
		queues: make([]QueueInfo, 0, len(s.queues)), workers: make([]workerSnapshot, 0, len(s.workers))}
	for n, ns := range s.names {
		c := nameSnapshot{name: n, states: make([]stateCount, 0, len(ns.states))}
		for st, v := range ns.states {
			c.states = append(c.states, stateCount{st, v})
		}
		if ns.runtime.count > 0 {
			c.runtime = ns.runtime.clone()
		}
		if ns.wait.count > 0 {
			c.wait = ns.wait.clone()
		}
		sn.names = append(sn.names, c)
	}
	for _, wt := range s.wts {
		c := *wt
		if wt.runtime.count > 0 {
			c.runtime = wt.runtime.clone()
		}
		sn.wts = append(sn.wts, c)
	}
	for k, n := range s.wtOther {
		sn.other = append(sn.other, otherCount{k, n})
	}
	for _, q := range s.queues {
		sn.queues = append(sn.queues, q)
	}
	for h, w := range s.workers {
		sn.workers = append(sn.workers, workerSnapshot{host: h, alive: w.Alive(now), active: w.Active, hasActive: w.hasActive})
	}
	return sn
}

// Collect sends the state's metrics (see the list at the top of
// metrics.go, and docs/monitor.md), as of now.
func (s *State) Collect(ch chan<- prometheus.Metric) {
	sn := s.metricsSnapshot()
	for _, n := range sn.names {
		for _, st := range n.states {
			ch <- constMetric(descTasks, prometheus.CounterValue, float64(st.n), n.name, st.state)
		}
		if n.runtime.count > 0 {
			ch <- n.runtime.metric(descRuntime, n.name)
		}
		if n.wait.count > 0 {
			ch <- n.wait.metric(descWait, n.name)
		}
	}
	for _, q := range sn.queues {
		if q.Err != "" {
			continue
		}
		ch <- constMetric(descQueueDepth, prometheus.GaugeValue, float64(q.Ready), q.Name)
		if q.Unacked >= 0 {
			ch <- constMetric(descQueueUnacked, prometheus.GaugeValue, float64(q.Unacked), q.Name)
		}
	}
	online := 0
	for _, w := range sn.workers {
		v := 0.0
		if w.alive {
			online++
			v = 1
		}
		ch <- constMetric(descWorkerOnline, prometheus.GaugeValue, v, w.host)
		ch <- constMetric(descFlowerOnline, prometheus.GaugeValue, v, w.host)
		if w.hasActive {
			ch <- constMetric(descFlowerExecuting, prometheus.GaugeValue, float64(w.active), w.host)
		}
	}
	ch <- constMetric(descWorkersOnline, prometheus.GaugeValue, float64(online))
	ch <- constMetric(descEvents, prometheus.CounterValue, float64(sn.events))
	ch <- constMetric(descBadEvents, prometheus.CounterValue, float64(sn.bad))
	ch <- constMetric(descTasksKept, prometheus.GaugeValue, float64(sn.tasks))

	for i := range sn.wts {
		wt := &sn.wts[i]
		for j, n := range wt.events {
			if n > 0 {
				ch <- constMetric(descFlowerEvents, prometheus.CounterValue, float64(n), wt.key.worker, taskEventTypes[j], wt.key.task)
			}
		}
		if wt.runtime.count > 0 {
			ch <- wt.runtime.metric(descFlowerRuntime, wt.key.worker, wt.key.task)
		}
		if wt.hasPrefetched {
			ch <- constMetric(descFlowerPrefetched, prometheus.GaugeValue, float64(wt.prefetched), wt.key.worker, wt.key.task)
		}
		if wt.hasPrefetchTime {
			ch <- constMetric(descFlowerPrefetchTime, prometheus.GaugeValue, wt.prefetchTime, wt.key.worker, wt.key.task)
		}
	}
	for _, o := range sn.other {
		ch <- constMetric(descFlowerEvents, prometheus.CounterValue, float64(o.n), o.k.worker, o.k.typ, o.k.task)
	}
}

// constMetric is a constant counter or gauge, or an invalid metric (a
// label value that is not UTF-8) that the registry reports.
func constMetric(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, typ, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

// WriteMetrics writes the state's metrics (not the schedules', nor the
// process's: GET /metrics serves those too) in Prometheus' text exposition
// format, version 0.0.4.
func (s *State) WriteMetrics(out io.Writer) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(s); err != nil {
		return err
	}
	fams, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}

// beatCollector reports the watched schedules' taskgen_beat_* metrics from
// their latest polls: the document's counters and lateness histogram, its
// leader gauge 0 unless the document's scheduler still holds the lease; a
// polled key without a document has taskgen_beat_leader 0 only.
type beatCollector struct{ m *Monitor }

// Describe sends the taskgen_beat_* descriptors.
func (c beatCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBeatLeader, descBeatElections, descBeatSent, descBeatMissed, descBeatSendErrors, descBeatLateness} {
		ch <- d
	}
}

// Collect sends the schedules' metrics as of the latest polls.
func (c beatCollector) Collect(ch chan<- prometheus.Metric) {
	if c.m.beat.store == nil {
		return
	}
	for _, v := range c.m.beatViews() {
		if v.Polled.IsZero() {
			continue
		}
		if v.Doc == nil {
			ch <- constMetric(descBeatLeader, prometheus.GaugeValue, 0, v.Key)
			continue
		}
		d, st := v.Doc, v.Stats
		leader := 0.0
		if st.Leader {
			leader = 1
		}
		ch <- constMetric(descBeatLeader, prometheus.GaugeValue, leader, v.Key)
		ch <- constMetric(descBeatElections, prometheus.CounterValue, float64(st.Elections), v.Key)
		seen := make(map[string]bool, len(d.Entries))
		for _, e := range d.Entries {
			if seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			ch <- constMetric(descBeatSent, prometheus.CounterValue, float64(e.Sent), v.Key, e.Name)
			ch <- constMetric(descBeatMissed, prometheus.CounterValue, float64(e.Missed), v.Key, e.Name)
		}
		ch <- constMetric(descBeatSendErrors, prometheus.CounterValue, float64(st.SendErrors), v.Key)
		// The document's histogram: cumulative counts per bound, the last
		// (+Inf) the total.
		buckets := make(map[float64]uint64, len(d.LatenessBuckets))
		for i, ub := range d.LatenessBuckets {
			if i < len(d.LatenessCounts) && !math.IsNaN(ub) && !math.IsInf(ub, 0) {
				buckets[ub] = uint64(max(d.LatenessCounts[i], 0))
			}
		}
		var n uint64
		if len(d.LatenessCounts) > 0 {
			n = uint64(max(d.LatenessCounts[len(d.LatenessCounts)-1], 0))
		}
		h, err := prometheus.NewConstHistogram(descBeatLateness, n, d.LatenessSum, buckets, v.Key)
		if err != nil {
			h = prometheus.NewInvalidMetric(descBeatLateness, err)
		}
		ch <- h
	}
}

// newRegistry is the monitor's registry: the state, the schedules, the Go
// runtime and the process.
func (m *Monitor) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.state, beatCollector{m}, nodeCollector{m},
		// Without the memstats names: go_memstats_alloc_bytes (a gauge)
		// and go_memstats_alloc_bytes_total (a counter) are one family
		// name in OpenMetrics (client_golang issue 829); runtime/metrics
		// give the same figures.
		collectors.NewGoCollector(collectors.WithGoCollectorMemStatsMetricsDisabled(),
			collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC, collectors.MetricsMemory)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves the registry with content negotiation: OpenMetrics
// (which carries the exemplars) to scrapers that ask for it, Prometheus'
// text format otherwise.
func (m *Monitor) metricsHandler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          promLogger{m},
	})
}

// promLogger sends promhttp's errors to the monitor's debug log.
type promLogger struct{ m *Monitor }

// Println logs v.
func (l promLogger) Println(v ...any) {
	l.m.log.Debug("serving metrics", "err", fmt.Sprint(v...))
}
