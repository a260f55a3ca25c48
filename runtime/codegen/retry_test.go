package codegen

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryPolicy_Countdown(t *testing.T) {
	t.Parallel()
	base := RetryPolicy{Backoff: time.Second, BackoffMax: 600 * time.Second, DefaultDelay: 180 * time.Second}
	cases := []struct {
		name    string
		p       RetryPolicy
		retries int
		want    time.Duration
	}{
		{"no backoff uses default delay", RetryPolicy{DefaultDelay: 180 * time.Second}, 4, 180 * time.Second},
		{"first retry is the factor", base, 0, time.Second},
		{"doubles", base, 3, 8 * time.Second},
		{"capped", base, 10, 600 * time.Second},
		{"huge retries stay capped", base, 200, 600 * time.Second},
		{"factor 5s", RetryPolicy{Backoff: 5 * time.Second, BackoffMax: time.Minute}, 2, 20 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.want, c.p.Countdown(c.retries, nil))
		})
	}
}

func TestRetryPolicy_CountdownJitterIsUniformWithinBound(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Backoff: time.Second, BackoffMax: 600 * time.Second, Jitter: true}
	rnd := rand.New(rand.NewPCG(1, 2))
	var below, above int
	for i := 0; i < 2000; i++ {
		d := p.Countdown(2, rnd) // bound 4s
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, 4*time.Second)
		if d < 2*time.Second {
			below++
		} else {
			above++
		}
	}
	// Full jitter: about half of the draws fall in each half of [0, 4s].
	require.InDelta(t, 1000, below, 150)
	require.InDelta(t, 1000, above, 150)
	// Deterministic for a given source.
	a := p.Countdown(5, rand.New(rand.NewPCG(7, 7)))
	b := p.Countdown(5, rand.New(rand.NewPCG(7, 7)))
	require.Equal(t, a, b)
}

func TestRetryPolicy_ShouldAutoretry(t *testing.T) {
	t.Parallel()
	temp := errors.New("temporary")
	perm := errors.New("permanent")
	p := RetryPolicy{
		AutoretryFor:     func(err error) bool { return errors.Is(err, temp) },
		DontAutoretryFor: func(err error) bool { return errors.Is(err, perm) },
	}
	require.True(t, p.ShouldAutoretry(temp))
	require.False(t, p.ShouldAutoretry(errors.New("other")))
	require.False(t, p.ShouldAutoretry(errors.Join(temp, perm)), "dont_autoretry_for wins")
	require.False(t, (&RetryPolicy{}).ShouldAutoretry(temp), "no autoretry_for: never")
}

func TestExhausted(t *testing.T) {
	t.Parallel()
	require.False(t, Exhausted(0, 3))
	require.False(t, Exhausted(2, 3))
	require.True(t, Exhausted(3, 3))
	require.True(t, Exhausted(0, 0))
	require.False(t, Exhausted(1000, -1), "none: unlimited")
}
