// Package prom exposes one worker process's own metrics to Prometheus,
// with github.com/prometheus/client_golang. A program that does not import
// it links nothing of client_golang (the runtime core does not).
//
//	app, _ := runtime.New(cfg)
//	m := prom.Instrument(app)              // registers on prometheus.DefaultRegisterer
//	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"emails"}})
//	signup.RegisterTasks(w)
//	m.Watch(w)                             // its gauges, read at scrape time
//	go prom.ListenAndServe(ctx, ":9808", nil) // GET /metrics
//	w.Run(ctx)
//
// Instrument counts the task lifecycle of every worker the app makes after
// it (an [runtime.Observer] added with [runtime.App.UseObserver]) and times
// each run (a [runtime.Middleware]); [Metrics.Watch] adds a worker's
// gauges, which the collector reads from [runtime.Worker.Stats] when
// Prometheus scrapes, never by polling. taskmon (cmd/taskmon) shows the
// whole cluster from Celery's events; these metrics are one process's view,
// including what events do not say: what it holds in memory, its
// reconnects, its time-limit kills.
//
// # Metrics
//
//	taskgen_worker_tasks_total{task,state}          counter: the lifecycle by task name;
//	    state: received, started, succeeded, failed, retried, revoked
//	    (expired, revoked or terminated), dead_lettered (set aside: bad
//	    arguments, unregistered, too large)
//	taskgen_worker_task_runtime_seconds{task}       histogram: each run, from the worker's start of
//	    the run (TaskInfo.Started) until the worker settled it (success, retry, failure,
//	    hard time limit); exemplars carry the trace of a message with a
//	    traceparent header (OpenMetrics scrapes)
//	taskgen_worker_tasks_active{worker}             gauge: tasks running now (in flight)
//	taskgen_worker_tasks_held{worker}               gauge: received and waiting in memory for
//	    their ETA, countdown or rate-limit slot (prefetched, not running)
//	taskgen_worker_concurrency{worker}              gauge: WorkerOptions.Concurrency
//	taskgen_worker_prefetch_limit{worker}           gauge: WorkerOptions.Prefetch
//	taskgen_worker_time_limits_total{worker,limit}  counter: runs stopped at their hard time
//	    limit (limit="hard") or cancelled at their soft one (limit="soft")
//	taskgen_worker_broker_reconnects_total          counter: the process's waits before
//	    reconnecting to, or retrying against, the broker or result backend
//	    (consumers, publishers, events, control, results)
//
// The worker label is the worker's node name (WorkerOptions.Hostname). At
// most [MaxTaskNames] task names get series of their own; messages naming
// others (unregistered tasks from a misconfigured producer) count as
// task="other".
package prom

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// Namespace and Subsystem prefix every metric name: taskgen_worker_….
const (
	Namespace = "taskgen"
	Subsystem = "worker"
)

// MaxTaskNames bounds the task names with series of their own; later names
// share task="other".
const MaxTaskNames = 1000

// DefaultBuckets are the runtime histogram's upper bounds, in seconds:
// taskmon's taskgen_task_runtime_seconds buckets and a few longer ones.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Task states of taskgen_worker_tasks_total.
const (
	StateReceived     = "received"
	StateStarted      = "started"
	StateSucceeded    = "succeeded"
	StateFailed       = "failed"
	StateRetried      = "retried"
	StateRevoked      = "revoked"
	StateDeadLettered = "dead_lettered"
)

// Option configures Instrument.
type Option func(*config)

type config struct {
	reg         prometheus.Registerer
	buckets     []float64
	constLabels prometheus.Labels
}

// WithRegisterer makes Instrument register the metrics on r instead of
// prometheus.DefaultRegisterer (a *prometheus.Registry of the program's,
// say, served with Handler(reg)). With a nil r, Instrument registers
// nothing: register the Metrics it returns yourself (they are a
// prometheus.Collector).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *config) { c.reg = r } }

// WithBuckets sets the runtime histogram's upper bounds, in seconds
// (default DefaultBuckets).
func WithBuckets(b []float64) Option { return func(c *config) { c.buckets = b } }

// WithConstLabels adds labels with fixed values to every metric (a
// deployment or region name, say).
func WithConstLabels(l prometheus.Labels) Option { return func(c *config) { c.constLabels = l } }

// Metrics are one process's worker metrics, a [prometheus.Collector];
// Instrument makes and registers them. They are safe for concurrent use.
type Metrics struct {
	tasks   *prometheus.CounterVec
	runtime *prometheus.HistogramVec

	names  sync.Map // task name -> *taskSeries
	nNames atomic.Int64

	mu      sync.Mutex
	workers []*runtime.Worker

	active, held, concurrency, prefetch, timeLimits, reconnects *prometheus.Desc
}

