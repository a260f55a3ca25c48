package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	goruntime "runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// WorkerOptions configure a Worker; zero values are defaults. The names mirror
// `celery worker` options.
type WorkerOptions struct {
	// Queues to consume (default: the app's default queue, "celery").
	Queues []string
	// Concurrency is how many tasks run at once (default: number of CPUs).
	Concurrency int
	// Prefetch bounds the un-acknowledged messages the worker holds
	// (default: Concurrency × 4, Celery's worker_prefetch_multiplier).
	Prefetch int
	// ShutdownTimeout is how long a stopping worker lets running tasks
	// finish before cancelling their ctx and returning their messages to
	// the queue (default 30 s).
	ShutdownTimeout time.Duration
	// DelayHorizon: a task due further than this in the future is parked in
	// the broker (when the transport supports it) instead of worker memory
	// (default 5 s).
	DelayHorizon time.Duration
	// Hostname is the worker's node name (default: the app's Hostname).
	Hostname string
	// Rand is the random source of retry jitter (default: a global source).
	Rand *rand.Rand
	// MaxBodySize is the largest task body accepted, in bytes (default
	// 16 MiB; negative: no limit). Larger messages are dead-lettered unread.
	MaxBodySize int
	// Observer, when set, receives the task lifecycle (tests, metrics).
	Observer Observer
	// WithoutEvents turns off Celery's events (worker-online, heartbeats,
	// worker-offline, task-*). Unlike Python workers, which need -E, a Go
	// worker sends them by default when its transport implements
	// EventTransport, so monitors see it without configuration.
	WithoutEvents bool
	// HeartbeatInterval is the interval of worker-heartbeat events, Celery's
	// freq (default 2 s). Monitors mark the worker offline after two
	// intervals without one.
	HeartbeatInterval time.Duration
}

// WorkerStats are a worker's counters since it started.
type WorkerStats struct {
	Received     int64 // messages received
	Succeeded    int64
	Failed       int64
	Retried      int64
	Revoked      int64 // expired or revoked, not run
	DeadLettered int64 // set aside: undecodable, unregistered, bad arguments
	Active       int64 // running now
}

// Worker consumes task messages and runs the registered tasks.
type Worker struct {
	app   *App
	opts  WorkerOptions
	log   *slog.Logger
	mu    sync.RWMutex
	tasks map[string]*codegen.TaskDef

	received, succeeded, failed, retried, revoked, deadLettered, active atomic.Int64

	heldMu sync.Mutex
	held   map[*heldTask]struct{}

	obs Observer
	ctl controlState
	// parking tracks Defer calls in flight, finished before shutdown ends.
	parking sync.WaitGroup

	events *EventDispatcher // Celery events; nil when off (see events.go)

	// perTask counts the runs of each task (remote control "stats" total).
	perTask map[string]*atomic.Int64

	limitMu  sync.Mutex
	limiters map[string]time.Time // task name -> earliest start of the next run
}

// Observer receives a worker's task lifecycle; the Celery event dispatcher
// (runtime/events.go) implements it. Methods must not block.
type Observer interface {
	TaskReceived(m *driver.Message)
	TaskStarted(m *driver.Message)
	TaskSucceeded(m *driver.Message, result any, runtime time.Duration)
	TaskFailed(m *driver.Message, exc *driver.ExceptionInfo, traceback string)
	TaskRetried(m *driver.Message, exc *driver.ExceptionInfo, traceback string)
	TaskRejected(m *driver.Message, reason string)
	TaskRevoked(m *driver.Message, expired, terminated bool)
}

type nopObserver struct{}

func (nopObserver) TaskReceived(*driver.Message)                               {}
func (nopObserver) TaskStarted(*driver.Message)                                {}
func (nopObserver) TaskSucceeded(*driver.Message, any, time.Duration)          {}
func (nopObserver) TaskFailed(*driver.Message, *driver.ExceptionInfo, string)  {}
func (nopObserver) TaskRetried(*driver.Message, *driver.ExceptionInfo, string) {}
func (nopObserver) TaskRejected(*driver.Message, string)                       {}
func (nopObserver) TaskRevoked(*driver.Message, bool, bool)                    {}

type heldTask struct {
	d     driver.Delivery
	timer *time.Timer
}

