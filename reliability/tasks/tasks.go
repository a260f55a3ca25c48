// Package tasks holds the tasks of taskgen's reliability suite
// (reliability/, build tag "reliability"). Every task that must not be lost
// records its id in a sink: one line appended with O_APPEND to the file set
// with SetSink (the worker binary reads RELIABILITY_SINK), so that a test can
// count lost and duplicated runs across worker processes that are killed.
package tasks

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

var (
	sinkMu sync.RWMutex
	sink   *os.File
)

// SetSink makes the tasks append their records to the file at path
// (created if needed). Each record is one write(2) of one line, so appends
// from several processes do not interleave.
func SetSink(path string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	sinkMu.Lock()
	defer sinkMu.Unlock()
	if sink != nil {
		sink.Close()
	}
	sink = f
	return nil
}

// Emit appends line to the sink.
func Emit(line string) error {
	sinkMu.RLock()
	defer sinkMu.RUnlock()
	if sink == nil {
		return errors.New("reliability tasks: no sink (SetSink)")
	}
	_, err := sink.Write([]byte(line + "\n"))
	return err
}

// record is the crash-test task: it optionally works for ms milliseconds,
// then records its id. acks_late: the message is acknowledged after the
// record, so a worker killed before that leaves it to another worker.
//
//task:name rel.record
//task:acks_late
//task:ignore_result
func record(ctx context.Context, id string, ms int) error {
	if ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	return Emit(id)
}

// ping records "ping <id>": the responsiveness probe.
//
//task:name rel.ping
//task:queue rel.ping
//task:ignore_result
func ping(ctx context.Context, id string) error {
	return Emit("ping " + id)
}

// slow records "start <id>", works for ms milliseconds, then records <id>.
// With honorCtx it stops early when its ctx ends (and records nothing);
// without, it ignores ctx.
//
//task:name rel.slow
//task:acks_late
//task:ignore_result
func slow(ctx context.Context, id string, ms int, honorCtx bool) error {
	if err := Emit("start " + id); err != nil {
		return err
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	if honorCtx {
		select {
		case <-t.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	} else {
		<-t.C
	}
	return Emit(id)
}

// boom panics.
//
//task:name rel.boom
//task:ignore_result
func boom(ctx context.Context, n int) error {
	var m map[string]int
	//lint:ignore SA5000 the point of this task: a runtime panic, not a call to panic()
	m["x"] = n
	return nil
}

// stubborn ignores its ctx and sleeps past its time limit.
//
//task:name rel.stubborn
//task:time_limit 500ms
//task:ignore_result
func stubborn(ctx context.Context, ms int) error {
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return nil
}

// Flaky is the error the storm task retries on.
type Flaky struct{ Attempt int }

func (e *Flaky) Error() string { return fmt.Sprintf("flaky attempt %d", e.Attempt) }

// storm fails until it has been retried `until` times, then records its id.
//
//task:name rel.storm
//task:ignore_result
//task:acks_late
//task:autoretry_for *Flaky
//task:retry_backoff 10ms
//task:retry_backoff_max 50ms
//task:max_retries 50
func storm(ctx context.Context, id string, until int) error {
	info, _ := runtime.TaskFromContext(ctx)
	if info.Retries < until {
		return &Flaky{Attempt: info.Retries}
	}
	return Emit(id)
}

// typed takes typed arguments: the poison tests send it wrong arities and
// types.
//
//task:name rel.typed
//task:ignore_result
func typed(ctx context.Context, n int64, s string) error {
	return Emit(fmt.Sprintf("typed %d %s", n, s))
}

// chordMember is a chord header member of the chord crash test: it works
// for ms milliseconds, records "member <i>", and returns i. acks_late, so
// a member whose worker is killed runs again elsewhere.
//
//task:name rel.chord_member
//task:acks_late
func chordMember(ctx context.Context, i int64, ms int) (int64, error) {
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return i, Emit(fmt.Sprintf("member %d", i))
}

// chordBody is the chord crash test's body: it records "body <tag> <n>
// <sum>" for the n results it got, so that a test sees whether it ran once
// and with every member's result.
//
//task:name rel.chord_body
//task:acks_late
func chordBody(ctx context.Context, xs []int64, tag string) (int64, error) {
	var sum int64
	for _, x := range xs {
		sum += x
	}
	return sum, Emit(fmt.Sprintf("body %s %d %d", tag, len(xs), sum))
}
