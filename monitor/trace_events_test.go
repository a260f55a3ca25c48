package monitor

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
)

// rawEvents collects the Celery events published on b, decoded.
type rawEvents struct {
	mu  sync.Mutex
	evs []map[string]any
}

func subscribeRaw(t *testing.T, b driver.Broker) *rawEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := b.(driver.EventTransport).SubscribeEvents(ctx)
	require.NoError(t, err)
	r := &rawEvents{}
	go func() {
		for msg := range ch {
			var list []map[string]any
			if len(msg.Body) > 0 && msg.Body[0] == '[' {
				_ = json.Unmarshal(msg.Body, &list)
			} else {
				var one map[string]any
				if json.Unmarshal(msg.Body, &one) == nil {
					list = append(list, one)
				}
			}
			r.mu.Lock()
			r.evs = append(r.evs, list...)
			r.mu.Unlock()
		}
	}()
	return r
}

// of returns the events of task id, by type.
func (r *rawEvents) of(id string) map[string][]map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]map[string]any{}
	for _, e := range r.evs {
		if e["uuid"] == id {
			typ, _ := e["type"].(string)
			out[typ] = append(out[typ], e)
		}
	}
	return out
}

// A Go worker of an app instrumented by runtime/otel sends task events
// carrying the message's traceparent, and taskmon's /metrics shows that
// trace id as the exemplar of the task's runtime and queue wait; an
// untraced task's events carry none.
func TestMetrics_GoWorkerEventsCarryTraceparent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	raw := subscribeRaw(t, e.app.Broker())
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	// An untraced send first, before the app is instrumented.
	plainID := e.send("plain@example.com", 1)
	taskotel.Instrument(e.app, taskotel.WithTracerProvider(tp), taskotel.WithPropagator(propagation.TraceContext{}))
	e.worker("w1@test", time.Second)

	ctx, span := tp.Tracer("test").Start(context.Background(), "handler")
	okRes, err := runtime.NewStub[string](sendDef).With(runtime.WithApp(e.app)).Send(ctx, &emailArgs{email: "a@example.com", n: 1})
	require.NoError(t, err)
	failRes, err := runtime.NewStub[string](sendDef).With(runtime.WithApp(e.app)).Send(ctx, &emailArgs{email: "b@example.com", n: -1})
	require.NoError(t, err)
	retryRes, err := runtime.NewStub[map[string]any](flakyDef).With(runtime.WithApp(e.app)).Send(ctx, &emailArgs{email: "c@example.com", n: 1})
	require.NoError(t, err)
	span.End()
	trace := span.SpanContext().TraceID().String()

	e.waitState(plainID, "SUCCESS")
	e.waitState(okRes.ID(), "SUCCESS")
	e.waitState(failRes.ID(), "FAILURE")
	e.waitState(retryRes.ID(), "SUCCESS")

	for id, types := range map[string][]string{
		okRes.ID():    {"task-received", "task-started", "task-succeeded"},
		failRes.ID():  {"task-received", "task-started", "task-failed"},
		retryRes.ID(): {"task-received", "task-started", "task-retried", "task-succeeded"},
	} {
		var evs map[string][]map[string]any
		require.Eventually(t, func() bool {
			evs = raw.of(id)
			for _, typ := range types {
				if len(evs[typ]) == 0 {
					return false
				}
			}
			return true
		}, 10*time.Second, 5*time.Millisecond, "events of %s", id)
		for _, typ := range types {
			for _, ev := range evs[typ] {
				tp, _ := ev["traceparent"].(string)
				tr, sp := parseTraceparent(tp)
				require.Equal(t, trace, tr, "%s of %s: traceparent %q", typ, id, tp)
				require.NotEmpty(t, sp)
			}
		}
	}
	var plain map[string][]map[string]any
	require.Eventually(t, func() bool { plain = raw.of(plainID); return len(plain["task-succeeded"]) > 0 }, 10*time.Second, 5*time.Millisecond)
	for typ, evs := range plain {
		for _, ev := range evs {
			require.NotContains(t, ev, "traceparent", "%s of an untraced task", typ)
		}
	}

	// taskmon's exemplars carry the trace id.
	fs, _, _ := scrape(t, e.url, openMetricsAccept)
	hasTrace := func(family string) bool {
		m := fs.find(family, "name", sendDef.Name)
		if m == nil {
			return false
		}
		for _, b := range m.Histogram.Bucket {
			if ex := b.Exemplar; ex != nil {
				for _, l := range ex.Label {
					if l.GetName() == "trace_id" && l.GetValue() == trace {
						return true
					}
				}
			}
		}
		return false
	}
	require.True(t, hasTrace("taskgen_task_runtime_seconds"), "runtime exemplars: %v", exemplars(fs.metric(t, "taskgen_task_runtime_seconds", "name", sendDef.Name)))
	require.True(t, hasTrace("taskgen_task_queue_wait_seconds"), "queue wait exemplars: %v", exemplars(fs.metric(t, "taskgen_task_queue_wait_seconds", "name", sendDef.Name)))
}
