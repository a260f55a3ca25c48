package memory

import (
	"context"

	"github.com/taskgen/taskgen/runtime/driver"
)

var (
	_ driver.DeadLetterStore = (*Broker)(nil)
	_ driver.QueuePurger     = (*Broker)(nil)
)

func (dl *DeadLetter) entry() driver.DeadLetter {
	e := driver.DeadLetter{Queue: dl.Queue, Reason: dl.Reason, Time: dl.Time}
	var raw []byte
	if dl.Message != nil {
		raw = dl.Message.Body
	}
	driver.DeadLetterFromMessage(&e, dl.Message, raw)
	return e
}

// ListDeadLetters returns up to limit dead letters of queue, newest first.
func (b *Broker) ListDeadLetters(_ context.Context, queue string, limit int) ([]driver.DeadLetter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []driver.DeadLetter{}
	for i := len(b.dead) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if b.dead[i].Queue == queue {
			out = append(out, b.dead[i].entry())
		}
	}
	return out, nil
}

// CountDeadLetters returns the number of dead letters of queue.
func (b *Broker) CountDeadLetters(_ context.Context, queue string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for i := range b.dead {
		if b.dead[i].Queue == queue {
			n++
		}
	}
	return n, nil
}

// RequeueDeadLetters appends the matching dead letters of queue to queue
// and removes them from the dead letters.
func (b *Broker) RequeueDeadLetters(_ context.Context, queue string, ids []string) (int, error) {
	return b.takeDead(queue, ids, true)
}

// DropDeadLetters removes the matching dead letters of queue.
func (b *Broker) DropDeadLetters(_ context.Context, queue string, ids []string) (int, error) {
	return b.takeDead(queue, ids, false)
}

func (b *Broker) takeDead(queue string, ids []string, requeue bool) (int, error) {
	want := driver.IDSet(ids)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	kept, n := b.dead[:0], 0
	for _, dl := range b.dead {
		if dl.Queue != queue || !want[dl.entry().ID] {
			kept = append(kept, dl)
			continue
		}
		n++
		if requeue && dl.Message != nil {
			b.queues[queue] = append(b.queues[queue], dl.Message.Clone())
		}
	}
	clear(b.dead[len(kept):])
	b.dead = kept
	if requeue && n > 0 {
		b.signal()
	}
	return n, nil
}

// PurgeQueue removes the ready messages of queue.
func (b *Broker) PurgeQueue(_ context.Context, queue string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := int64(len(b.queues[queue]))
	delete(b.queues, queue)
	return n, nil
}
