package codegen

import (
	"math/rand/v2"
	"time"
)

// Countdown returns the delay before retry number retries+1 under p, Celery's
// get_exponential_backoff_interval: with backoff, min(BackoffMax,
// Backoff·2^retries), then with jitter a uniform draw in [0, countdown] from
// rnd; without backoff, DefaultDelay. retries is the number of retries already
// made. rnd may be nil (a global source is used).
func (p *RetryPolicy) Countdown(retries int, rnd *rand.Rand) time.Duration {
	if p.Backoff <= 0 {
		return p.DefaultDelay
	}
	max := p.BackoffMax
	if max <= 0 {
		max = 600 * time.Second
	}
	d := max
	if retries < 62 {
		if f := p.Backoff << retries; f > 0 && f>>retries == p.Backoff && f < max {
			d = f
		}
	}
	if p.Jitter {
		if rnd != nil {
			d = time.Duration(rnd.Int64N(int64(d) + 1))
		} else {
			d = time.Duration(rand.Int64N(int64(d) + 1))
		}
	}
	if d < 0 {
		d = 0
	}
	return d
}

// ShouldAutoretry reports whether err is retried automatically under p.
func (p *RetryPolicy) ShouldAutoretry(err error) bool {
	if p.AutoretryFor == nil || !p.AutoretryFor(err) {
		return false
	}
	return p.DontAutoretryFor == nil || !p.DontAutoretryFor(err)
}

// Exhausted reports whether a task that already made retries retries may not
// retry again (Celery: retries+1 > max_retries). max < 0 means unlimited.
func Exhausted(retries, max int) bool {
	return max >= 0 && retries+1 > max
}
