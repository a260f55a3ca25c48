package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// TaskInfo describes the running task, the Go counterpart of Celery's
// bound task request (bind=True, self.request).
type TaskInfo struct {
	ID       string
	Name     string
	Retries  int
	ETA      time.Time // zero when the task had none
	Expires  time.Time
	RootID   string
	ParentID string
	GroupID  string
	Queue    string
	// Hostname is the node name of the worker running the task.
	Hostname string
	// Headers are the message's custom headers (runtime.Headers on the sender).
	Headers map[string]any
	// Redelivered is set when the broker delivered the message before.
	Redelivered bool
	// Received is when this worker took the message from the transport to
	// dispatch it (just before its task-received event): after any wait in
	// the prefetch buffer, before any hold for an ETA, countdown or rate
	// limit. The task's start minus Received is the time this worker
	// took to dispatch it; Received minus the enqueue time is the time in
	// the broker and the prefetch buffer.
	Received time.Time
	// Started is when this worker started the run, just before the task's
	// goroutine and its time limits: a hard time limit ends the run at
	// Started plus the limit, whenever the goroutine got to run.
	Started time.Time

	def     *codegen.TaskDef
	args    wire.Args
	runCtx  context.Context // the context the task's function ran with (middleware values)
	mu      sync.Mutex      // guards settled: a task past its hard time limit may still be registering
	settled []func(State, error)
	// Progress and UpdateState (progress.go): the app storing them, and
	// finished (set under stateMu when the function returned).
	app      *App
	stateMu  sync.Mutex
	finished bool
}

// OnSettled registers f to be called once the worker has decided what
// became of the task, after its result, retry or failure was recorded:
// with StateSuccess, StateRetry (the retry was published), StateFailure
// (failed for good, err is why) or StateRevoked; with "" when the worker
// stopped before the task finished and returned it to the queue.
// Middleware uses it to see the outcome a Handler's error leads to (a
// tracing span that ends with the task's final state). Call it from the
// task's goroutine (inside the middleware chain or the task).
func (t *TaskInfo) OnSettled(f func(state State, err error)) {
	t.mu.Lock()
	t.settled = append(t.settled, f)
	t.mu.Unlock()
}

func (t *TaskInfo) settle(state State, err error) {
	t.mu.Lock()
	fs := t.settled
	t.settled = nil
	t.mu.Unlock()
	for _, f := range fs {
		f(state, err)
	}
}

type taskInfoKey struct{}

// TaskFromContext returns the running task's information; ok is false outside
// a task.
func TaskFromContext(ctx context.Context) (info *TaskInfo, ok bool) {
	info, ok = ctx.Value(taskInfoKey{}).(*TaskInfo)
	return info, ok
}

// withTaskInfo returns ctx carrying info (used by the worker and the test kit).
func withTaskInfo(ctx context.Context, info *TaskInfo) context.Context {
	return context.WithValue(ctx, taskInfoKey{}, info)
}

// RetryError asks the worker to retry the task; return it from a task with
// Retry, the counterpart of Celery's self.retry(exc=err).
type RetryError struct {
	Err        error
	Countdown  time.Duration // 0: the task's policy decides
	HasCount   bool
	MaxRetries *int // overrides the task's max_retries for this retry
}

// Error says that a retry was requested, and why.
func (e *RetryError) Error() string {
	if e.Err == nil {
		return "retry requested"
	}
	return "retry: " + e.Err.Error()
}

// Unwrap returns the error that caused the retry, so errors.Is and errors.As see it.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryOption configures a Retry.
type RetryOption func(*RetryError)

// RetryCountdown retries after d instead of the policy's delay.
func RetryCountdown(d time.Duration) RetryOption {
	return func(r *RetryError) { r.Countdown = d; r.HasCount = true }
}

// RetryMaxRetries overrides the task's max_retries for this retry.
func RetryMaxRetries(n int) RetryOption {
	return func(r *RetryError) { r.MaxRetries = &n }
}

// Retry returns an error that makes the worker retry the running task with its
// retry policy (countdown, backoff, max_retries), like Celery's
// self.retry(exc=err): return runtime.Retry(err) from the task. When the
// retries are exhausted the task fails with err.
func Retry(err error, opts ...RetryOption) error {
	r := &RetryError{Err: err}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Errors a task can fail with, Celery's exception classes.
var (
	// ErrTimeLimitExceeded is the cause of a task ctx cancelled at its hard
	// time limit; the task fails with it even if it ignores ctx.
	ErrTimeLimitExceeded = errors.New("TimeLimitExceeded")
	// ErrSoftTimeLimitExceeded is the cause of a task ctx cancelled at its
	// soft time limit.
	ErrSoftTimeLimitExceeded = errors.New("SoftTimeLimitExceeded")
)

// panicError is the failure of a task that panicked.
type panicError struct {
	Value any
	Stack string
}

func (e *panicError) Error() string { return fmt.Sprintf("task panicked: %v", e.Value) }

// CeleryException names the Python class of a panic.
func (e *panicError) CeleryException() (string, string) { return "builtins", "RuntimeError" }

type celeryErr struct {
	err         error
	module, cls string
}

func (e *celeryErr) Error() string                     { return e.err.Error() }
func (e *celeryErr) Unwrap() error                     { return e.err }
func (e *celeryErr) CeleryException() (string, string) { return e.module, e.cls }

func celeryError(module, cls string, err error) error { return &celeryErr{err, module, cls} }
