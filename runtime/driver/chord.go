package driver

import (
	"context"
	"time"
)

// GroupBackend is implemented by result backends that keep workflow state
// besides task results: the document of a group (Celery's GroupResult,
// celery-taskset-meta-<group id>) and the counting of a chord's header
// members, so that the chord's body is sent once, when the last member
// finished. Workflows with a chord need a result backend that implements
// it; groups are saved when the backend does.
//
// The Redis backend implements it with Celery's own keys (the .j sorted
// set, the .s size, the .t adjustment), so Go and Python workers count the
// same chord; the memory backend in process.
type GroupBackend interface {
	// SaveGroup stores the serialized GroupResult document of group gid;
	// ttl 0 means no expiry.
	SaveGroup(ctx context.Context, gid string, doc []byte, ttl time.Duration) error
	// LoadGroup returns the stored document of group gid, or nil and no
	// error when there is none.
	LoadGroup(ctx context.Context, gid string) ([]byte, error)
	// SetChordSize records the number of header members of the chord whose
	// header is group gid (Celery's set_chord_size). Producers call it
	// before sending the header.
	SetChordSize(ctx context.Context, gid string, size int, ttl time.Duration) error
	// ChordPartReturn records the finished member taskID, at index in
	// group gid (-1 when unknown): part is Celery's serialized [1, task id,
	// state, result]. When this call
	// brought the count of distinct members to the chord's size it returns
	// every part, in index order, and complete; the caller then sends the
	// body (or fails it) and calls ChordDone. A member recorded twice (a
	// redelivered message) counts once, and reports complete again while
	// the chord's state exists (so a worker that died before sending the
	// body leaves it to the redelivery).
	ChordPartReturn(ctx context.Context, gid, taskID string, index int, part []byte, ttl time.Duration) (parts [][]byte, complete bool, err error)
	// ChordDone deletes the counting state of group gid once its body was
	// sent or failed.
	ChordDone(ctx context.Context, gid string) error
}
