package memory

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Backend is an in-process result backend.
type Backend struct {
	mu   sync.Mutex
	docs map[string][]byte
	wake chan struct{}
}

var _ driver.ResultBackend = (*Backend)(nil)

// NewBackend returns an empty backend not registered under any URL.
func NewBackend() *Backend {
	return &Backend{docs: map[string][]byte{}, wake: make(chan struct{})}
}

// Store saves doc for taskID, unless the stored document is already a
// SUCCESS (as Celery 5 and the Redis backend do); the ttl is ignored.
func (b *Backend) Store(_ context.Context, taskID string, doc []byte, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if isSuccess(b.docs[taskID]) {
		return nil
	}
	b.docs[taskID] = bytes.Clone(doc)
	close(b.wake)
	b.wake = make(chan struct{})
	return nil
}

// Load returns the stored document or nil.
func (b *Backend) Load(_ context.Context, taskID string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.docs[taskID]), nil
}

// Wait returns the first stored document for which ready is true.
func (b *Backend) Wait(ctx context.Context, taskID string, ready func([]byte) bool) ([]byte, error) {
	for {
		b.mu.Lock()
		doc, wake := b.docs[taskID], b.wake
		b.mu.Unlock()
		if doc != nil && ready(doc) {
			return bytes.Clone(doc), nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close does nothing: the backend lives as long as the process.
func (b *Backend) Close() error { return nil }

// isSuccess reports whether doc is a result document (JSON or msgpack) in
// state SUCCESS.
func isSuccess(doc []byte) bool {
	if len(doc) == 0 {
		return false
	}
	ser := "msgpack"
	if doc[0] == '{' {
		ser = "json"
	}
	d, err := driver.DecodeResultDoc(ser, doc)
	return err == nil && d.Status == driver.StateSuccess
}