// taskSeries are the series of one task name, looked up once (the
// counters at once, at 0, so that rate() sees their first increase; the
// histogram at the first run).
type taskSeries struct {
	label                                                                string
	received, started, succeeded, failed, retried, revoked, deadLettered prometheus.Counter
	runtime                                                              atomic.Pointer[prometheus.Observer]
}

// runtimeOf returns s's runtime histogram.
func (m *Metrics) runtimeOf(s *taskSeries) prometheus.Observer {
	if o := s.runtime.Load(); o != nil {
		return *o
	}
	o := m.runtime.WithLabelValues(s.label)
	s.runtime.Store(&o)
	return o
}

var _ prometheus.Collector = (*Metrics)(nil)

// Instrument counts and times the tasks of every worker app makes from now
// on, and registers the metrics (on prometheus.DefaultRegisterer unless
// WithRegisterer says otherwise). Call Watch with each worker to add its
// gauges. Like promauto, it panics when the registerer refuses the
// metrics (instrumenting twice on one registry).
func Instrument(app *runtime.App, opts ...Option) *Metrics {
	c := config{reg: prometheus.DefaultRegisterer, buckets: DefaultBuckets}
	for _, o := range opts {
		o(&c)
	}
	m := newMetrics(c)
	if c.reg != nil {
		c.reg.MustRegister(m)
	}
	app.UseObserver(observer{m})
	app.UseMiddleware(m.middleware)
	return m
}

func newMetrics(c config) *Metrics {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, Subsystem, name), help, labels, c.constLabels)
	}
	return &Metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: Subsystem, Name: "tasks_total",
			Help:        "Tasks of this process's workers by task name and lifecycle state: received, started, succeeded, failed, retried, revoked, dead_lettered.",
			ConstLabels: c.constLabels}, []string{"task", "state"}),
		runtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: Subsystem, Name: "task_runtime_seconds",
			Help:    "Run time of tasks, from the start of the task's function until the worker settled it (any outcome), by task name.",
			Buckets: c.buckets, ConstLabels: c.constLabels}, []string{"task"}),
		active:      desc("tasks_active", "Tasks the worker is running now.", "worker"),
		held:        desc("tasks_held", "Tasks received and waiting in the worker's memory for their ETA, countdown or rate-limit slot.", "worker"),
		concurrency: desc("concurrency", "Tasks the worker runs at once at most (WorkerOptions.Concurrency).", "worker"),
		prefetch:    desc("prefetch_limit", "Unacknowledged messages the worker holds at most (WorkerOptions.Prefetch).", "worker"),
		timeLimits:  desc("time_limits_total", "Runs stopped at their hard time limit (limit=hard) or cancelled at their soft time limit (limit=soft).", "worker", "limit"),
		reconnects:  desc("broker_reconnects_total", "Waits of this process before reconnecting to, or retrying against, the broker or result backend."),
	}
}

// Watch adds w's gauges (tasks active and held, concurrency, prefetch
// limit) and time-limit counters, read from w.Stats() at each scrape.
// Watching a worker twice has no effect.
func (m *Metrics) Watch(w *runtime.Worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.workers {
		if x == w {
			return
		}
	}
	m.workers = append(m.workers, w)
}

// Describe sends the descriptors of every metric to ch.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.tasks.Describe(ch)
	m.runtime.Describe(ch)
	for _, d := range []*prometheus.Desc{m.active, m.held, m.concurrency, m.prefetch, m.timeLimits, m.reconnects} {
		ch <- d
	}
}

// Collect sends the current metrics to ch: the task counters and runtime
// histogram, and the watched workers' figures read now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.tasks.Collect(ch)
	m.runtime.Collect(ch)
	m.mu.Lock()
	workers := append([]*runtime.Worker(nil), m.workers...)
	m.mu.Unlock()
	for _, w := range workers {
		s, o, host := w.Stats(), w.Options(), w.Hostname()
		ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, float64(s.Active), host)
		ch <- prometheus.MustNewConstMetric(m.held, prometheus.GaugeValue, float64(s.Held), host)
		ch <- prometheus.MustNewConstMetric(m.concurrency, prometheus.GaugeValue, float64(o.Concurrency), host)
		ch <- prometheus.MustNewConstMetric(m.prefetch, prometheus.GaugeValue, float64(o.Prefetch), host)
		ch <- prometheus.MustNewConstMetric(m.timeLimits, prometheus.CounterValue, float64(s.TimeLimited), host, "hard")
		ch <- prometheus.MustNewConstMetric(m.timeLimits, prometheus.CounterValue, float64(s.SoftTimeLimited), host, "soft")
	}
	ch <- prometheus.MustNewConstMetric(m.reconnects, prometheus.CounterValue, float64(reconnect.Retries()))
}

