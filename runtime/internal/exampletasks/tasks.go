// Package exampletasks holds the tasks used by the runtime's runnable
// examples, one per //task: option.
package exampletasks

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

// resize pretends to resize an image.
//
//task:name images.resize
//task:queue images
func resize(ctx context.Context, url string, width int) (string, error) {
	info, _ := runtime.TaskFromContext(ctx)
	return fmt.Sprintf("%s resized to %dpx on queue %s", url, width, info.Queue), nil
}

// TemporaryError is a failure worth retrying.
type TemporaryError struct{ Reason string }

func (e *TemporaryError) Error() string { return "temporary: " + e.Reason }

// ErrCardBlocked is permanent, even when wrapped in a TemporaryError chain.
var ErrCardBlocked = errors.New("card blocked")

// Attempts counts the runs of charge.
var Attempts atomic.Int32

// charge fails twice with a temporary error, then succeeds.
//
//task:name payments.charge
//task:autoretry_for *TemporaryError
//task:dont_autoretry_for ErrCardBlocked
//task:retry_backoff 10ms
//task:retry_backoff_max 1s
//task:retry_jitter false
//task:max_retries 4
func charge(ctx context.Context, cents int) (string, error) {
	n := Attempts.Add(1)
	if cents < 0 {
		return "", fmt.Errorf("%w: %w", &TemporaryError{"bank timeout"}, ErrCardBlocked)
	}
	if n < 3 {
		return "", &TemporaryError{Reason: fmt.Sprintf("bank busy (attempt %d)", n)}
	}
	return fmt.Sprintf("charged %d cents after %d attempts", cents, n), nil
}

// poll asks for a retry with its own countdown until it sees enough retries.
//
//task:name jobs.poll
//task:max_retries 2
//task:default_retry_delay 10ms
func poll(ctx context.Context, want int) (int, error) {
	info, _ := runtime.TaskFromContext(ctx)
	if info.Retries < want {
		return 0, runtime.Retry(fmt.Errorf("not ready at retry %d", info.Retries))
	}
	return info.Retries, nil
}

// crunch ignores nothing: it stops when its soft limit cancels ctx.
//
//task:name jobs.crunch
//task:soft_time_limit 20ms
//task:time_limit 1s
func crunch(ctx context.Context, n int) (string, error) {
	<-ctx.Done()
	return fmt.Sprintf("stopped early: %v", context.Cause(ctx)), nil
}

// hang ignores its ctx: the hard time limit fails it.
//
//task:name jobs.hang
//task:time_limit 30ms
func hang(ctx context.Context) error {
	time.Sleep(200 * time.Millisecond)
	return nil
}

// ping is rate limited to 20 starts per second per worker.
//
//task:name jobs.ping
//task:rate_limit 20/s
func ping(ctx context.Context, i int) (int, error) { return i, nil }

// report expires an hour after it is sent, unless a call says otherwise.
//
//task:name jobs.report
//task:expires 1h
func report(ctx context.Context, day string) (string, error) { return "report for " + day, nil }

// audit acknowledges its message only after it ran.
//
//task:name jobs.audit
//task:acks_late
func audit(ctx context.Context, entry string) (string, error) { return "audited " + entry, nil }

// notify stores no result.
//
//task:name jobs.notify
//task:ignore_result
func notify(ctx context.Context, user string) error { return nil }

// urgent is sent with priority 9 unless a call says otherwise.
//
//task:name jobs.urgent
//task:priority 9
func urgent(ctx context.Context) (uint8, error) { return 9, nil }
