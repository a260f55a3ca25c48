// Package reconnect holds the one backoff and retry loop the transports
// share: the waits between connection attempts (exponential, without
// jitter) and the loop that makes the attempts until one succeeds, an error
// is final, or the context ends.
//
// A transport keeps one [Policy] per kind of retry (dialing a consumer,
// redialing after a loss, publishing, ...). Loops that fit the common shape
// call [Loop.Run]; loops woven into other work (a fetch loop that also waits
// for prefetch slots, a fail-fast window after a failed dial) hold a
// [Backoff] and ask it for the next wait.
package reconnect

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/internal/ctxsleep"
)

// sleep waits for d or until ctx ends and reports whether d passed; tests
// replace it.
var sleep = ctxsleep.Sleep

// Policy bounds the waits between attempts: the first wait is Min, each
// later one twice the one before, never more than Max. Min must be
// positive; a Max below Min means Min.
type Policy struct {
	Min, Max time.Duration
}

// Backoff hands out the waits of its Policy in turn, from Min until the
// next Reset. A Backoff with its Policy set is ready to use; it is not safe
// for concurrent use.
type Backoff struct {
	Policy
	next time.Duration // what Next returns; 0 until the first Next after a Reset
}

// Next returns the wait before the next attempt and doubles the one after
// it, up to Max.
func (b *Backoff) Next() time.Duration {
	d := b.peek()
	b.next = min(2*d, max(b.Max, b.Min))
	return d
}

// peek returns what Next will return.
func (b *Backoff) peek() time.Duration {
	if b.next == 0 {
		return b.Min
	}
	return b.next
}

// Reset makes the next wait Min again; call it after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Retrying reports whether Next was called since the last Reset: the
// caller is in a run of failures (so it can log the first failure and the
// recovery only).
func (b *Backoff) Retrying() bool { return b.next != 0 }

// Wait sleeps for Next or until ctx ends; it reports whether the wait
// passed. Each Wait counts as one retry in Retries.
func (b *Backoff) Wait(ctx context.Context) bool {
	retries.Add(1)
	return sleep(ctx, b.Next())
}

// retries counts the waits of every Backoff and Loop in the process.
var retries atomic.Int64

// Retries returns how many times the process's consumers, fan-outs and
// publishers waited to reconnect or retry since it started (workers
// export it as taskgen_worker_broker_reconnects_total).
func Retries() int64 { return retries.Load() }

// Loop is a retry loop: attempts with a backoff of Policy between them.
type Loop struct {
	Policy
	// WaitFirst makes the first attempt wait too, as a reconnect right
	// after a connection loss does.
	WaitFirst bool
	// Final, when set, reports errors not worth retrying (a refused login,
	// a closed broker); Run returns them at once.
	Final func(error) bool
	// Failed, when set, is called after each failed attempt that will be
	// retried, with its error and the wait before the next attempt.
	Failed func(err error, wait time.Duration)
}

// Run calls attempt until it returns nil, and returns nil then. It returns
// attempt's error at once when the error is final or ctx has ended, and
// the last error (ctx's when there was none) when ctx ends during a wait.
func (l Loop) Run(ctx context.Context, attempt func() error) error {
	b := Backoff{Policy: l.Policy}
	if l.WaitFirst && !b.Wait(ctx) {
		return ctx.Err()
	}
	for {
		err := attempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || (l.Final != nil && l.Final(err)) {
			return err
		}
		if l.Failed != nil {
			l.Failed(err, b.peek())
		}
		if !b.Wait(ctx) {
			return err
		}
	}
}