// series returns the series of task name, made on first use.
func (m *Metrics) series(name string) *taskSeries {
	if s, ok := m.names.Load(name); ok {
		return s.(*taskSeries)
	}
	label := name
	if m.nNames.Load() >= MaxTaskNames {
		label = "other"
		if s, ok := m.names.Load(label); ok {
			return s.(*taskSeries)
		}
	}
	c := func(state string) prometheus.Counter { return m.tasks.WithLabelValues(label, state) }
	s := &taskSeries{label: label, received: c(StateReceived), started: c(StateStarted), succeeded: c(StateSucceeded), failed: c(StateFailed),
		retried: c(StateRetried), revoked: c(StateRevoked), deadLettered: c(StateDeadLettered)}
	if actual, loaded := m.names.LoadOrStore(label, s); loaded {
		return actual.(*taskSeries)
	}
	m.nNames.Add(1)
	return s
}

// middleware times each run until the worker settled it.
func (m *Metrics) middleware(next runtime.Handler) runtime.Handler {
	return func(ctx context.Context, t *runtime.TaskInfo) (any, error) {
		// From the worker's start of the run, which its time limits count
		// from (the handler's goroutine may start later on a busy machine).
		start := t.Started
		if start.IsZero() { // a TaskInfo not made by a worker (tests)
			start = time.Now()
		}
		h := m.runtimeOf(m.series(t.Name))
		t.OnSettled(func(state runtime.State, _ error) {
			if state == "" { // returned to the queue at shutdown: not a run
				return
			}
			d := time.Since(start).Seconds()
			if ex, ok := h.(prometheus.ExemplarObserver); ok {
				if tp, _ := t.Headers["traceparent"].(string); tp != "" {
					if trace, span := parseTraceparent(tp); trace != "" {
						ex.ObserveWithExemplar(d, prometheus.Labels{"trace_id": trace, "span_id": span})
						return
					}
				}
			}
			h.Observe(d)
		})
		return next(ctx, t)
	}
}

// observer counts the task lifecycle; a type of its own, so that Metrics'
// method set stays the collector's.
type observer struct{ m *Metrics }

func (o observer) TaskReceived(msg *driver.Message) { o.m.series(msg.Headers.Task).received.Inc() }
func (o observer) TaskStarted(msg *driver.Message)  { o.m.series(msg.Headers.Task).started.Inc() }
func (o observer) TaskSucceeded(msg *driver.Message, _ any, _ time.Duration) {
	o.m.series(msg.Headers.Task).succeeded.Inc()
}
func (o observer) TaskFailed(msg *driver.Message, _ *driver.ExceptionInfo, _ string) {
	o.m.series(msg.Headers.Task).failed.Inc()
}
func (o observer) TaskRetried(msg *driver.Message, _ *driver.ExceptionInfo, _ string) {
	o.m.series(msg.Headers.Task).retried.Inc()
}
func (o observer) TaskRejected(msg *driver.Message, _ string) {
	o.m.series(msg.Headers.Task).deadLettered.Inc()
}
func (o observer) TaskRevoked(msg *driver.Message, _, _ bool) {
	o.m.series(msg.Headers.Task).revoked.Inc()
}

// parseTraceparent returns the trace and parent ids of a W3C traceparent
// header (version-traceid-parentid-flags), "" when it is not one.
func parseTraceparent(v string) (trace, span string) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || v[:2] == "ff" {
		return "", ""
	}
	trace, span = v[3:35], v[36:52]
	if !hexID(trace) || !hexID(span) {
		return "", ""
	}
	return trace, span
}

// hexID reports whether v is lower-case hex digits, not all zero.
func hexID(v string) bool {
	zero := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
		zero = zero && c == '0'
	}
	return !zero
}

// Handler serves g's metrics (prometheus.DefaultGatherer when g is nil) in
// Prometheus' text format, or OpenMetrics, with exemplars, when the
// scraper asks for it.
func Handler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Serve answers GET /metrics on ln with Handler(g) until ctx ends, then
// shuts the server down and returns nil; it returns the server's error if
// it fails before.
func Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// ListenAndServe listens on addr (":9808", "127.0.0.1:9808") and serves
// Handler(g) at /metrics until ctx ends, as Serve does.
func ListenAndServe(ctx context.Context, addr string, g prometheus.Gatherer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, g)
}