// NewWorker returns a worker for app; register tasks on it, then Run it.
func (a *App) NewWorker(o WorkerOptions) *Worker {
	if len(o.Queues) == 0 {
		o.Queues = []string{a.cfg.DefaultQueue}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = goruntime.NumCPU()
	}
	if o.Prefetch <= 0 {
		o.Prefetch = o.Concurrency * 4
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.MaxBodySize == 0 {
		o.MaxBodySize = 16 << 20
	}
	if o.DelayHorizon <= 0 {
		o.DelayHorizon = 5 * time.Second
	}
	if o.Hostname == "" {
		o.Hostname = a.cfg.Hostname
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = driver.DefaultHeartbeatInterval
	}
	w := &Worker{app: a, opts: o, log: a.log.With("worker", o.Hostname), tasks: map[string]*codegen.TaskDef{}, held: map[*heldTask]struct{}{}, obs: nopObserver{}}
	if o.Observer != nil {
		w.obs = o.Observer
	}
	// Celery events (runtime/events.go).
	if et, ok := a.broker.(driver.EventTransport); ok && !o.WithoutEvents {
		w.events = newWorkerEvents(w, et)
		w.obs = observers{w.events, w.obs}
	}
	return w
}

// Register adds a task definition; generated RegisterTasks functions call it.
// It panics on an invalid or duplicate definition (a programming error); use
// RegisterSafely to get the error instead.
func (w *Worker) Register(def *codegen.TaskDef) {
	if err := w.RegisterSafely(def); err != nil {
		panic(err)
	}
}

// RegisterSafely is Register returning the error instead of panicking.
func (w *Worker) RegisterSafely(def *codegen.TaskDef) error {
	switch {
	case def == nil:
		return errors.New("taskgen: Register: nil task definition")
	case def.Name == "":
		return errors.New("taskgen: Register: task definition without a name")
	case def.Run == nil:
		return fmt.Errorf("taskgen: Register %s: a remote task stub has no implementation to run", def.Name)
	case def.NewArgs == nil:
		return fmt.Errorf("taskgen: Register %s: NewArgs is nil", def.Name)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.tasks[def.Name]; dup {
		return fmt.Errorf("taskgen: Register: task %q registered twice", def.Name)
	}
	w.tasks[def.Name] = def
	if w.perTask == nil {
		w.perTask = map[string]*atomic.Int64{}
	}
	w.perTask[def.Name] = new(atomic.Int64)
	return nil
}

// Tasks returns the registered task names, sorted.
func (w *Worker) Tasks() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	names := make([]string, 0, len(w.tasks))
	for n := range w.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Hostname returns the worker's node name.
func (w *Worker) Hostname() string { return w.opts.Hostname }

// Options returns the worker's options with defaults filled in.
func (w *Worker) Options() WorkerOptions { return w.opts }

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Received: w.received.Load(), Succeeded: w.succeeded.Load(), Failed: w.failed.Load(),
		Retried: w.retried.Load(), Revoked: w.revoked.Load(), DeadLettered: w.deadLettered.Load(),
		Active: w.active.Load(),
	}
}

func (w *Worker) lookup(name string) *codegen.TaskDef {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.tasks[name]
}

type job struct {
	d   driver.Delivery
	m   *driver.Message
	def *codegen.TaskDef
}

