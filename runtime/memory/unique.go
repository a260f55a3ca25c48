package memory

import (
	"context"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

var _ driver.Locker = (*Backend)(nil)

type uniqueLock struct {
	id    string
	until time.Time
}

// locks are the unique-task locks of every memory backend, by backend.
var (
	locksMu sync.Mutex
	locks   = map[*Backend]map[string]uniqueLock{}
)

// Lock takes key for id until ttl passes, unless another id holds it.
func (b *Backend) Lock(_ context.Context, key, id string, ttl time.Duration) (string, bool, error) {
	now := time.Now()
	locksMu.Lock()
	defer locksMu.Unlock()
	m := locks[b]
	if m == nil {
		m = map[string]uniqueLock{}
		locks[b] = m
	}
	if l, ok := m[key]; ok && now.Before(l.until) && l.id != id {
		return l.id, false, nil
	}
	m[key] = uniqueLock{id: id, until: now.Add(ttl)}
	return id, true, nil
}

// Unlock releases key if id holds it.
func (b *Backend) Unlock(_ context.Context, key, id string) error {
	locksMu.Lock()
	defer locksMu.Unlock()
	if l, ok := locks[b][key]; ok && l.id == id {
		delete(locks[b], key)
	}
	return nil
}
