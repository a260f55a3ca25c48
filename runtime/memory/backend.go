package memory

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

// Backend is an in-process result backend.
type Backend struct {
	mu   sync.Mutex
	docs map[string][]byte
	wake chan struct{}
}

var _ runtime.ResultBackend = (*Backend)(nil)

// NewBackend returns an empty backend not registered under any URL.
func NewBackend() *Backend {
	return &Backend{docs: map[string][]byte{}, wake: make(chan struct{})}
}

// Store saves doc for taskID; the ttl is ignored.
func (b *Backend) Store(_ context.Context, taskID string, doc []byte, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
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
