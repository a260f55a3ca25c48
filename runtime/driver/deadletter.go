package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// DeadLetter is a message set aside by [Delivery.Reject] (or by the broker
// itself, e.g. RabbitMQ's delivery limit), as [DeadLetterStore] lists it.
type DeadLetter struct {
	// ID identifies the entry for RequeueDeadLetters and DropDeadLetters:
	// the task id when the message could be decoded, else "raw-" and 16 hex
	// digits of the SHA-256 of its bytes ([RawDeadLetterID]).
	ID string
	// Task is the task name; empty when the message could not be decoded.
	Task string
	// Queue is the queue the message was consumed from (where a requeue
	// sends it back).
	Queue string
	// Reason is why it was set aside (an unknown task, a decode error, …).
	Reason string
	// Time is when it was set aside; zero when the transport does not know.
	Time time.Time
	// Hostname is the worker that set it aside, when known.
	Hostname string
	// Message is the decoded message; nil when it could not be decoded.
	Message *Message
	// Size is the length of the original bytes.
	Size int
}

// RawDeadLetterID is the ID of a dead letter whose message could not be
// decoded: "raw-" and the first 16 hex digits of the SHA-256 of raw.
func RawDeadLetterID(raw []byte) string {
	h := sha256.Sum256(raw)
	return "raw-" + hex.EncodeToString(h[:8])
}

// DeadLetterStore is implemented by transports whose dead letters can be
// listed, sent back to their queue and dropped (memory://, redis://,
// amqp://); taskctl's dead-letter verbs and taskmon's Dead letters page use
// it. Dead letters are kept per queue: the queue the message came from.
//
// Requeue and Drop match entries by [DeadLetter.ID]; an ID matching several
// entries (a message dead-lettered twice) affects all of them. Both return
// how many entries they moved or removed; ids that match nothing are not an
// error.
type DeadLetterStore interface {
	// ListDeadLetters returns up to limit dead letters of queue, newest
	// first; limit <= 0 means all.
	ListDeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error)
	// CountDeadLetters returns the number of dead letters of queue.
	CountDeadLetters(ctx context.Context, queue string) (int64, error)
	// RequeueDeadLetters publishes the matching dead letters of queue back
	// to queue, unchanged, and removes them from the store.
	RequeueDeadLetters(ctx context.Context, queue string, ids []string) (int, error)
	// DropDeadLetters removes the matching dead letters of queue.
	DropDeadLetters(ctx context.Context, queue string, ids []string) (int, error)
}

// QueuePurger is implemented by transports that can discard every ready
// message of a queue (`celery purge`, `taskctl purge`). Messages delivered
// to workers and not yet acknowledged are not affected.
type QueuePurger interface {
	// PurgeQueue removes the ready messages of queue and returns how many.
	PurgeQueue(ctx context.Context, queue string) (int64, error)
}

// DeadLetterFromMessage fills the ID and Task of dl from m (or from raw when
// m is nil).
func DeadLetterFromMessage(dl *DeadLetter, m *Message, raw []byte) {
	dl.Message, dl.Size = m, len(raw)
	if m != nil && m.Headers.ID != "" {
		dl.ID, dl.Task = m.Headers.ID, m.Headers.Task
		return
	}
	dl.ID = RawDeadLetterID(raw)
}

// IDSet returns ids as a set, for DeadLetterStore implementations.
func IDSet(ids []string) map[string]bool {
	s := make(map[string]bool, len(ids))
	for _, id := range ids {
		s[id] = true
	}
	return s
}
