package codegen

import (
	"context"
	"time"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// TaskDef describes one task: its Celery name, its options and how to run it.
// Generated code builds one per task; users rarely write one by hand.
type TaskDef struct {
	// Name is the Celery task name, e.g. "signup.send_welcome_email".
	Name string
	// Queue is the queue the task is sent to; "" means the app's default queue.
	Queue string
	// Retry is the task's retry policy.
	Retry RetryPolicy
	// TimeLimit is the hard time limit (0 = none): the task's ctx is cancelled
	// and the task fails with TimeLimitExceeded.
	TimeLimit time.Duration
	// SoftTimeLimit cancels the task's ctx with a SoftTimeLimitExceeded cause
	// (0 = none), so the task can clean up before TimeLimit.
	SoftTimeLimit time.Duration
	// RateLimit bounds how often one worker starts this task (zero = no limit).
	RateLimit RateLimit
	// Expires is the default expiry of a call, counted from when it is sent
	// (0 = never). An expired task is revoked, not run.
	Expires time.Duration
	// AcksLate acknowledges the message after the task ran instead of before.
	AcksLate bool
	// IgnoreResult stores no result document.
	IgnoreResult bool
	// Priority is the default message priority when HasPriority is set.
	Priority    uint8
	HasPriority bool
	// Unique, when positive, makes a call fail with runtime.ErrDuplicate
	// while a call with the same arguments is pending or running, for at
	// most this long (//task:unique).
	Unique time.Duration
	// ArgNames are the keyword names of the parameters, which the argument
	// struct's ArgNames method returns.
	ArgNames ArgNames
	// NewArgs returns a fresh argument struct for decoding.
	NewArgs func() wire.Args
	// Run calls the task function with decoded arguments. It is nil for a
	// remote stub (a task implemented in another process, e.g. Python).
	Run func(ctx context.Context, args wire.Args) (any, error)
}

// RateLimit is a rate of N task starts per Per (Celery's "N/s", "N/m", "N/h").
type RateLimit struct {
	N   int
	Per time.Duration
}

// IsZero reports whether r is "no limit".
func (r RateLimit) IsZero() bool { return r.N <= 0 || r.Per <= 0 }

// RetryPolicy is a task's retry configuration, Celery's autoretry options.
type RetryPolicy struct {
	// MaxRetries is how many retries are allowed (Celery default 3); -1 means
	// unlimited.
	MaxRetries int
	// Backoff is the exponential backoff factor (0 = no backoff: retries wait
	// DefaultDelay). Celery's retry_backoff=True is one second.
	Backoff time.Duration
	// BackoffMax caps the backoff (Celery default 600 s).
	BackoffMax time.Duration
	// Jitter draws the countdown uniformly from [0, countdown] (full jitter).
	Jitter bool
	// DefaultDelay is the countdown of a retry without backoff (Celery 180 s).
	DefaultDelay time.Duration
	// AutoretryFor reports whether err should be retried automatically
	// (generated from //task:autoretry_for with errors.As / errors.Is).
	AutoretryFor func(err error) bool
	// DontAutoretryFor excludes errors that AutoretryFor would match.
	DontAutoretryFor func(err error) bool
}

// DefaultRetryPolicy returns Celery's defaults: 3 retries, 180 s delay, backoff
// off, backoff max 600 s, jitter on.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 3, BackoffMax: 600 * time.Second, Jitter: true, DefaultDelay: 180 * time.Second}
}
