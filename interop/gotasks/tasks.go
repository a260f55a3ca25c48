// Package gotasks holds the Go side of taskgen's interoperability tests with
// Python Celery: tasks implemented in Go that Python calls by name, and
// remote stubs for tasks implemented in Python (interop/py/pytasks.py).
package gotasks

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

// addNumbers adds two integers.
//
//task:name go.add
//task:queue go
func addNumbers(ctx context.Context, x int64, y int64) (int64, error) {
	return x + y, nil
}

// greet builds a greeting; Python callers pass the arguments by keyword.
//
//task:name go.greet
//task:queue go
func greet(ctx context.Context, name string, punctuation string, times int) (string, error) {
	return strings.Repeat("hello "+name+punctuation, times), nil
}

// InvalidInput is an error a Python caller sees as ValueError.
type InvalidInput struct{ Reason string }

func (e *InvalidInput) Error() string { return e.Reason }

// CeleryException names the Python class of the error.
func (e *InvalidInput) CeleryException() (module, class string) { return "builtins", "ValueError" }

// failWith always fails with an *InvalidInput.
//
//task:name go.fail
//task:queue go
func failWith(ctx context.Context, reason string) error {
	return &InvalidInput{Reason: reason}
}

// TemporaryError makes flaky retry.
type TemporaryError struct{ Attempt int }

func (e *TemporaryError) Error() string {
	return fmt.Sprintf("temporary failure on attempt %d", e.Attempt)
}

// flaky fails with a *TemporaryError until its retry count reaches succeedAt.
//
//task:name go.flaky
//task:queue go
//task:autoretry_for *TemporaryError
//task:retry_backoff 100ms
//task:retry_jitter false
//task:max_retries 5
func flaky(ctx context.Context, succeedAt int) (int, error) {
	info, _ := runtime.TaskFromContext(ctx)
	if info.Retries < succeedAt {
		return 0, &TemporaryError{Attempt: info.Retries}
	}
	return info.Retries, nil
}

// later asks for a retry far in the future, so its RETRY state can be read.
//
//task:name go.later
//task:queue go
func later(ctx context.Context, key string) (string, error) {
	return "", runtime.Retry(fmt.Errorf("not yet: %s", key), runtime.RetryCountdown(3600e9))
}

// ImageInfo is what the Python task py.resize_image returns.
type ImageInfo struct {
	URL    string `json:"url" msgpack:"url"`
	Width  int    `json:"width" msgpack:"width"`
	Height int    `json:"height" msgpack:"height"`
	Format string `json:"format" msgpack:"format"`
}

// resizeImage is implemented in Python (py.resize_image).
//
//task:name py.resize_image
type resizeImage func(ctx context.Context, url string, width int, height int) (ImageInfo, error)

// pyFail is implemented in Python and raises ValueError(msg).
//
//task:name py.fail
type pyFail func(ctx context.Context, msg string) error

// sharedSlow is implemented in both languages under one name (Python:
// pytasks.shared_slow): it records "go-start" in marker, sleeps, then records
// "go-done". The crash-restore tests kill the worker in between.
//
//task:name shared.slow
//task:queue shared
//task:acks_late
func sharedSlow(ctx context.Context, seconds float64, marker string) (string, error) {
	if err := appendLine(marker, "go-start"); err != nil {
		return "", err
	}
	select {
	case <-time.After(time.Duration(seconds * float64(time.Second))):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return "go", appendLine(marker, "go-done")
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

// multiply multiplies two integers (a chain step).
//
//task:name go.mul
//task:queue go
func multiply(ctx context.Context, x int64, y int64) (int64, error) {
	return x * y, nil
}

// total sums the results of a chord's header.
//
//task:name go.tsum
//task:queue go
func total(ctx context.Context, xs []int64) (int64, error) {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s, nil
}

// pyAdd is implemented in Python (py.add).
//
//task:name py.add
type pyAdd func(ctx context.Context, x int64, y int64) (int64, error)

// pyMul is implemented in Python (py.mul).
//
//task:name py.mul
type pyMul func(ctx context.Context, x int64, y int64) (int64, error)

// pyTsum is implemented in Python (py.tsum).
//
//task:name py.tsum
type pyTsum func(ctx context.Context, xs []int64) (int64, error)

// TraceHeaders is what the Python task py.traceparent returns: the trace
// context its request carried.
type TraceHeaders struct {
	Traceparent string `json:"traceparent" msgpack:"traceparent"`
	Tracestate  string `json:"tracestate" msgpack:"tracestate"`
}

// pyTraceparent is implemented in Python (py.traceparent).
//
//task:name py.traceparent
type pyTraceparent func(ctx context.Context) (TraceHeaders, error)

// importRows imports total rows, reporting its progress after each as
// Celery's update_state(state="PROGRESS", meta={"current": row, "total":
// total, "note": "row"}) does, and waits for the file gate/<row> before the
// next row: the interop tests step it that way.
//
//task:name go.import_rows
//task:queue go
func importRows(ctx context.Context, total int, gate string) (int, error) {
	for row := 1; row <= total; row++ {
		if err := runtime.Progress(ctx, row, total, "row"); err != nil {
			return 0, err
		}
		if err := waitFile(ctx, filepath.Join(gate, strconv.Itoa(row))); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// waitFile returns once path exists, or with ctx's error.
func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// pyImportRows is implemented in Python (py.import_rows), the twin of
// go.import_rows: self.update_state(state="PROGRESS", meta=...) after each
// row, then it waits for gate/<row>.
//
//task:name py.import_rows
type pyImportRows func(ctx context.Context, total int, gate string) (int, error)