// Run consumes and runs tasks until ctx ends, then shuts down gracefully: it
// takes no new messages, returns held ones to the queue, and lets running
// tasks finish within ShutdownTimeout. It returns nil after a graceful
// shutdown, or the transport's error if consuming failed.
func (w *Worker) Run(ctx context.Context) error {
	consumeCtx, stopConsume := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsume()
	deliveries, err := w.app.broker.Consume(consumeCtx, w.opts.Queues, w.opts.Prefetch)
	if err != nil {
		return fmt.Errorf("taskgen: worker: consume %v: %w", w.opts.Queues, err)
	}
	w.log.Info("worker ready", "queues", w.opts.Queues, "concurrency", w.opts.Concurrency, "tasks", w.Tasks())
	if w.events != nil { // Celery events: worker-online now, heartbeats until Run returns
		w.events.Start()
		defer w.closeEvents()
	}
	w.ctl.init()
	if ct, ok := w.app.broker.(driver.ControlTransport); ok {
		go w.serveControl(consumeCtx, ct)
	}

	taskCtx, cancelTasks := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelTasks(nil)
	abandon := make(chan struct{})
	// The pool goroutines receive deliveries themselves (one at a time, see
	// poolState.lead) and run the common case (due now, no rate limit) at
	// once: no dispatcher goroutine between the transport and the task, one
	// goroutine wake-up fewer per task.
	p := &poolState{deliveries: deliveries, work: make(chan job), lead: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	p.lead <- struct{}{}
	var workers sync.WaitGroup
	for i := 0; i < w.opts.Concurrency; i++ {
		workers.Go(func() {
			w.serve(ctx, taskCtx, abandon, p)
			for j := range p.work {
				w.execute(taskCtx, abandon, j)
			}
		})
	}

	var runErr error
	select {
	case <-ctx.Done():
	case <-p.stopped:
		if ctx.Err() == nil {
			runErr = errors.New("taskgen: worker: transport stopped delivering")
		}
	}

	w.log.Info("worker shutting down", "running", w.active.Load())
	// No dispatch starts after this: the dispatcher's token is ours once a
	// dispatch under way (it may still park or hold a task) is done, so that
	// parking and held are final below.
	close(p.quit)
	<-p.lead
	stopConsume()
	// Return what the transport still buffers, and held ETA tasks.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for d := range deliveries {
			w.requeue(d)
		}
	}()
	w.parking.Wait()
	w.releaseHeld()
	close(p.work)
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.opts.ShutdownTimeout):
		w.log.Warn("shutdown timeout: cancelling running tasks and returning them to the queue", "running", w.active.Load())
		cancelTasks(errors.New("worker shutdown"))
		close(abandon)
		<-done
	}
	<-drained
	w.log.Info("worker stopped", "stats", w.Stats())
	return runErr
}

func (w *Worker) requeue(d driver.Delivery) {
	if err := d.Requeue(); err != nil {
		w.log.Error("requeue failed", "err", err)
	}
}

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
		wait := eta.Sub(w.app.clock.Now())
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
	return job{d: d, m: m, def: def}, true
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
}

type outcome struct {
	value any
	err   error
}

// execute runs one task and settles its message.
func (w *Worker) execute(taskCtx context.Context, abandon <-chan struct{}, j job) {
	m, def, d := j.m, j.def, j.d
	h := &m.Headers
	now := w.app.clock.Now()
	if !h.Expires.IsZero() && now.After(h.Expires) {
		w.revokedTask(taskCtx, m, "expired", "task expired, revoked")
		w.ack(d, m)
		return
	}
	if w.ctl.isRevoked(h.ID) {
		w.revokedTask(taskCtx, m, "revoked", "task revoked, not run")
		w.ack(d, m)
		return
	}
	args := def.NewArgs()
	if _, err := wire.DecodeBody(m.ContentType, h.Compression, m.Body, args); err != nil {
		reason := fmt.Sprintf("task %s: cannot decode arguments: %v", h.Task, err)
		w.failed.Add(1)
		w.deadLetter(d, m, reason)
		w.storeFailure(taskCtx, m, def, &driver.ExceptionInfo{Type: "DecodeError", Message: []any{reason}, Module: "kombu.exceptions"}, "")
		return
	}
	acked := false
	if !def.AcksLate {
		w.ack(d, m)
		acked = true
	}
	info := &TaskInfo{ID: h.ID, Name: h.Task, Retries: h.Retries, ETA: h.ETA, Expires: h.Expires, RootID: h.RootID,
		ParentID: h.ParentID, GroupID: h.Group, Queue: queueOf(m, def, w.app), Hostname: w.opts.Hostname,
		Headers: h.Extra, Redelivered: m.Redelivered}

	w.active.Add(1)
	w.obs.TaskStarted(m)
	start := time.Now()
	out, abandoned := w.run(taskCtx, abandon, def, m, args, info, start)
	runtime := time.Since(start)
	w.active.Add(-1)
	if n := w.perTask[def.Name]; n != nil {
		n.Add(1)
	}

	if abandoned {
		// The worker is stopping and the task did not finish in time: its
		// message goes back to the queue, never lost.
		w.log.Warn("task abandoned at shutdown, returned to the queue", "task", h.Task, "id", h.ID)
		if acked {
			cp := *m
			cp.Redelivered = true
			if err := w.app.publish(context.Background(), queueOf(m, def, w.app), &cp); err != nil {
				w.log.Error("re-publish of abandoned task failed", "id", h.ID, "err", err)
			}
		} else {
			w.requeue(d)
		}
		return
	}
	w.settle(taskCtx, m, def, out, runtime)
	if !acked {
		w.ack(d, m)
	}
}

