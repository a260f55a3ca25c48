// Package tracing sets up OpenTelemetry for the example's programs: when
// OTEL_EXPORTER_OTLP_ENDPOINT (the standard variable) is set, spans go to
// that OTLP/HTTP endpoint (OTEL_EXPORTER_OTLP_HEADERS and the other
// standard variables apply too), with service.name set to the program's
// name unless OTEL_SERVICE_NAME says otherwise.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskgen/taskgen/runtime"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
)

// Enabled reports whether OTEL_EXPORTER_OTLP_ENDPOINT is set.
func Enabled() bool { return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" }

// Setup installs the global TracerProvider (OTLP/HTTP) and the W3C
// propagator and instruments app, when Enabled; it returns the function
// that flushes and stops the exporter (a no-op otherwise).
func Setup(ctx context.Context, service string, app *runtime.App) (shutdown func(context.Context) error, err error) {
	if !Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	if v := os.Getenv("OTEL_SERVICE_NAME"); v != "" {
		service = v
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	taskotel.Instrument(app)
	return tp.Shutdown, nil
}

// Handler wraps h in a server span per request ("GET /sign-up") when
// tracing is on, so a Delay in the handler is its child.
func Handler(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "http", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.URL.Path
	}))
}
