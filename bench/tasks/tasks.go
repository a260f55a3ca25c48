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

	"github.com/taskgen/taskgen/runtime"
)

// Done counts the task runs (both tasks).
var Done atomic.Int64

// latency recording: on while a latency phase runs.
var (
	latOn   atomic.Bool
	latBuf  []int64
	recvBuf []int64 // enqueue→received of each latency (ns)
	latN    atomic.Int64
)

// RecordLatency starts recording up to n enqueue→start latencies.
func RecordLatency(n int) {
	latBuf = make([]int64, n)
	recvBuf = make([]int64, n)
	latN.Store(0)
	latOn.Store(true)
}

// Latencies stops recording and returns the recorded latencies (ns).
func Latencies() []int64 {
	lat, _ := Split()
	return lat
}

// Split stops recording and returns the recorded latencies and, for each,
// its enqueue→received part (ns): the time until the worker took the
// message; the rest is the worker's own dispatch. Systems that run the task
// in the goroutine that received it report received = start.
func Split() (lat, recv []int64) {
	latOn.Store(false)
	n := min(int(latN.Load()), len(latBuf))
	return latBuf[:n], recvBuf[:n]
}

// Record is what every benchmark's task body does: note the start latency
// of a task enqueued at the Unix-nanosecond time ts, and count the run.
func Record(ts string) { record(ts, time.Time{}) }

// record is Record for a task the worker received at received (zero: now,
// the task runs where it was received).
func record(ts string, received time.Time) {
	if latOn.Load() {
		now := time.Now().UnixNano()
		if t, err := strconv.ParseInt(ts, 10, 64); err == nil {
			if i := latN.Add(1) - 1; int(i) < len(latBuf) {
				recv := now
				if !received.IsZero() {
					recv = received.UnixNano()
				}
				latBuf[i], recvBuf[i] = now-t, recv-t
			}
		}
	}
	Done.Add(1)
}

// recordTask is Record for a taskgen task: its TaskInfo.Received splits the
// latency.
func recordTask(ctx context.Context, ts string) {
	info, _ := runtime.TaskFromContext(ctx)
	record(ts, info.Received)
}

// noop does nothing but Record; acknowledged before it runs (Celery's default).
//
//task:name bench.noop
//task:ignore_result
func noop(ctx context.Context, ts string) error {
	recordTask(ctx, ts)
	return nil
}

// noopLate is noop with acks_late.
//
//task:name bench.noop_late
//task:ignore_result
//task:acks_late
func noopLate(ctx context.Context, ts string) error {
	recordTask(ctx, ts)
	return nil
}

// Workflow tasks (the Workflows rows of docs/BENCHMARKS.md): chord header
// members, the chord body and the chain step. Unlike the no-ops above they
// store their results (a chord counts its members' results in the result
// backend, a chain passes each step's result on), as Celery's do.

// wfMember is a chord header member: it returns x, a small int.
//
//task:name bench.wf_member
func wfMember(ctx context.Context, x int64) (int64, error) { return x, nil }

// wfSum is the chord body: the sum of the members' results.
//
//task:name bench.wf_sum
func wfSum(ctx context.Context, xs []int64) (int64, error) {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s, nil
}

// wfInc is a chain step: it adds 1 to the previous step's result.
//
//task:name bench.wf_inc
func wfInc(ctx context.Context, x int64) (int64, error) { return x + 1, nil }
