// Package tasks holds the benchmark's no-op tasks: one string argument, the
// enqueue time in Unix nanoseconds, so the worker can record the
// enqueue→start latency.
package tasks

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// Done counts the task runs (both tasks).
var Done atomic.Int64

// latency recording: on while a latency phase runs.
var (
	latOn  atomic.Bool
	latBuf []int64
	latN   atomic.Int64
)

// RecordLatency starts recording up to n enqueue→start latencies.
func RecordLatency(n int) {
	latBuf = make([]int64, n)
	latN.Store(0)
	latOn.Store(true)
}

// Latencies stops recording and returns the recorded latencies (ns).
func Latencies() []int64 {
	latOn.Store(false)
	n := min(int(latN.Load()), len(latBuf))
	return latBuf[:n]
}

// Record is what every benchmark's task body does: note the start latency
// of a task enqueued at the Unix-nanosecond time ts, and count the run.
func Record(ts string) {
	if latOn.Load() {
		now := time.Now().UnixNano()
		if t, err := strconv.ParseInt(ts, 10, 64); err == nil {
			if i := latN.Add(1) - 1; int(i) < len(latBuf) {
				latBuf[i] = now - t
			}
		}
	}
	Done.Add(1)
}

// noop does nothing but Record; acknowledged before it runs (Celery's default).
//
//task:name bench.noop
//task:ignore_result
func noop(ctx context.Context, ts string) error {
	Record(ts)
	return nil
}

// noopLate is noop with acks_late.
//
//task:name bench.noop_late
//task:ignore_result
//task:acks_late
func noopLate(ctx context.Context, ts string) error {
	Record(ts)
	return nil
}
