// Package otel traces taskgen's producers and workers with OpenTelemetry
// (go.opentelemetry.io/otel). A program that does not import it links
// nothing of OpenTelemetry.
//
//	app, _ := runtime.New(cfg)
//	otel.Instrument(app) // the global TracerProvider and propagator
//
// Each publish of a task message (Delay, a workflow step, a retry) gets a
// PRODUCER span "apply_async/<task>", and each run a CONSUMER span
// "run/<task>", the names and attributes of Python's
// opentelemetry-instrumentation-celery, plus the OpenTelemetry messaging
// conventions (messaging.system, messaging.destination.name,
// messaging.operation.type, messaging.message.id). The W3C trace context
// (traceparent, tracestate) travels as protocol-v2 message headers, where
// the Python instrumentation injects it (before_task_publish's headers)
// and reads it (the task's request), so one trace crosses Go and Python
// both ways.
//
// Inside a trace:
//
//	HTTP handler span
//	└── apply_async/signup.send_welcome_email     (PRODUCER, in Delay)
//	    └── run/signup.send_welcome_email         (CONSUMER, the worker)
//	        └── apply_async/… retry               (the retry it published)
//	            └── run/…                         (the retry's run)
//
// The next steps of a workflow (chain, callbacks, chord body) are
// published under the run of the step that caused them, like the retry.
// The run span ends when the worker has settled the task, with the
// attribute celery.state (SUCCESS, RETRY, FAILURE, REVOKED) and an error
// status for FAILURE.
//
// [NewLogHandler] adds trace_id and span_id to slog records logged with a
// task's context.
package otel

import (
	"context"
	"log/slog"
	"maps"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// ScopeName is the instrumentation scope of taskgen's tracer.
const ScopeName = "github.com/taskgen/taskgen/runtime/otel"

// Option configures Instrument.
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider makes Instrument use tp instead of the global
// TracerProvider (otel.GetTracerProvider(), read when a span starts).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithPropagator makes Instrument use p instead of the global propagator
// (otel.GetTextMapPropagator(), read at each publish and run).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

// Attribute keys of taskgen's spans; the celery.* keys are those of
// Python's opentelemetry-instrumentation-celery.
const (
	AttrAction   = attribute.Key("celery.action")    // apply_async or run
	AttrTaskName = attribute.Key("celery.task_name") // the task's Celery name
	AttrRetries  = attribute.Key("celery.retries")   // the message's retries
	AttrState    = attribute.Key("celery.state")     // the run's outcome
	AttrReason   = attribute.Key("celery.retry.reason")
)

type instrumenter struct {
	cfg    config
	system string // messaging.system: redis, rabbitmq or memory
}

func (in *instrumenter) tracer() trace.Tracer {
	tp := in.cfg.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

func (in *instrumenter) propagator() propagation.TextMapPropagator {
	if in.cfg.prop != nil {
		return in.cfg.prop
	}
	return otel.GetTextMapPropagator()
}

// Instrument traces every publish and every task run of app's producers
// and of the workers app makes after the call (call it before NewWorker).
func Instrument(app *runtime.App, opts ...Option) {
	in := &instrumenter{system: messagingSystem(app.Config().Broker)}
	for _, o := range opts {
		o(&in.cfg)
	}
	app.UsePublishMiddleware(in.publish)
	app.UseMiddleware(in.run)
}

func messagingSystem(broker string) string {
	scheme, _, _ := strings.Cut(broker, ":") // a list's URLs share their scheme
	switch scheme {
	case "amqp", "amqps":
		return "rabbitmq"
	case "redis", "rediss", "sentinel":
		return "redis"
	}
	return scheme
}

// publish starts the PRODUCER span of a publish and injects its context
// into the message's headers.
func (in *instrumenter) publish(next runtime.Publisher) runtime.Publisher {
	return func(ctx context.Context, queue string, m *driver.Message) error {
		h := &m.Headers
		ctx, span := in.tracer().Start(ctx, "apply_async/"+h.Task, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", in.system),
				attribute.String("messaging.destination.name", queue),
				attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.operation.name", "apply_async"),
				attribute.String("messaging.message.id", h.ID),
				AttrAction.String("apply_async"),
				AttrTaskName.String(h.Task),
				AttrRetries.Int(h.Retries),
			))
		defer span.End()
		// A copy: a retry's message shares its headers with the message
		// the worker is running.
		extra := make(map[string]any, len(h.Extra)+2)
		maps.Copy(extra, h.Extra)
		in.propagator().Inject(ctx, headerCarrier(extra))
		h.Extra = extra
		err := next(ctx, queue, m)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// run starts the CONSUMER span of a task's run, a child of the context
// its message carries, and ends it when the worker settled the task.
func (in *instrumenter) run(next runtime.Handler) runtime.Handler {
	return func(ctx context.Context, task *runtime.TaskInfo) (any, error) {
		parent := in.propagator().Extract(ctx, headerCarrier(task.Headers))
		ctx, span := in.tracer().Start(parent, "run/"+task.Name, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", in.system),
				attribute.String("messaging.destination.name", task.Queue),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.operation.name", "run"),
				attribute.String("messaging.message.id", task.ID),
				AttrAction.String("run"),
				AttrTaskName.String(task.Name),
				AttrRetries.Int(task.Retries),
			))
		task.OnSettled(func(state runtime.State, err error) {
			span.SetAttributes(AttrState.String(string(state)))
			switch state {
			case runtime.StateFailure:
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			case runtime.StateRetry:
				if err != nil {
					span.SetAttributes(AttrReason.String(err.Error()))
				}
			}
			span.End()
		})
		return next(ctx, task)
	}
}

// headerCarrier is a propagation.TextMapCarrier over protocol-v2 headers.
type headerCarrier map[string]any

func (c headerCarrier) Get(key string) string {
	v, _ := c[key].(string)
	return v
}

func (c headerCarrier) Set(key, value string) { c[key] = value }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// NewLogHandler returns a slog.Handler that adds trace_id and span_id to
// each record logged with a context holding a span (slog.InfoContext(ctx,
// …) inside a task, or a Logger's …Context methods), then passes it to h.
func NewLogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(as)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
