package otel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/canvastasks"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
)

func brokers(t *testing.T) []struct{ name, broker, backend string } {
	redisURL := testenv.RedisURL(t)
	return []struct{ name, broker, backend string }{
		{"memory", "memory://otel-" + driver.NewID(), "memory://otel-" + driver.NewID()},
		{"redis", testenv.RedisDB(redisURL, 11), testenv.RedisDB(redisURL, 12)},
		{"rabbitmq", testenv.AMQPURL(t), testenv.RedisDB(redisURL, 13)},
	}
}

// traced returns an instrumented app with a worker of the example and
// canvas tasks on queue, and the exporter of its spans.
func traced(t *testing.T, broker, backend, queue string) (*runtime.App, *tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	app, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, DefaultQueue: queue,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	taskotel.Instrument(app, taskotel.WithTracerProvider(tp), taskotel.WithPropagator(propagation.TraceContext{}))
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 2, WithoutEvents: true, ShutdownTimeout: 2 * time.Second})
	exampletasks.RegisterTasks(w)
	canvastasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return app, exp, tp.Tracer("test")
}

func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// waitSpans waits until the exporter holds n spans.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if spans := exp.GetSpans(); len(spans) >= n {
			return spans
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("want %d spans, have %d: %v", n, len(exp.GetSpans()), names(exp.GetSpans()))
	return nil
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestTrace_handlerDelayRunRetrySuccess: an HTTP handler's span is the
// root; Delay's PRODUCER span its child; the worker's CONSUMER span the
// producer's child; the retry it publishes a child of that run, and the
// retry's run a child of the retry's publish. On memory, Redis and RabbitMQ.
func TestTrace_handlerDelayRunRetrySuccess(t *testing.T) {
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			queue := "otel-" + driver.NewID()[:8]
			app, exp, tracer := traced(t, b.broker, b.backend, queue)
			var id string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx, span := tracer.Start(r.Context(), "GET /poll", trace.WithSpanKind(trace.SpanKindServer))
				defer span.End()
				res, err := exampletasks.Poll.With(runtime.WithApp(app)).Delay(ctx, 1) // one retry, then success
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				id = res.ID()
			}))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, 200, resp.StatusCode)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n, err := runtime.NewAsyncResult[int](app, id).Get(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n)

			spans := waitSpans(t, exp, 5)
			byName := map[string][]tracetest.SpanStub{}
			for _, s := range spans {
				byName[s.Name] = append(byName[s.Name], s)
			}
			require.Len(t, byName["GET /poll"], 1, "%v", names(spans))
			require.Len(t, byName["apply_async/jobs.poll"], 2, "%v", names(spans))
			require.Len(t, byName["run/jobs.poll"], 2, "%v", names(spans))
			root := byName["GET /poll"][0]
			pub1, pub2 := byName["apply_async/jobs.poll"][0], byName["apply_async/jobs.poll"][1]
			if attr(pub1, taskotel.AttrRetries) == "1" {
				pub1, pub2 = pub2, pub1
			}
			run1, run2 := byName["run/jobs.poll"][0], byName["run/jobs.poll"][1]
			if attr(run1, taskotel.AttrRetries) == "1" {
				run1, run2 = run2, run1
			}
			for _, s := range spans {
				assert.Equal(t, root.SpanContext.TraceID(), s.SpanContext.TraceID(), "%s is in another trace", s.Name)
			}
			assert.Equal(t, root.SpanContext.SpanID(), pub1.Parent.SpanID(), "Delay's span is the handler's child")
			assert.Equal(t, pub1.SpanContext.SpanID(), run1.Parent.SpanID(), "the run is the publish's child")
			assert.Equal(t, run1.SpanContext.SpanID(), pub2.Parent.SpanID(), "the retry is published under the run that asked for it")
			assert.Equal(t, pub2.SpanContext.SpanID(), run2.Parent.SpanID(), "the retry's run is its publish's child")
			assert.Equal(t, trace.SpanKindProducer, pub1.SpanKind)
			assert.Equal(t, trace.SpanKindConsumer, run1.SpanKind)
			assert.Equal(t, "RETRY", attr(run1, taskotel.AttrState))
			assert.Equal(t, "SUCCESS", attr(run2, taskotel.AttrState))
			assert.Equal(t, "jobs.poll", attr(run2, taskotel.AttrTaskName))
			assert.Equal(t, id, attr(run2, "messaging.message.id"))
			assert.Equal(t, queue, attr(pub1, "messaging.destination.name"))
			want := map[string]string{"memory": "memory", "redis": "redis", "rabbitmq": "rabbitmq"}[b.name]
			assert.Equal(t, want, attr(run1, "messaging.system"))
		})
	}
}

// TestTrace_chainStepsAreChildrenOfTheStepBefore: a chain's second step is
// published under the first step's run.
func TestTrace_chainStepsAreChildrenOfTheStepBefore(t *testing.T) {
	queue := "otel-" + driver.NewID()[:8]
	app, exp, tracer := traced(t, "memory://otel-"+driver.NewID(), "memory://otel-"+driver.NewID(), queue)
	ctx, span := tracer.Start(context.Background(), "request")
	res, err := runtime.Chain(canvastasks.Add.Sig(1, 2), canvastasks.Mul.Partial(10)).With(runtime.WithApp(app), runtime.Queue(queue)).Delay(ctx)
	span.End()
	require.NoError(t, err)
	gctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := res.Get(gctx)
	require.NoError(t, err)
	require.Equal(t, int64(30), v)
	spans := waitSpans(t, exp, 5)
	by := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		by[s.Name] = s
	}
	assert.Equal(t, by["request"].SpanContext.SpanID(), by["apply_async/tasks.add"].Parent.SpanID())
	assert.Equal(t, by["apply_async/tasks.add"].SpanContext.SpanID(), by["run/tasks.add"].Parent.SpanID())
	assert.Equal(t, by["run/tasks.add"].SpanContext.SpanID(), by["apply_async/tasks.mul"].Parent.SpanID(), "step two is published under step one's run")
	assert.Equal(t, by["apply_async/tasks.mul"].SpanContext.SpanID(), by["run/tasks.mul"].Parent.SpanID())
}

func TestNewLogHandler_addsTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(taskotel.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	log.InfoContext(ctx, "inside a task")
	log.Info("outside")
	span.End()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var in, out map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &in))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &out))
	assert.Equal(t, span.SpanContext().TraceID().String(), in["trace_id"])
	assert.Equal(t, span.SpanContext().SpanID().String(), in["span_id"])
	assert.Equal(t, "test", in["component"])
	assert.NotContains(t, out, "trace_id")
}