func (w *Worker) ack(d driver.Delivery, m *driver.Message) {
	if err := d.Ack(); err != nil {
		w.log.Error("ack failed", "task", m.Headers.Task, "id", m.Headers.ID, "err", err)
	}
}

// run calls the task with its time limits and panic recovery. abandoned is
// true when the worker gave up on it at shutdown.
func (w *Worker) run(taskCtx context.Context, abandon <-chan struct{}, def *codegen.TaskDef, m *driver.Message, args wire.Args, info *TaskInfo, start time.Time) (out outcome, abandoned bool) {
	h := &m.Headers
	hard, soft := def.TimeLimit, def.SoftTimeLimit
	if h.TimeLimit[0] > 0 {
		hard = time.Duration(h.TimeLimit[0] * float64(time.Second))
	}
	if h.TimeLimit[1] > 0 {
		soft = time.Duration(h.TimeLimit[1] * float64(time.Second))
	}
	ctx, cancel := context.WithCancelCause(WithTaskInfo(taskCtx, info))
	defer cancel(nil)
	w.ctl.track(h.ID, &runningTask{info: info, m: m, start: start, cancel: cancel})
	defer w.ctl.untrack(h.ID)
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- outcome{err: &PanicError{Value: r, Stack: string(debug.Stack())}}
			}
		}()
		v, err := def.Run(ctx, args)
		done <- outcome{value: v, err: err}
	}()
	var softC, hardC <-chan time.Time
	if soft > 0 {
		t := time.NewTimer(soft)
		defer t.Stop()
		softC = t.C
	}
	if hard > 0 {
		t := time.NewTimer(hard)
		defer t.Stop()
		hardC = t.C
	}
	for {
		select {
		case out = <-done:
			if errors.Is(context.Cause(ctx), ErrRevoked) {
				out = outcome{err: ErrRevoked}
			}
			return out, false
		case <-softC:
			cancel(ErrSoftTimeLimitExceeded)
			softC = nil
		case <-hardC:
			cancel(ErrTimeLimitExceeded)
			return outcome{err: celeryError("celery.exceptions", "TimeLimitExceeded", fmt.Errorf("%w: hard time limit (%s) exceeded", ErrTimeLimitExceeded, hard))}, false
		case <-abandon:
			return outcome{}, true
		}
	}
}

// settle records the outcome of a run: result, retry or failure.
func (w *Worker) settle(ctx context.Context, m *driver.Message, def *codegen.TaskDef, out outcome, runtime time.Duration) {
	h := &m.Headers
	if out.err == nil {
		w.succeeded.Add(1)
		w.obs.TaskSucceeded(m, out.value, runtime)
		if w.log.Enabled(ctx, slog.LevelInfo) { // Repr formats the result: only when logged
			w.log.Info("task succeeded", "task", h.Task, "id", h.ID, "runtime", runtime.Round(time.Microsecond), "result", wire.Repr(out.value))
		}
		if !def.IgnoreResult && !h.IgnoreResult {
			w.store(ctx, &driver.ResultDoc{Status: StateSuccess, Result: out.value, TaskID: h.ID, DateDone: w.app.clock.Now(), ParentID: h.ParentID, GroupID: h.Group})
		}
		return
	}
	err := out.err
	if errors.Is(err, ErrRevoked) {
		w.revokedTask(ctx, m, "terminated", "task terminated by revoke")
		return
	}
	var re *RetryError
	explicit := errors.As(err, &re)
	if explicit || def.Retry.ShouldAutoretry(err) {
		if w.retry(ctx, m, def, err, re) {
			return
		}
		if explicit && re.Err != nil {
			err = re.Err
		} else if explicit {
			err = celeryError("celery.exceptions", "MaxRetriesExceededError", fmt.Errorf("can't retry %s[%s]: max retries exceeded", h.Task, h.ID))
		}
	}
	w.failed.Add(1)
	tb := ""
	var pe *PanicError
	if errors.As(err, &pe) {
		tb = pe.Stack
	}
	w.log.Error("task failed", "task", h.Task, "id", h.ID, "runtime", runtime.Round(time.Microsecond), "err", err)
	exc := ExceptionFromError(err)
	w.obs.TaskFailed(m, exc, tb)
	w.storeFailure(ctx, m, def, exc, tb)
}

