package memory

import (
	"bytes"
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Backend is an in-process result backend.
type Backend struct {
	mu        sync.Mutex
	docs      map[string][]byte
	wake      chan struct{}
	groups    map[string][]byte
	chords    map[string]*chordState
	schedules // driver.ScheduleStore: runtime/beat's state
}

// chordState counts the members of one chord's header.
type chordState struct {
	size  int
	hasSz bool
	parts map[string]chordPart // by task id
}

type chordPart struct {
	index int
	part  []byte
}

var (
	_ driver.ResultBackend = (*Backend)(nil)
	_ driver.GroupBackend  = (*Backend)(nil)
)

// NewBackend returns an empty backend not registered under any URL.
func NewBackend() *Backend {
	return &Backend{docs: map[string][]byte{}, wake: make(chan struct{}), groups: map[string][]byte{}, chords: map[string]*chordState{}}
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

// SaveGroup stores group gid's document; the ttl is ignored.
func (b *Backend) SaveGroup(_ context.Context, gid string, doc []byte, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.groups[gid] = bytes.Clone(doc)
	return nil
}

// LoadGroup returns group gid's document or nil.
func (b *Backend) LoadGroup(_ context.Context, gid string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.groups[gid]), nil
}

func (b *Backend) chord(gid string) *chordState {
	c := b.chords[gid]
	if c == nil {
		c = &chordState{parts: map[string]chordPart{}}
		b.chords[gid] = c
	}
	return c
}

// SetChordSize records the size of the chord whose header is group gid.
func (b *Backend) SetChordSize(_ context.Context, gid string, size int, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.chord(gid)
	c.size, c.hasSz = size, true
	return nil
}

// ChordPartReturn records a finished member; see driver.GroupBackend.
func (b *Backend) ChordPartReturn(_ context.Context, gid, taskID string, index int, part []byte, _ time.Duration) ([][]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.chord(gid)
	if _, dup := c.parts[taskID]; !dup {
		if index < 0 {
			index = math.MaxInt
		}
		c.parts[taskID] = chordPart{index: index, part: bytes.Clone(part)}
	}
	if !c.hasSz || len(c.parts) != c.size {
		return nil, false, nil
	}
	all := make([]chordPart, 0, len(c.parts))
	for _, p := range c.parts {
		all = append(all, p)
	}
	slices.SortStableFunc(all, func(x, y chordPart) int { return cmp.Compare(x.index, y.index) })
	out := make([][]byte, len(all))
	for i, p := range all {
		out[i] = bytes.Clone(p.part)
	}
	return out, true, nil
}

// ChordDone forgets the chord of group gid.
func (b *Backend) ChordDone(_ context.Context, gid string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.chords, gid)
	return nil
}
