package driver

import (
	"context"
	"time"
)

// UniqueKeyPrefix starts the key of every unique-task lock (asynq's
// Unique, celery-once's lock), after the transport's own key prefix:
// "taskgen-unique-<task name>-<sha256 of the encoded arguments>" for the
// //task:unique directive, "taskgen-unique-<key>" for runtime.Unique(key, ttl).
const UniqueKeyPrefix = "taskgen-unique-"

// Locker is implemented by result backends that hold the locks of unique
// tasks: a lock names the id of the task holding it and expires by itself
// after its ttl. The Redis backend implements it with SET NX PX and a
// compare-and-delete script; the memory backend in process.
type Locker interface {
	// Lock takes key for id during ttl unless another id holds it; then it
	// returns that id and false. Taking a key already held by id succeeds.
	Lock(ctx context.Context, key, id string, ttl time.Duration) (holder string, ok bool, err error)
	// Unlock releases key if id still holds it (a lock that expired and
	// was taken by another task is left alone).
	Unlock(ctx context.Context, key, id string) error
}
