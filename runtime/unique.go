package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// ErrDuplicate is matched (errors.Is) by the error of a Delay refused
// because a unique task with the same key is pending or running; the error
// is a *DuplicateError naming that task.
var ErrDuplicate = errors.New("taskgen: duplicate of a unique task")

// ErrNoLocker is returned by the Delay of a unique task when the app's
// result backend cannot hold locks.
var ErrNoLocker = errors.New("taskgen: unique tasks need a result backend that holds locks (redis://, sentinel:// or memory://)")

// DuplicateError is the error of a Delay refused because the unique task
// ID, sent earlier with the same lock key, is still pending or running.
// It matches ErrDuplicate; errors.As gives the id:
//
//	var dup *runtime.DuplicateError
//	if errors.As(err, &dup) {
//		res := runtime.NewAsyncResult[string](app, dup.ID) // the first call's result
//	}
type DuplicateError struct {
	// ID is the id of the task holding the lock.
	ID string
	// Key is the lock's key.
	Key string
	// Task is the name of the task that was not sent.
	Task string
}

// Error says which task was refused and which one holds the lock.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("taskgen: %s not sent: task %s holds its unique lock %s until it ends or the lock expires", e.Task, e.ID, e.Key)
}

// Is makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// UniqueHeader is the message header naming the unique lock a task holds,
// so that the worker releases it when the task ends.
const UniqueHeader = "taskgen_unique"

// Unique makes the call unique under key for at most ttl (asynq's Unique,
// celery-once's lock): while a task sent with the same key is pending or
// running, Delay returns a *DuplicateError (errors.Is ErrDuplicate) with
// its id instead of enqueuing. The lock is released when that task ends
// (success, failure after its last retry, revoke, dead letter; not on a
// retry) or when ttl passes. It overrides the //task:unique directive.
// The app's result backend holds the lock (redis://, memory://).
func Unique(key string, ttl time.Duration) Option {
	return optionFunc{func(c *callOptions) { c.uniqueKey, c.uniqueTTL = key, ttl }, fmt.Sprintf("Unique(%q, %s)", key, ttl)}
}

// lockUnique takes the unique lock of the call m, when it has one, and
// returns what releases it if the publish fails.
func (a *App) lockUnique(ctx context.Context, def *codegen.TaskDef, co *callOptions, m *driver.Message) (unlock func(), err error) {
	ttl, key := co.uniqueTTL, co.uniqueKey
	switch {
	case key != "" || ttl != 0:
		if key == "" || ttl <= 0 {
			return nil, fmt.Errorf("taskgen: %s: runtime.Unique(%q, %s): want a non-empty key and a positive ttl", def.Name, key, ttl)
		}
		key = driver.UniqueKeyPrefix + key
	case def.Unique > 0:
		ttl = def.Unique
		sum := sha256.Sum256(m.Body)
		key = driver.UniqueKeyPrefix + def.Name + "-" + hex.EncodeToString(sum[:])
	default:
		return func() {}, nil
	}
	lk, ok := a.backend.(driver.Locker)
	if !ok {
		if a.backend == nil {
			return nil, fmt.Errorf("%w: %s has no result backend (set Config.Backend)", ErrNoLocker, def.Name)
		}
		return nil, fmt.Errorf("%w: %s cannot be sent unique with backend %s", ErrNoLocker, def.Name, driver.Redact(a.cfg.Backend))
	}
	id := m.Headers.ID
	holder, ok, err := lk.Lock(ctx, key, id, ttl)
	if err != nil {
		return nil, fmt.Errorf("taskgen: %s: take unique lock: %w", def.Name, err)
	}
	if !ok {
		return nil, &DuplicateError{ID: holder, Key: key, Task: def.Name}
	}
	if m.Headers.Extra == nil {
		m.Headers.Extra = map[string]any{}
	}
	m.Headers.Extra[UniqueHeader] = key
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.PublishTimeout)
		defer cancel()
		_ = lk.Unlock(rctx, key, id)
	}, nil
}

// releaseUnique releases the unique lock that m's task holds, if any: the
// task has ended.
func (w *Worker) releaseUnique(ctx context.Context, m *driver.Message) {
	if m == nil {
		return
	}
	key, _ := m.Headers.Extra[UniqueHeader].(string)
	if key == "" {
		return
	}
	lk, ok := w.app.backend.(driver.Locker)
	if !ok {
		w.log.Warn("unique lock not released: the worker's result backend holds no locks; it expires with its ttl", "task", m.Headers.Task, "id", m.Headers.ID, "key", key)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.app.cfg.PublishTimeout)
	defer cancel()
	if err := lk.Unlock(rctx, key, m.Headers.ID); err != nil {
		w.log.Error("unique lock not released; it expires with its ttl", "task", m.Headers.Task, "id", m.Headers.ID, "key", key, "err", err)
	}
}
