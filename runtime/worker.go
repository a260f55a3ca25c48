package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
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
	// Beat, when set, runs alongside the worker and stops with it
	// (Celery's worker -B): a *beat.Scheduler from runtime/beat. Several
	// workers may each run one; the schedulers elect a leader among
	// themselves, so each slot is still sent once.
	Beat interface {
		Run(ctx context.Context) error
	}
	// Middleware wraps the execution of every task, the first outermost
	// (see Middleware); Config.Hooks' Prerun and Postrun run inside it.
	Middleware []Middleware
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
	Held         int64 // received and waiting in memory for their ETA, countdown or rate limit
	// TimeLimited counts the runs stopped at their hard time limit (failed
	// with TimeLimitExceeded, their goroutine left behind), Celery's
	// "Hard time limit exceeded" kills.
	TimeLimited int64
	// SoftTimeLimited counts the runs whose ctx was cancelled at their soft
	// time limit (SoftTimeLimitExceeded).
	SoftTimeLimited int64
}

// Worker consumes task messages and runs the registered tasks.
type Worker struct {
	app     *App
	opts    WorkerOptions
	log     *slog.Logger
	handler Handler // runTask inside WorkerOptions.Middleware and the app's Hooks
	wrapped bool    // handler has middleware
	mu      sync.RWMutex
	tasks   map[string]*codegen.TaskDef

	received, succeeded, failed, retried, revoked, deadLettered, active atomic.Int64
	timeLimited, softTimeLimited                                        atomic.Int64

	heldMu sync.Mutex
	held   map[*heldTask]struct{}

	obs Observer
	ctl controlState
	// parking tracks Defer calls in flight, finished before shutdown ends.
	parking sync.WaitGroup

	events *eventDispatcher // Celery events; nil when off (see events.go)

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
	a.mwMu.Lock()
	mws := append(append(slices.Clone(a.mws), o.Middleware...), a.cfg.Hooks.middleware())
	for _, x := range a.obs {
		w.obs = observers{w.obs, x}
	}
	a.mwMu.Unlock()
	w.handler, w.wrapped = chain(Handler(runTask), mws...)
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
		Active: w.active.Load(), Held: w.heldCount(),
		TimeLimited: w.timeLimited.Load(), SoftTimeLimited: w.softTimeLimited.Load(),
	}
}

func (w *Worker) heldCount() int64 {
	w.heldMu.Lock()
	defer w.heldMu.Unlock()
	return int64(len(w.held))
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
	// received is when the worker took the delivery from the transport
	// (TaskInfo.Received).
	received time.Time
}

// Run consumes and runs tasks until ctx ends or Shutdown is called (also by
// the remote-control shutdown command), then shuts down gracefully: it
// takes no new messages, returns held ones to the queue, and lets running
// tasks finish within ShutdownTimeout. It returns nil after a graceful
// shutdown, or the transport's error if consuming failed.
func (w *Worker) Run(ctx context.Context) error {
	if v, ok := w.opts.Beat.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("taskgen: worker: %w", err)
		}
	}
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
	if w.opts.Beat != nil { // celery worker -B: the scheduler lives as long as the worker consumes
		beatDone := make(chan struct{})
		go func() {
			defer close(beatDone)
			if err := w.opts.Beat.Run(consumeCtx); err != nil {
				w.log.Error("beat: scheduler stopped", "err", err)
			}
		}()
		defer func() { stopConsume(); <-beatDone }()
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
	case <-w.ctl.stopRequested(): // Shutdown, or the remote-control shutdown
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
