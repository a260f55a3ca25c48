package runtime

import (
	"context"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Handler runs one task: the worker's innermost Handler calls the task's
// function with its decoded arguments. task describes the call (as
// TaskFromContext(ctx) does). A Handler returns the task's result or error;
// what the worker makes of an error (retry or failure) is decided after
// the chain returns, by the task's retry policy.
type Handler func(ctx context.Context, task *TaskInfo) (result any, err error)

// Middleware wraps a Handler, as net/http's and asynq's middleware do:
// it may run code before and after next, change ctx (tracing spans,
// loggers), or return without calling next. WorkerOptions.Middleware
// lists them outermost first. The runtime's own work (time limits, rate
// limits, events, result storage) stays outside the chain; a panic in a
// middleware fails the task like a panic in the task.
//
// A context a middleware passes to next also reaches what the task sends
// once it returns: its retry, and the next steps of its workflow (chain,
// callbacks, chord body) are published with it, so a span started there
// is their parent.
type Middleware func(next Handler) Handler

// Publisher sends one task message to queue. Config.PublishMiddleware
// wraps the app's Publisher, which every Delay, workflow step and retry
// goes through.
type Publisher func(ctx context.Context, queue string, m *driver.Message) error

// PublishMiddleware wraps a Publisher: it may read or change the message
// (add headers such as a traceparent), run code around next, or refuse
// the publish by returning an error (the Delay returns it).
type PublishMiddleware func(next Publisher) Publisher

// Hooks are callbacks at the points of a task's life that Celery's
// signals mark; set Config.Hooks. Each nil field is skipped. They run on
// the goroutine of the publish or of the task, so they should be quick.
//
//	Celery signal          taskgen hook
//	before_task_publish    BeforePublish
//	after_task_publish     AfterPublish (also told the publish's error)
//	task_prerun            Prerun
//	task_postrun           Postrun (result or error, before retry/failure is decided)
//	task_success           Postrun with a nil error
//	task_retry             Retry (the retry was published)
//	task_failure           Failure (failed for good: no retry left or none asked)
type Hooks struct {
	BeforePublish func(ctx context.Context, queue string, m *driver.Message)
	AfterPublish  func(ctx context.Context, queue string, m *driver.Message, err error)
	Prerun        func(ctx context.Context, task *TaskInfo)
	Postrun       func(ctx context.Context, task *TaskInfo, result any, err error)
	Retry         func(ctx context.Context, task *TaskInfo, err error, countdown time.Duration)
	Failure       func(ctx context.Context, task *TaskInfo, err error)
}

// middleware is the task Middleware of h's Prerun and Postrun (nil when
// both are nil).
func (h *Hooks) middleware() Middleware {
	if h == nil || (h.Prerun == nil && h.Postrun == nil) {
		return nil
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, t *TaskInfo) (any, error) {
			if h.Prerun != nil {
				h.Prerun(ctx, t)
			}
			v, err := next(ctx, t)
			if h.Postrun != nil {
				h.Postrun(ctx, t, v, err)
			}
			return v, err
		}
	}
}

// publishMiddleware is the PublishMiddleware of h's BeforePublish and
// AfterPublish (nil when both are nil).
func (h *Hooks) publishMiddleware() PublishMiddleware {
	if h == nil || (h.BeforePublish == nil && h.AfterPublish == nil) {
		return nil
	}
	return func(next Publisher) Publisher {
		return func(ctx context.Context, queue string, m *driver.Message) error {
			if h.BeforePublish != nil {
				h.BeforePublish(ctx, queue, m)
			}
			err := next(ctx, queue, m)
			if h.AfterPublish != nil {
				h.AfterPublish(ctx, queue, m, err)
			}
			return err
		}
	}
}

// runTask is the innermost Handler: the task's function. It records the
// context it was given, which carries what the middleware added, for
// what the task's outcome publishes.
func runTask(ctx context.Context, t *TaskInfo) (any, error) {
	t.runCtx = ctx
	return t.def.Run(ctx, t.args)
}

// chain returns base wrapped by mws, the first outermost, skipping nil
// entries, and whether any wrapped it.
func chain[H any, M ~func(H) H](base H, mws ...M) (H, bool) {
	h, wrapped := base, false
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			h, wrapped = mws[i](h), true
		}
	}
	return h, wrapped
}

// valuesCtx is Context (its deadline and cancellation) with the values of
// values: a task's settlement runs under the worker's context but sees
// what the middleware chain put in the task's.
type valuesCtx struct {
	context.Context
	values context.Context
}

func (c valuesCtx) Value(key any) any { return c.values.Value(key) }

// deferKey marks a publish, in its ctx, as one to park in the broker
// until its ETA (a retry with a long countdown).
type deferKey struct{}
