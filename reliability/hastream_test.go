//go:build reliability

package reliability_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

// tailer follows a sink file from the test process: every 10 ms it reads
// the lines appended since and notes when it first saw each id, so that
// the failover tests can time "kill → next task executed" (to within the
// 10 ms poll) without a clock in the task.
type tailer struct {
	path string

	mu      sync.Mutex
	first   map[string]time.Time
	count   map[string]int
	lines   int
	lastNew time.Time // when the last line was read

	off     int64
	partial []byte
	stop    chan struct{}
	done    chan struct{}
}

func newTailer(t *testing.T, s sink) *tailer {
	tl := &tailer{path: s.path, first: map[string]time.Time{}, count: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{}), lastNew: time.Now()}
	go func() {
		defer close(tl.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			tl.poll()
			select {
			case <-tl.stop:
				tl.poll()
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(tl.stop); <-tl.done })
	return tl
}

func (tl *tailer) poll() {
	f, err := os.Open(tl.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(tl.off, io.SeekStart); err != nil {
		return
	}
	b, _ := io.ReadAll(f)
	if len(b) == 0 {
		return
	}
	tl.off += int64(len(b))
	b = append(tl.partial, b...)
	now := time.Now()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		id := string(b[:i])
		b = b[i+1:]
		if id == "" {
			continue
		}
		if tl.count[id]++; tl.count[id] == 1 {
			tl.first[id] = now
		}
		tl.lines++
		tl.lastNew = now
	}
	tl.partial = append([]byte(nil), b...)
}

// seen returns when id was first read, and whether it was.
func (tl *tailer) seen(id string) (time.Time, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	at, ok := tl.first[id]
	return at, ok
}

// tally returns the ids never recorded and the extra runs of the others.
func (tl *tailer) tally(ids []string) (lost []string, dups int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, id := range ids {
		switch n := tl.count[id]; {
		case n == 0:
			lost = append(lost, id)
		case n > 1:
			dups += n - 1
		}
	}
	return lost, dups
}

// ran counts the ids recorded at least once.
func (tl *tailer) ran(ids []string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, id := range ids {
		if tl.count[id] > 0 {
			n++
		}
	}
	return n
}

// waitAll waits until every id is recorded, or until within passes, or
// (with quiet > 0) until nothing new was recorded for quiet.
func (tl *tailer) waitAll(ids []string, within, quiet time.Duration) (lost []string, dups int) {
	deadline := time.Now().Add(within)
	for {
		lost, dups = tl.tally(ids)
		tl.mu.Lock()
		idle := time.Since(tl.lastNew)
		tl.mu.Unlock()
		if len(lost) == 0 || time.Now().After(deadline) || quiet > 0 && idle > quiet {
			return lost, dups
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// confirmation is one Delay that returned nil.
type confirmation struct {
	id    string
	start time.Time // Delay called
	at    time.Time // Delay returned nil
}

// haStream is the failover tests' producer: goroutines of one app publish
// rel.record tasks (acks_late) with fresh ids until stop is closed, each
// Delay bounded by perCall; it keeps the confirmed ids with the time of
// their confirmation, in confirmation order, and the ids of failed Delays.
type haStream struct {
	mu        sync.Mutex
	confirmed []confirmation
	failed    []string
	texts     map[string]int
	confirms  atomic.Int64
	wait      func()
}

func runHAStream(ctx context.Context, app *runtime.App, queue string, goroutines int, pace, perCall time.Duration, stop <-chan struct{}, log io.Writer) *haStream {
	s := &haStream{texts: map[string]int{}}
	var wg sync.WaitGroup
	stub := recordStub(app, queue)
	prefix := randID()[:4]
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				id := fmt.Sprintf("h%s-%d-%d", prefix, g, i)
				cctx, cancel := context.WithTimeout(ctx, perCall)
				began := time.Now()
				_, err := stub.Delay(cctx, id, 0)
				cancel()
				at := time.Now()
				s.mu.Lock()
				if err == nil {
					s.confirmed = append(s.confirmed, confirmation{id, began, at})
				} else {
					s.failed = append(s.failed, id)
					if s.texts[err.Error()]++; s.texts[err.Error()] == 1 {
						fmt.Fprintf(log, "%s producer error: %v\n", at.Format("15:04:05.000"), err)
					}
				}
				s.mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				s.confirms.Add(1)
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	s.wait = wg.Wait
	return s
}

// confirmedAfter returns the confirmations of Delays called after at.
func (s *haStream) confirmedAfter(at time.Time) []confirmation {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The slice is in confirmation order, and a Delay is called before it
	// is confirmed: search for the first confirmation after at, then keep
	// those whose call came after at.
	i := sort.Search(len(s.confirmed), func(i int) bool { return s.confirmed[i].at.After(at) })
	var out []confirmation
	for _, c := range s.confirmed[max(0, i-64):] {
		if c.start.After(at) {
			out = append(out, c)
		}
	}
	return out
}

func (s *haStream) ids() (confirmed, failed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.confirmed {
		confirmed = append(confirmed, c.id)
	}
	return confirmed, append([]string(nil), s.failed...)
}

// firstConfirmAfter returns when the first Delay called after at was
// confirmed.
func (s *haStream) firstConfirmAfter(at time.Time) (time.Time, bool) {
	cs := s.confirmedAfter(at)
	if len(cs) == 0 {
		return time.Time{}, false
	}
	first := cs[0].at
	for _, c := range cs {
		if c.at.Before(first) {
			first = c.at
		}
	}
	return first, true
}

// resumed is what awaitResume measured after a fault at some instant.
type resumed struct {
	confirm time.Duration // fault → first confirmation of a Delay called after it
	run     time.Duration // fault → first run of a task whose Delay was called after it
}

// awaitResume waits (up to within) until a Delay called after the fault
// at "at" is confirmed and such a task has run, and returns the delays; ok
// is false if that did not happen in time.
func awaitResume(s *haStream, tl *tailer, at time.Time, within time.Duration) (r resumed, ok bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, okc := s.firstConfirmAfter(at)
		if okc {
			r.confirm = c.Sub(at)
			var first time.Time
			for _, c := range s.confirmedAfter(at) {
				if seen, ok := tl.seen(c.id); ok && (first.IsZero() || seen.Before(first)) {
					first = seen
				}
			}
			if !first.IsZero() {
				r.run = first.Sub(at)
				return r, true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r, false
}

// waitConfirmed waits until the stream has n confirmations, up to within.
func (s *haStream) waitConfirmed(n int64, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for s.confirms.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
