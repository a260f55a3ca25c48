package prom_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	"github.com/taskgen/taskgen/runtime/prom"
	_ "github.com/taskgen/taskgen/runtime/redis"
)

const openMetricsAccept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

// setup is an app on a private Redis, instrumented on its own registry,
// with one watched worker of the example tasks and the metrics served over
// HTTP.
type setup struct {
	app   *runtime.App
	redis *testenv.RedisServer
	w     *runtime.Worker
	url   string
}

func newSetup(t *testing.T, o runtime.WorkerOptions, defs ...*codegen.TaskDef) *setup {
	t.Helper()
	srv := testenv.NewRedisServer(t)
	app, err := runtime.New(runtime.Config{Broker: srv.URL(), Backend: testenv.RedisDB(srv.URL(), 1),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Hostname: "prom@test"})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	reg := prometheus.NewRegistry()
	m := prom.Instrument(app, prom.WithRegisterer(reg))
	o.Queues = []string{"celery", "images"}
	o.WithoutEvents = true
	o.ShutdownTimeout = 2 * time.Second
	w := app.NewWorker(o)
	exampletasks.RegisterTasks(w)
	for _, d := range defs {
		w.Register(d)
	}
	m.Watch(w)
	m.Watch(w) // twice: no duplicate series
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- prom.Serve(ctx, ln, reg) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, <-served)
	})
	return &setup{app: app, redis: srv, w: w, url: "http://" + ln.Addr().String() + "/metrics"}
}

type families map[string]*dto.MetricFamily

// scrape GETs the metrics with accept and decodes them in the format of
// the answer.
func scrape(t *testing.T, url, accept string) (families, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
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
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.ResponseFormat(resp.Header))
	fs := families{}
	for {
		f := &dto.MetricFamily{}
		if err := dec.Decode(f); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err, "%s", body)
		}
		require.NotContains(t, fs, f.GetName(), "family %s twice", f.GetName())
		fs[f.GetName()] = f
	}
	return fs, string(body)
}

// get returns the series of family name with exactly labels (pairs).
func (fs families) get(name string, labels ...string) *dto.Metric {
	f := fs[name]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		ok := true
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return m
		}
	}
	return nil
}

func (fs families) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := fs.get(name, labels...)
	require.NotNil(t, m, "no %s%v", name, labels)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is no counter or gauge", name, labels)
	return 0
}

func (fs families) tasks(t *testing.T, task, state string) float64 {
	t.Helper()
	if fs.get("taskgen_worker_tasks_total", "task", task, "state", state) == nil {
		return 0
	}
	return fs.value(t, "taskgen_worker_tasks_total", "task", task, "state", state)
}

