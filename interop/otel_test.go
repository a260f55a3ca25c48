package interop_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
)

func tracedApp(t *testing.T, c cell) (*runtime.App, *tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	app, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Serializer: c.serializer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	taskotel.Instrument(app, taskotel.WithTracerProvider(tp), taskotel.WithPropagator(propagation.TraceContext{}))
	return app, exp, tp
}

// TestTrace_PythonProducerParentsGoRun: a Python producer's message
// carries a traceparent header (where opentelemetry-instrumentation-celery
// injects it); the Go worker's run span is its child.
func TestTrace_PythonProducerParentsGoRun(t *testing.T) {
	for _, c := range matrix(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			app, exp, _ := tracedApp(t, c)
			w := app.NewWorker(runtime.WorkerOptions{Queues: []string{c.goQueue}, Concurrency: 2, WithoutEvents: true})
			gotasks.RegisterTasks(w)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() { cancel(); require.NoError(t, <-done) }()

			const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			out := pyClient(t, c, "send_traced", "go.add", "[2, 3]", c.goQueue, fmt.Sprintf("00-%s-%s-01", traceID, spanID))
			require.EqualValues(t, 5, out["result"], "%v", out)
			var run tracetest.SpanStub
			deadline := time.Now().Add(10 * time.Second)
			for run.Name == "" && time.Now().Before(deadline) {
				for _, s := range exp.GetSpans() {
					if s.Name == "run/go.add" {
						run = s
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			require.Equal(t, "run/go.add", run.Name)
			assert.Equal(t, traceID, run.SpanContext.TraceID().String())
			assert.Equal(t, spanID, run.Parent.SpanID().String(), "the Go run is the Python producer's child")
			assert.True(t, run.Parent.IsRemote())
		})
	}
}

// TestTrace_GoProducerReachesPythonRequest: a Go producer's traceparent
// reaches the Python task's request, as the instrumentation reads it.
func TestTrace_GoProducerReachesPythonRequest(t *testing.T) {
	for _, c := range matrix(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			startPyWorker(t, c)
			app, exp, tp := tracedApp(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sctx, span := tp.Tracer("test").Start(ctx, "request")
			res, err := gotasks.PyTraceparent.With(runtime.WithApp(app), runtime.Queue(c.pyQueue)).Delay(sctx)
			span.End()
			require.NoError(t, err)
			got, err := res.Get(ctx)
			require.NoError(t, err)
			var pub tracetest.SpanStub
			for _, s := range exp.GetSpans() {
				if s.Name == "apply_async/py.traceparent" {
					pub = s
				}
			}
			require.Equal(t, "apply_async/py.traceparent", pub.Name)
			assert.Equal(t, fmt.Sprintf("00-%s-%s-01", pub.SpanContext.TraceID(), pub.SpanContext.SpanID()), got.Traceparent,
				"the Python task's request carries the Go producer span's context")
			assert.Equal(t, span.SpanContext().TraceID(), pub.SpanContext.TraceID())
		})
	}
}
