package reconnect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

// fakeSleep replaces sleep for the test: it records each wait without
// waiting, and reports false once ctx has ended or after stopAfter waits
// (when positive), cancelling ctx then.
func fakeSleep(t *testing.T, cancel context.CancelFunc, stopAfter int) *[]time.Duration {
	t.Helper()
	var waits []time.Duration
	old := sleep
	sleep = func(ctx context.Context, d time.Duration) bool {
		if ctx.Err() != nil {
			return false
		}
		waits = append(waits, d)
		if stopAfter > 0 && len(waits) >= stopAfter {
			cancel()
			return false
		}
		return true
	}
	t.Cleanup(func() { sleep = old })
	return &waits
}

func TestBackoff_Next(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want []time.Duration
	}{
		{"doubles to max", Policy{Min: 100 * ms, Max: time.Second},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"max not a power of two of min", Policy{Min: 50 * ms, Max: 5 * time.Second},
			[]time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5 * time.Second, 5 * time.Second}},
		{"constant", Policy{Min: 100 * ms, Max: 100 * ms},
			[]time.Duration{100 * ms, 100 * ms, 100 * ms}},
		{"max below min", Policy{Min: 100 * ms, Max: 10 * ms},
			[]time.Duration{100 * ms, 100 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := Backoff{Policy: tt.p}
			var got []time.Duration
			for range tt.want {
				got = append(got, b.Next())
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestBackoff_Reset(t *testing.T) {
	t.Parallel()
	b := Backoff{Policy: Policy{Min: 20 * ms, Max: 500 * ms}}
	require.False(t, b.Retrying())
	b.Next()
	require.True(t, b.Retrying())
	require.Equal(t, 40*ms, b.Next())
	b.Reset()
	require.False(t, b.Retrying())
	require.Equal(t, 20*ms, b.Next())
}

func TestBackoff_Wait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waits := fakeSleep(t, cancel, 0)
	b := Backoff{Policy: Policy{Min: 100 * ms, Max: 150 * ms}}
	require.True(t, b.Wait(ctx))
	require.True(t, b.Wait(ctx))
	cancel()
	require.False(t, b.Wait(ctx))
	require.Equal(t, []time.Duration{100 * ms, 150 * ms}, *waits)
}

// TestBackoff_WaitRealSleep checks the real sleep: an ended ctx cuts it
// short.
func TestBackoff_WaitRealSleep(t *testing.T) {
	b := Backoff{Policy: Policy{Min: time.Microsecond, Max: time.Hour}}
	require.True(t, b.Wait(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.Policy.Min = time.Hour
	b.Reset()
	require.False(t, b.Wait(ctx))
}

var errDown = errors.New("down")

// attempts returns an attempt that fails with the given errors in turn, then
// succeeds, and a pointer to how often it was called.
func attempts(errs ...error) (func() error, *int) {
	n := 0
	return func() error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

func TestLoop_Run(t *testing.T) {
	errFinal := errors.New("refused")
	p := Policy{Min: 100 * ms, Max: 300 * ms}
	type failure struct {
		err  error
		wait time.Duration
	}
	tests := []struct {
		name      string
		loop      Loop
		errs      []error
		stopAfter int // waits before ctx ends; 0: never
		wantErr   error
		wantCalls int
		wantWaits []time.Duration
		wantFails []failure // nil: no Failed hook
	}{
		{name: "first attempt succeeds", loop: Loop{Policy: p},
			wantCalls: 1},
		{name: "retries with backoff", loop: Loop{Policy: p},
			errs: []error{errDown, errDown, errDown, errDown}, wantCalls: 5,
			wantWaits: []time.Duration{100 * ms, 200 * ms, 300 * ms, 300 * ms}},
		{name: "wait first", loop: Loop{Policy: p, WaitFirst: true},
			errs: []error{errDown}, wantCalls: 2,
			wantWaits: []time.Duration{100 * ms, 200 * ms}},
		{name: "final error ends at once", loop: Loop{Policy: p, Final: func(err error) bool { return errors.Is(err, errFinal) }},
			errs: []error{errDown, errFinal}, wantErr: errFinal, wantCalls: 2,
			wantWaits: []time.Duration{100 * ms}},
		{name: "ctx ends during a wait: last error", loop: Loop{Policy: p},
			errs: []error{errDown, errDown, errDown}, stopAfter: 2, wantErr: errDown, wantCalls: 2,
			wantWaits: []time.Duration{100 * ms, 200 * ms}},
		{name: "ctx ends during the first wait: ctx error", loop: Loop{Policy: p, WaitFirst: true},
			stopAfter: 1, wantErr: context.Canceled, wantCalls: 0,
			wantWaits: []time.Duration{100 * ms}},
		{name: "failed hook gets the next wait", loop: Loop{Policy: p, WaitFirst: true},
			errs: []error{errDown, errDown}, wantCalls: 3,
			wantWaits: []time.Duration{100 * ms, 200 * ms, 300 * ms},
			wantFails: []failure{{errDown, 200 * ms}, {errDown, 300 * ms}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			waits := fakeSleep(t, cancel, tt.stopAfter)
			var fails []failure
			if tt.wantFails != nil {
				tt.loop.Failed = func(err error, wait time.Duration) { fails = append(fails, failure{err, wait}) }
			}
			attempt, calls := attempts(tt.errs...)
			err := tt.loop.Run(ctx, attempt)
			require.ErrorIs(t, err, tt.wantErr)
			if tt.wantErr == nil {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantCalls, *calls)
			require.Equal(t, tt.wantWaits, *waits)
			require.Equal(t, tt.wantFails, fails)
		})
	}
}

// TestLoop_RunEndedCtx checks that an attempt failing after ctx ended is
// neither retried nor reported to Failed.
func TestLoop_RunEndedCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	waits := fakeSleep(t, cancel, 0)
	failed := false
	err := Loop{Policy: Policy{Min: ms, Max: ms}, Failed: func(error, time.Duration) { failed = true }}.
		Run(ctx, func() error { cancel(); return errDown })
	require.ErrorIs(t, err, errDown)
	require.False(t, failed)
	require.Empty(t, *waits)
}