// Tasks that succeed, fail, retry, hit their soft and hard time limits,
// expire, and name no registered task, on Redis: the scrape counts each by
// name and state, times the runs, carries a traceparent's trace id as an
// exemplar, reads the worker's figures, and passes promtool.
func TestMetrics_TaskLifecycleOnRedis(t *testing.T) {
	t.Parallel()
	s := newSetup(t, runtime.WorkerOptions{Concurrency: 4, Prefetch: 16})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	with := runtime.WithApp(s.app)
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

	var ok []*runtime.AsyncResult[string]
	for i := range 3 {
		opts := []runtime.Option{with}
		if i == 0 {
			opts = append(opts, runtime.Headers(map[string]any{"traceparent": "00-" + trace + "-" + span + "-01"}))
		}
		r, err := exampletasks.Resize.With(opts...).Delay(ctx, "a.png", 100)
		require.NoError(t, err)
		ok = append(ok, r)
	}
	fail, err := exampletasks.Charge.With(with).Delay(ctx, -1) // ErrCardBlocked: fails at once
	require.NoError(t, err)
	poll, err := exampletasks.Poll.With(with).Delay(ctx, 2) // two retries, then success
	require.NoError(t, err)
	hang, err := exampletasks.Hang.With(with).Delay(ctx) // hard time limit
	require.NoError(t, err)
	crunch, err := exampletasks.Crunch.With(with).Delay(ctx, 1) // soft time limit, then success
	require.NoError(t, err)
	expired, err := exampletasks.Report.With(with, runtime.Expires(time.Now().Add(-time.Minute))).Delay(ctx, "monday")
	require.NoError(t, err)
	unknown := *exampletasks.Report.Def()
	unknown.Name = "jobs.unregistered"
	args := unknown.NewArgs()
	stray, err := runtime.NewStub[string](&unknown).With(with).Send(ctx, args)
	require.NoError(t, err)

	for _, r := range ok {
		_, err := r.Get(ctx)
		require.NoError(t, err)
	}
	_, err = fail.Get(ctx)
	require.Error(t, err)
	n, err := poll.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = hang.Get(ctx)
	require.ErrorContains(t, err, "TimeLimitExceeded")
	_, err = crunch.Get(ctx)
	require.NoError(t, err)
	_, err = expired.Get(ctx)
	require.ErrorContains(t, err, "revoked")
	_, err = stray.Get(ctx)
	require.ErrorContains(t, err, "NotRegistered")

	fs, _ := scrape(t, s.url, openMetricsAccept)
	for _, c := range []struct {
		task, state string
		want        float64
	}{
		{"images.resize", "received", 3}, {"images.resize", "started", 3}, {"images.resize", "succeeded", 3}, {"images.resize", "failed", 0},
		{"payments.charge", "received", 1}, {"payments.charge", "started", 1}, {"payments.charge", "failed", 1}, {"payments.charge", "retried", 0},
		{"jobs.poll", "received", 3}, {"jobs.poll", "started", 3}, {"jobs.poll", "retried", 2}, {"jobs.poll", "succeeded", 1},
		{"jobs.hang", "started", 1}, {"jobs.hang", "failed", 1}, {"jobs.hang", "succeeded", 0},
		{"jobs.crunch", "succeeded", 1},
		{"jobs.report", "received", 1}, {"jobs.report", "revoked", 1}, {"jobs.report", "started", 0},
		{"jobs.unregistered", "received", 1}, {"jobs.unregistered", "dead_lettered", 1}, {"jobs.unregistered", "started", 0},
	} {
		require.Equal(t, c.want, fs.tasks(t, c.task, c.state), "%s %s", c.task, c.state)
	}
	host := "prom@test"
	require.Equal(t, 1.0, fs.value(t, "taskgen_worker_time_limits_total", "worker", host, "limit", "hard"))
	require.Equal(t, 1.0, fs.value(t, "taskgen_worker_time_limits_total", "worker", host, "limit", "soft"))
	require.Equal(t, 0.0, fs.value(t, "taskgen_worker_tasks_active", "worker", host))
	require.Equal(t, 0.0, fs.value(t, "taskgen_worker_tasks_held", "worker", host))
	require.Equal(t, 4.0, fs.value(t, "taskgen_worker_concurrency", "worker", host))
	require.Equal(t, 16.0, fs.value(t, "taskgen_worker_prefetch_limit", "worker", host))
	require.NotNil(t, fs.get("taskgen_worker_broker_reconnects_total"))

	// The runtime histogram: every run, the hard-limited one for at least
	// its limit (30 ms); the traced run's trace as an exemplar.
	h := fs.get("taskgen_worker_task_runtime_seconds", "task", "images.resize").GetHistogram()
	require.Equal(t, uint64(3), h.GetSampleCount())
	// Exemplar labels come from a map: compare them as one.
	exemplars := 0
	exemplar := map[string]string{}
	for _, b := range h.Bucket {
		if e := b.Exemplar; e != nil {
			exemplars++
			for _, l := range e.Label {
				exemplar[l.GetName()] = l.GetValue()
			}
		}
	}
	require.Equal(t, 1, exemplars)
	require.Equal(t, map[string]string{"trace_id": trace, "span_id": span}, exemplar)
	require.Equal(t, uint64(3), fs.get("taskgen_worker_task_runtime_seconds", "task", "jobs.poll").GetHistogram().GetSampleCount())
	hh := fs.get("taskgen_worker_task_runtime_seconds", "task", "jobs.hang").GetHistogram()
	require.Equal(t, uint64(1), hh.GetSampleCount())
	require.GreaterOrEqual(t, hh.GetSampleSum(), 0.030)
	require.Nil(t, fs.get("taskgen_worker_task_runtime_seconds", "task", "jobs.report"), "an expired task never ran")

	// The text format, linted by promtool.
	_, text := scrape(t, s.url, "")
	require.NotContains(t, text, "trace_id", "exemplars only in OpenMetrics")
	promtool := promtoolPath(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "promtool's lint findings")
}

