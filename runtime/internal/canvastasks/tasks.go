// Package canvastasks holds the tasks the workflow (canvas) tests chain,
// group and chord: arithmetic that shows the order of steps, a failing
// task and an error handler that records what it was called with.
package canvastasks

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"context"
	"errors"
	"sync"
)

// add returns x + y.
//
//task:name tasks.add
func add(ctx context.Context, x, y int64) (int64, error) { return x + y, nil }

// mul returns x * y.
//
//task:name tasks.mul
func mul(ctx context.Context, x, y int64) (int64, error) { return x * y, nil }

// tsum returns the sum of xs (a chord body).
//
//task:name tasks.tsum
func tsum(ctx context.Context, xs []int64) (int64, error) {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s, nil
}

// ErrBoom is what boom fails with.
var ErrBoom = errors.New("boom")

// boom fails, with no retry.
//
//task:name tasks.boom
func boom(ctx context.Context, x int64) (int64, error) { return 0, ErrBoom }

// Handled records the ids onError was called with, and what notes.
var (
	mu      sync.Mutex
	handled []string
)

// HandledIDs returns the task ids onError was called with so far.
func HandledIDs() []string {
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), handled...)
}

// onError records the id of the task that failed (an errback).
//
//task:name tasks.on_error
func onError(ctx context.Context, taskID string) error {
	mu.Lock()
	defer mu.Unlock()
	handled = append(handled, taskID)
	return nil
}

// noted records that it ran (an immutable errback), with the note.
//
//task:name tasks.noted
func noted(ctx context.Context, note string) error {
	mu.Lock()
	defer mu.Unlock()
	handled = append(handled, "note:"+note)
	return nil
}
