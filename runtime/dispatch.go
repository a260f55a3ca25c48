package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// poolState is what the pool goroutines of a running worker share.
type poolState struct {
	deliveries <-chan driver.Delivery
	// work carries held tasks (ETA, countdown, rate limit) when they are due;
	// closed at shutdown once nothing can be held any more.
	work chan job
	// lead is the dispatcher's token (capacity one): the pool goroutine
	// holding it receives the next delivery and dispatches it, passes the
	// token on, then runs the task itself. Dispatch stays one at a time and
	// in delivery order (task-received events, rate-limit slots), as with a
	// dispatcher goroutine, without that goroutine's hand-off per task. The
	// shutdown takes the token for good.
	lead chan struct{}
	// quit is closed when the worker starts shutting down: no new dispatch.
	quit chan struct{}
	// stopped is closed when the transport closed deliveries.
	stopped  chan struct{}
	stopOnce sync.Once
}

// serve is a pool goroutine's loop until the worker stops: it takes the
// dispatcher's token or a held task whose time came.
func (w *Worker) serve(ctx, taskCtx context.Context, abandon <-chan struct{}, p *poolState) {
	for {
		select {
		case <-p.quit:
			return
		case j, ok := <-p.work:
			if !ok {
				return
			}
			w.execute(taskCtx, abandon, j)
		case <-p.lead:
			j, run, stop := w.lead(ctx, p)
			p.lead <- struct{}{}
			if run {
				w.execute(taskCtx, abandon, j)
			}
			if stop {
				return
			}
		}
	}
}

// lead is one turn of the pool goroutine holding the dispatcher's token: it
// returns the task to run now, if any, and whether the worker is stopping.
func (w *Worker) lead(ctx context.Context, p *poolState) (j job, run, stop bool) {
	select {
	case <-p.quit:
		return job{}, false, true
	case j, ok := <-p.work:
		return j, ok, !ok
	case d, ok := <-p.deliveries:
		if !ok {
			p.stopOnce.Do(func() { close(p.stopped) })
			return job{}, false, true
		}
		select {
		case <-p.quit: // shutting down: not started, back to the queue
			w.requeue(d)
			return job{}, false, true
		case <-ctx.Done(): // about to shut down: likewise
			w.requeue(d)
			return job{}, false, true
		default:
		}
		j, run = w.dispatch(ctx, d, p.work)
		return j, run, false
	}
}

// dispatch validates a delivery and returns it to run now, or parks it in
// the broker, or holds it until its ETA or rate-limit slot (then it comes
// through work).
func (w *Worker) dispatch(ctx context.Context, d driver.Delivery, work chan<- job) (job, bool) {
	j, ok := w.accept(ctx, d)
	if !ok {
		return job{}, false
	}
	def, m := j.def, j.m
	if wait := w.rateWait(def); wait > 0 {
		w.hold(j, wait, work)
		return job{}, false
	}
	if eta := m.Headers.ETA; !eta.IsZero() {
		wait := eta.Sub(w.app.now())
		if wait > w.opts.DelayHorizon {
			if dl, ok := w.app.broker.(driver.Delayer); ok {
				// Parking waits for the broker's confirmation: do it off the
				// pool goroutine so a stream of far-future tasks does not
				// stall it.
				w.parking.Go(func() {
					if err := dl.Defer(ctx, queueOf(m, def, w.app), m, eta); err != nil {
						w.log.Warn("parking a delayed task in the broker failed; holding it in memory", "id", m.Headers.ID, "err", err)
						w.hold(j, max(time.Until(eta), 0), work)
						return
					}
					if err := d.Ack(); err != nil {
						w.log.Error("ack after parking failed", "task", m.Headers.Task, "id", m.Headers.ID, "err", err)
					}
				})
				return job{}, false
			}
		}
		if wait > 0 {
			w.hold(j, wait, work)
			return job{}, false
		}
	}
	return j, true
}

// accept validates a delivery: an undecodable message or an unregistered task
// is dead-lettered (and FAILURE stored for the latter).
func (w *Worker) accept(ctx context.Context, d driver.Delivery) (job, bool) {
	received := w.app.now()
	w.received.Add(1)
	m := d.Message()
	if m == nil {
		reason := "undecodable message"
		if err := d.DecodeError(); err != nil {
			reason = err.Error()
		}
		// Dead-lettering waits for the broker: in the background.
		w.parking.Go(func() { w.deadLetter(d, nil, reason) })
		return job{}, false
	}
	if w.opts.MaxBodySize > 0 && len(m.Body) > w.opts.MaxBodySize {
		reason := fmt.Sprintf("task %s: body of %d bytes exceeds the worker's MaxBodySize (%d)", m.Headers.Task, len(m.Body), w.opts.MaxBodySize)
		w.parking.Go(func() { w.deadLetter(d, m, reason) })
		return job{}, false
	}
	w.obs.TaskReceived(m)
	def := w.lookup(m.Headers.Task)
	if def == nil {
		w.parking.Go(func() {
			w.deadLetter(d, m, fmt.Sprintf("unregistered task %q", m.Headers.Task))
			w.storeFailure(context.WithoutCancel(ctx), m, nil, &driver.ExceptionInfo{Type: "NotRegistered", Message: []any{m.Headers.Task}, Module: "celery.exceptions"}, "")
		})
		return job{}, false
	}
	return job{d: d, m: m, def: def, received: received}, true
}

// Process handles one delivery synchronously in the calling goroutine, as
// the worker's pool would, ignoring its ETA and rate limit: the test kit's
// eager mode uses it. Run is the normal way to drive a worker.
func (w *Worker) Process(ctx context.Context, d driver.Delivery) {
	w.ctl.init()
	if j, ok := w.accept(ctx, d); ok {
		w.execute(ctx, nil, j)
	}
	w.parking.Wait()
}

func (w *Worker) hold(j job, wait time.Duration, work chan<- job) {
	h := &heldTask{d: j.d}
	w.heldMu.Lock()
	defer w.heldMu.Unlock()
	w.held[h] = struct{}{}
	h.timer = time.AfterFunc(wait, func() {
		w.heldMu.Lock()
		_, still := w.held[h]
		delete(w.held, h)
		w.heldMu.Unlock()
		if !still {
			return
		}
		defer func() {
			// work is closed when the worker stopped meanwhile.
			if recover() != nil {
				w.requeue(j.d)
			}
		}()
		work <- j
	})
}

func (w *Worker) releaseHeld() {
	w.heldMu.Lock()
	held := w.held
	w.held = map[*heldTask]struct{}{}
	w.heldMu.Unlock()
	for h := range held {
		if h.timer.Stop() {
			w.requeue(h.d)
		}
	}
}

func queueOf(m *driver.Message, def *codegen.TaskDef, app *App) string {
	if m.RoutingKey != "" {
		return m.RoutingKey
	}
	if def != nil && def.Queue != "" {
		return def.Queue
	}
	return app.cfg.DefaultQueue
}

func (w *Worker) deadLetter(d driver.Delivery, m *driver.Message, reason string) {
	attrs := []any{"reason", reason}
	if m != nil {
		attrs = append(attrs, "task", m.Headers.Task, "id", m.Headers.ID)
	}
	if m != nil {
		w.obs.TaskRejected(m, reason)
	}
	if err := d.Reject(reason); err != nil {
		w.log.Error("dead-letter failed", append(attrs, "err", err)...)
		return
	}
	w.deadLettered.Add(1)
	w.log.Error("message dead-lettered", attrs...)
	w.releaseUnique(context.Background(), m)
}