// promtoolPath finds promtool (Debian's prometheus package, which
// scripts/testenv.sh installs): the test skips without it, or fails when
// CI is set.
func promtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not on PATH (scripts/testenv.sh install adds Debian's prometheus package)")
		}
		t.Skip("promtool is not on PATH (apt-get install prometheus)")
	}
	return p
}

// The gauges are read at scrape time: a running task is active, a task
// waiting for its countdown in memory is held; both go back to 0.
func TestMetrics_ActiveAndHeldGauges(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	block := *exampletasks.Report.Def()
	block.Name, block.Expires = "prom.block", 0
	block.Run = func(ctx context.Context, _ codegen.Args) (any, error) {
		started <- struct{}{}
		<-release
		return "done", nil
	}
	s := newSetup(t, runtime.WorkerOptions{Concurrency: 2, DelayHorizon: time.Hour}, &block)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	with := runtime.WithApp(s.app)
	r, err := runtime.NewStub[string](&block).With(with).Send(ctx, block.NewArgs())
	require.NoError(t, err)
	<-started
	later, err := exampletasks.Resize.With(with, runtime.Countdown(time.Hour)).Delay(ctx, "b.png", 1)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.w.Stats().Held == 1 }, 10*time.Second, 5*time.Millisecond)
	fs, _ := scrape(t, s.url, "")
	require.Equal(t, 1.0, fs.value(t, "taskgen_worker_tasks_active", "worker", "prom@test"))
	require.Equal(t, 1.0, fs.value(t, "taskgen_worker_tasks_held", "worker", "prom@test"))
	require.Equal(t, 1.0, fs.tasks(t, "prom.block", "started"))
	require.Equal(t, 1.0, fs.tasks(t, "images.resize", "received"))
	require.Equal(t, 0.0, fs.tasks(t, "images.resize", "started"))
	close(release)
	_, err = r.Get(ctx)
	require.NoError(t, err)
	fs, _ = scrape(t, s.url, "")
	require.Equal(t, 0.0, fs.value(t, "taskgen_worker_tasks_active", "worker", "prom@test"))
	require.Equal(t, 1.0, fs.tasks(t, "prom.block", "succeeded"))
	_ = later
}

// A Redis restart under a running worker makes its consumer wait and
// reconnect: the process's reconnect counter grows, and the worker keeps
// running tasks.
func TestMetrics_BrokerReconnects(t *testing.T) {
	t.Parallel()
	s := newSetup(t, runtime.WorkerOptions{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fs, _ := scrape(t, s.url, "")
	before := fs.value(t, "taskgen_worker_broker_reconnects_total")
	s.redis.Kill()
	// The consumer notices the loss and waits before redialing.
	require.Eventually(t, func() bool {
		fs, _ := scrape(t, s.url, "")
		return fs.value(t, "taskgen_worker_broker_reconnects_total") > before
	}, 20*time.Second, 20*time.Millisecond)
	s.redis.Start()
	r, err := exampletasks.Resize.With(runtime.WithApp(s.app)).Delay(ctx, "c.png", 1)
	require.NoError(t, err)
	_, err = r.Get(ctx)
	require.NoError(t, err)
	fs, _ = scrape(t, s.url, "")
	require.Greater(t, fs.value(t, "taskgen_worker_broker_reconnects_total"), before)
	require.Equal(t, 1.0, fs.tasks(t, "images.resize", "succeeded"))
}