// retry re-publishes the task with retries+1 and a countdown. It returns false
// when the retries are exhausted or the re-publish failed.
func (w *Worker) retry(ctx context.Context, m *driver.Message, def *codegen.TaskDef, cause error, re *RetryError) bool {
	h := &m.Headers
	max := def.Retry.MaxRetries
	if re != nil && re.MaxRetries != nil {
		max = *re.MaxRetries
	}
	if codegen.Exhausted(h.Retries, max) {
		w.log.Warn("task retries exhausted", "task", h.Task, "id", h.ID, "retries", h.Retries, "max_retries", max)
		return false
	}
	var countdown time.Duration
	if re != nil && re.HasCount {
		countdown = re.Countdown
	} else {
		countdown = def.Retry.Countdown(h.Retries, w.opts.Rand)
	}
	now := w.app.clock.Now()
	eta := now.Add(countdown)
	nm := *m
	nm.Redelivered = false
	nm.Headers.Retries = h.Retries + 1
	nm.Headers.ETA = eta
	if nm.Headers.ParentID == "" {
		nm.Headers.ParentID = h.ID
	}
	queue := queueOf(m, def, w.app)
	var err error
	if dl, ok := w.app.broker.(driver.Delayer); ok && countdown > w.opts.DelayHorizon {
		err = dl.Defer(ctx, queue, &nm, eta)
	} else {
		err = w.app.publish(ctx, queue, &nm)
	}
	if err != nil {
		w.log.Error("retry could not be published", "task", h.Task, "id", h.ID, "err", err)
		return false
	}
	w.retried.Add(1)
	cause0 := cause
	if re != nil && re.Err != nil {
		cause0 = re.Err
	}
	w.log.Warn("task retry", "task", h.Task, "id", h.ID, "retry", nm.Headers.Retries, "max_retries", max, "countdown", countdown.Round(time.Millisecond), "err", cause0)
	excInfo := ExceptionFromError(cause0)
	w.obs.TaskRetried(m, excInfo, "")
	w.store(ctx, &driver.ResultDoc{Status: StateRetry, Result: excInfo, TaskID: h.ID, ParentID: nm.Headers.ParentID,
		Children: []any{[]any{[]any{h.ID, nil}, nil}}})
	return true
}

// revokedTask records a task that was not run or was stopped: why is
// "expired", "revoked" (skipped) or "terminated", as the REVOKED document's
// TaskRevokedError message and the task-revoked event's flags say.
func (w *Worker) revokedTask(ctx context.Context, m *driver.Message, why, logMsg string) {
	h := &m.Headers
	w.revoked.Add(1)
	w.obs.TaskRevoked(m, why == "expired", why == "terminated")
	w.log.Info(logMsg, "task", h.Task, "id", h.ID)
	w.store(ctx, &driver.ResultDoc{Status: StateRevoked, TaskID: h.ID, DateDone: w.app.clock.Now(), ParentID: h.ParentID,
		Result: &driver.ExceptionInfo{Type: "TaskRevokedError", Message: []any{why}, Module: "celery.exceptions"}})
}

func (w *Worker) storeFailure(ctx context.Context, m *driver.Message, def *codegen.TaskDef, exc *driver.ExceptionInfo, tb string) {
	if def != nil && def.IgnoreResult {
		return
	}
	w.store(ctx, &driver.ResultDoc{Status: StateFailure, Result: exc, Traceback: tb, TaskID: m.Headers.ID, DateDone: w.app.clock.Now(), ParentID: m.Headers.ParentID, GroupID: m.Headers.Group})
}

func (w *Worker) store(ctx context.Context, doc *driver.ResultDoc) {
	if err := w.app.storeResult(ctx, doc); err != nil {
		w.log.Error("storing result failed", "id", doc.TaskID, "state", doc.Status, "err", err)
	}
}

// rateWait reserves the next start slot of def under its rate limit (a token
// bucket of capacity one, per worker and task, as in Celery) and returns how
// long the task must wait for it.
func (w *Worker) rateWait(def *codegen.TaskDef) time.Duration {
	if def.RateLimit.IsZero() {
		return 0
	}
	interval := def.RateLimit.Per / time.Duration(def.RateLimit.N)
	now := time.Now()
	w.limitMu.Lock()
	defer w.limitMu.Unlock()
	if w.limiters == nil {
		w.limiters = map[string]time.Time{}
	}
	next := w.limiters[def.Name]
	if next.Before(now) {
		next = now
	}
	w.limiters[def.Name] = next.Add(interval)
	return next.Sub(now)
}
