package runtime

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// eventDispatcherOptions configure an eventDispatcher.
type eventDispatcherOptions struct {
	// Hostname is the worker's nodename, the hostname field of every event.
	Hostname string
	// HeartbeatInterval is the interval of worker-heartbeat events and the
	// freq field (default driver.DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// QueueSize bounds the events waiting to be published (default 8192);
	// when it is full new events are dropped and counted, never waited for.
	QueueSize int
	// BatchSize is the largest list of task events published as one
	// "task.multi" message when several are waiting (default 512, ~120 KB
	// of JSON; Celery flushes at 24, and its receivers, Flower's included,
	// read lists of any length); 1 publishes each event on its own. Each
	// message costs the worker and the broker a write, a round trip and a
	// routing, so a busy worker spends less on events with longer lists
	// (at 70k tasks/s, 2 ms of events are ~420).
	BatchSize int
	// BatchLinger is how long the sender waits for more task events when
	// fewer than BatchSize are queued, so that a busy worker publishes
	// full task.multi lists instead of one message per wake-up (default
	// 2 ms; negative: publish what is queued at once). It is the most a
	// task event waits beyond its publish.
	BatchLinger time.Duration
	// PublishTimeout bounds one PublishEvent call (default 5 s).
	PublishTimeout time.Duration
	// Stats gives the active and processed figures of worker events; nil
	// sends zeros.
	Stats func() (active, processed int64)
	// TaskEventsOff, when it returns true, drops task-* events (the
	// disable_events control command); worker events still go out.
	TaskEventsOff func() bool
	// Logger receives publishing errors (default slog.Default()).
	Logger *slog.Logger
	// Now is the time source of event timestamps (default time.Now).
	Now func() time.Time
}

// eventDispatcher publishes a worker's Celery events (WIRE §6) through an
// [EventTransport]: worker-online, worker-heartbeat every HeartbeatInterval,
// worker-offline, and the task-* events of the [Observer] hooks it
// implements. Worker.Run starts and stops the dispatcher of its worker
// unless WorkerOptions.WithoutEvents is set.
//
// Hooks never block a task: they append a small record to a bounded queue
// (a slice under a mutex) that one sender goroutine takes whole, encodes and
// publishes. When the queue is full the event is dropped and counted
// ([eventDispatcher.Dropped]).
//
// Published messages share one Headers map ({"hostname": nodename}):
// transports must not modify it.
type eventDispatcher struct {
	tr    driver.EventTransport
	opts  eventDispatcherOptions
	pid   int
	swVer string

	// The queue: hooks append to qbuf; the sender swaps it for its spare
	// buffer, one lock per batch instead of one channel operation per
	// event on each side.
	qmu   sync.Mutex
	qbuf  []event // guarded by qmu: queued events, oldest first
	qheld int     // guarded by qmu: events the sender took and is publishing
	qidle bool    // guarded by qmu: the sender waits on wake for an event
	// wake wakes the sender: the first event after it went idle, and a
	// queue a quarter full (which cuts a lingering sender's sleep short).
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	hbStop  chan struct{}
	hbDone  chan struct{}
	started atomic.Bool
	closed  atomic.Bool
	once    sync.Once

	clock   int64     // Lamport clock; owned by the sender goroutine
	lastLog time.Time // last publishing error logged; owned by the sender
	// The sender's publish context, renewed every PublishTimeout/2.
	pubCtx    context.Context
	pubCancel context.CancelFunc
	pubRenew  time.Time
	headers   map[string]any // {"hostname": nodename}, shared by every message
	// driver.UTCOffset cache of the sender: zones change offset on the hour.
	offHour, offVal int64
	scratch         []byte // the sender's repr buffer
	// The start of every event's JSON up to the clock's value, for the
	// utcoffset headOff (the sender's).
	head    []byte
	headOff int
	// The sender's message and body buffer, reused for every publish:
	// EventTransport.PublishEvent does not keep them after it returns.
	msg     driver.RawMessage
	body    []byte
	sent    atomic.Int64
	dropped atomic.Int64
	failed  atomic.Int64
}

var _ Observer = (*eventDispatcher)(nil)

// event is what a hook records; the sender goroutine turns it into JSON.
type event struct {
	typ  string
	ts   time.Time
	uuid string

	// task-received
	name, args, kwargs, rootID, parentID, routingKey string
	retries                                          int
	eta, expires                                     time.Time
	// task-received of a group member: its group id and index, and the
	// message, whose embed names the chord body (read by the sender).
	group      string
	groupIndex *int
	member     *driver.Message

	// task-succeeded
	result  any
	runtime time.Duration

	// task-failed, task-retried
	exc *driver.ExceptionInfo
	tb  string

	// task-rejected, task-revoked
	terminated, expired bool

	// task-received, -started, -succeeded, -failed, -retried: the
	// message's W3C traceparent header, "" when it has none.
	traceparent string
}

// newEventDispatcher returns a dispatcher publishing on tr. Call Start to
// send worker-online and begin heartbeats, and Close to send worker-offline
// and flush.
func newEventDispatcher(tr driver.EventTransport, o eventDispatcherOptions) *eventDispatcher {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = driver.DefaultHeartbeatInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.BatchLinger == 0 {
		o.BatchLinger = 2 * time.Millisecond
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &eventDispatcher{
		tr: tr, opts: o, pid: os.Getpid(), swVer: softwareVersion(),
		wake:    make(chan struct{}, 1),
		headers: map[string]any{"hostname": o.Hostname},
		stop:    make(chan struct{}), done: make(chan struct{}),
		hbStop: make(chan struct{}), hbDone: make(chan struct{}),
	}
}

// Sent returns the number of events published so far.
func (d *eventDispatcher) Sent() int64 { return d.sent.Load() }

// Dropped returns the number of events dropped because the queue was full
// or the dispatcher was closed.
func (d *eventDispatcher) Dropped() int64 { return d.dropped.Load() }

// Failed returns the number of events the transport refused.
func (d *eventDispatcher) Failed() int64 { return d.failed.Load() }

// Start starts the sender, sends worker-online and starts the heartbeat
// loop. It is a no-op after the first call.
func (d *eventDispatcher) Start() {
	if !d.started.CompareAndSwap(false, true) {
		return
	}
	go d.send()
	d.enqueue(event{typ: driver.EventWorkerOnline})
	go d.heartbeats()
}

// Heartbeat sends a worker-heartbeat event now (the heartbeat control command).
func (d *eventDispatcher) Heartbeat() { d.enqueue(event{typ: driver.EventWorkerHeartbeat}) }

func (d *eventDispatcher) heartbeats() {
	defer close(d.hbDone)
	t := time.NewTicker(d.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.Heartbeat()
		case <-d.hbStop:
			return
		}
	}
}

// Close stops heartbeats, sends worker-offline and waits until the events
// queued before it are published, or ctx ends. Later hooks are dropped.
func (d *eventDispatcher) Close(ctx context.Context) error {
	var err error
	d.once.Do(func() {
		if !d.started.Load() {
			d.closed.Store(true)
			return
		}
		close(d.hbStop)
		<-d.hbDone
		// worker-offline is queued even when the queue is full.
		off := event{typ: driver.EventWorkerOffline, ts: d.opts.Now()}
		d.qmu.Lock()
		d.qbuf = append(d.qbuf, off)
		d.qmu.Unlock()
		d.closed.Store(true)
		close(d.stop)
		select {
		case <-d.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}

func (d *eventDispatcher) enqueue(ev event) {
	if d.opts.TaskEventsOff != nil && isTaskEvent(ev.typ) && d.opts.TaskEventsOff() {
		return
	}
	if d.closed.Load() {
		d.dropped.Add(1)
		return
	}
	if ev.ts.IsZero() {
		ev.ts = d.opts.Now()
	}
	d.qmu.Lock()
	n := len(d.qbuf)
	if n+d.qheld >= d.opts.QueueSize {
		// Full, counting what the sender holds: QueueSize bounds the
		// events not yet published.
		d.qmu.Unlock()
		d.dropped.Add(1)
		return
	}
	d.qbuf = append(d.qbuf, ev)
	// Wake an idle sender, or cut a lingering one's BatchLinger short when
	// the queue fills a quarter: it falls behind.
	signal := d.qidle || n+1 == max(d.opts.QueueSize/4, 1)
	d.qidle = false
	d.qmu.Unlock()
	if signal {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// TaskReceived sends task-received.
func (d *eventDispatcher) TaskReceived(m *driver.Message) {
	h := &m.Headers
	ev := event{typ: driver.EventTaskReceived, uuid: h.ID, name: h.Task, args: h.ArgsRepr, kwargs: h.KwargsRepr,
		rootID: h.RootID, parentID: h.ParentID, retries: h.Retries, eta: h.ETA, expires: h.Expires, routingKey: m.RoutingKey,
		traceparent: traceparentOf(m)}
	if h.Group != "" {
		ev.group, ev.groupIndex, ev.member = h.Group, h.GroupIndex, m
	}
	d.enqueue(ev)
}

// TaskStarted sends task-started.
func (d *eventDispatcher) TaskStarted(m *driver.Message) {
	d.enqueue(event{typ: driver.EventTaskStarted, uuid: m.Headers.ID, traceparent: traceparentOf(m)})
}

// TaskSucceeded sends task-succeeded with the result's repr and the runtime.
func (d *eventDispatcher) TaskSucceeded(m *driver.Message, result any, runtime time.Duration) {
	d.enqueue(event{typ: driver.EventTaskSucceeded, uuid: m.Headers.ID, result: result, runtime: runtime, traceparent: traceparentOf(m)})
}

// TaskFailed sends task-failed with the exception's repr and the traceback.
func (d *eventDispatcher) TaskFailed(m *driver.Message, exc *driver.ExceptionInfo, traceback string) {
	d.enqueue(event{typ: driver.EventTaskFailed, uuid: m.Headers.ID, exc: exc, tb: traceback, traceparent: traceparentOf(m)})
}

// TaskRetried sends task-retried with the cause's repr.
func (d *eventDispatcher) TaskRetried(m *driver.Message, exc *driver.ExceptionInfo, traceback string) {
	d.enqueue(event{typ: driver.EventTaskRetried, uuid: m.Headers.ID, exc: exc, tb: traceback, traceparent: traceparentOf(m)})
}

// TaskRejected sends task-rejected (requeue false: the message is set aside).
func (d *eventDispatcher) TaskRejected(m *driver.Message, _ string) {
	d.enqueue(event{typ: driver.EventTaskRejected, uuid: m.Headers.ID})
}

// TaskRevoked sends task-revoked.
func (d *eventDispatcher) TaskRevoked(m *driver.Message, expired, terminated bool) {
	d.enqueue(event{typ: driver.EventTaskRevoked, uuid: m.Headers.ID, expired: expired, terminated: terminated})
}

// traceparentOf returns m's W3C traceparent header, as runtime/otel and
// Python's OpenTelemetry instrumentation put it in the protocol-v2
// headers, "" when it has none. Task events carry it so that monitors can
// link their figures to traces (taskmon's exemplars).
func traceparentOf(m *driver.Message) string {
	if len(m.Headers.Extra) == 0 {
		return ""
	}
	tp, _ := m.Headers.Extra["traceparent"].(string)
	return tp
}

// chordBodyID returns the id of the task a chord header member's embed
// names as the chord body (a chain body's first step), or "" when m is no
// chord member.
func chordBodyID(m *driver.Message) string {
	raw, err := wire.BodyEmbed(m.ContentType, m.Headers.Compression, m.Body)
	if err != nil {
		return ""
	}
	wf, err := decodeEmbed(m.ContentType, raw)
	if err != nil || wf == nil || wf.chord == nil {
		return ""
	}
	d := wf.chord
	for {
		kw, _ := d["kwargs"].(map[string]any)
		switch typ, _ := d["subtask_type"].(string); typ {
		case "":
			opts, _ := d["options"].(map[string]any)
			id, _ := opts["task_id"].(string)
			return id
		case "chain":
			tasks := asList(kw["tasks"])
			if len(tasks) == 0 {
				return ""
			}
			if d, _ = tasks[0].(map[string]any); d == nil {
				return ""
			}
		default: // a group or chord body: no one task
			return ""
		}
	}
}

// send is the sender goroutine: it takes the queued events in order,
// batching task events into task.multi lists.
func (d *eventDispatcher) send() {
	defer close(d.done)
	defer func() {
		if d.pubCancel != nil {
			d.pubCancel()
		}
	}()
	// linger waits BatchLinger for a batch to fill.
	var linger *time.Timer
	if d.opts.BatchLinger > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
		defer linger.Stop()
	}
	// sleep waits BatchLinger, or until woken or Close.
	sleep := func() {
		linger.Reset(d.opts.BatchLinger)
		select {
		case <-linger.C:
		case <-d.wake:
			linger.Stop()
		case <-d.stop:
			linger.Stop()
		}
	}
	var spare []event
	// gathering: events were just published. When the queue is empty then,
	// the sender sleeps one BatchLinger before it goes idle: a busy
	// worker's hooks then find it asleep on its timer and never wake it.
	// lingered: the sender slept since its last take, so what is queued
	// goes out now.
	gathering, lingered := false, false
	for {
		stopping := false
		select {
		case <-d.stop:
			stopping = true
		default:
		}
		d.qmu.Lock()
		n := len(d.qbuf)
		switch {
		case n == 0 && stopping:
			d.qmu.Unlock()
			return
		case n == 0 && gathering && linger != nil:
			d.qmu.Unlock()
			gathering, lingered = false, true
			sleep()
			continue
		case n == 0:
			d.qidle = true
			d.qmu.Unlock()
			select {
			case <-d.wake:
			case <-d.stop:
			}
			continue
		case n < d.opts.BatchSize && linger != nil && !lingered && !stopping:
			// Wait for a fuller batch.
			d.qmu.Unlock()
			lingered = true
			sleep()
			continue
		}
		got := d.qbuf
		d.qbuf, d.qheld = spare[:0], n
		d.qmu.Unlock()
		d.publishAll(got)
		clear(got) // drop the results and messages the events point to
		spare = got
		d.qmu.Lock()
		d.qheld = 0
		d.qmu.Unlock()
		gathering, lingered = true, false
	}
}

// publishAll publishes evs in order: runs of task events as task.multi
// lists of up to BatchSize, worker events one by one.
func (d *eventDispatcher) publishAll(evs []event) {
	for i := 0; i < len(evs); {
		if !isTaskEvent(evs[i].typ) || d.opts.BatchSize <= 1 {
			d.publishOne(&evs[i])
			i++
			continue
		}
		j := i + 1
		for j < len(evs) && j-i < d.opts.BatchSize && isTaskEvent(evs[j].typ) {
			j++
		}
		if j-i == 1 {
			d.publishOne(&evs[i])
		} else {
			buf := append(d.body[:0], '[')
			for k := i; k < j; k++ {
				if k > i {
					buf = append(buf, ", "...)
				}
				buf = d.appendEvent(buf, &evs[k])
			}
			buf = append(buf, ']')
			d.publish(&d.msg, buf, "task.multi", j-i)
			d.body = buf
		}
		i = j
	}
}

func isTaskEvent(typ string) bool { return strings.HasPrefix(typ, "task-") }

func (d *eventDispatcher) publishOne(ev *event) {
	d.body = d.appendEvent(d.body[:0], ev)
	d.publish(&d.msg, d.body, driver.EventRoutingKey(ev.typ), 1)
}

func (d *eventDispatcher) publish(msg *driver.RawMessage, body []byte, routingKey string, n int) {
	*msg = driver.RawMessage{
		ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8,
		Headers: d.headers, Body: body,
		Exchange: driver.EventExchange, RoutingKey: routingKey,
	}
	// One deadline context serves the publishes of half a PublishTimeout, so
	// each call gets between half and all of it without a timer per event.
	now := time.Now()
	if d.pubCtx == nil || now.After(d.pubRenew) {
		if d.pubCancel != nil {
			d.pubCancel()
		}
		d.pubCtx, d.pubCancel = context.WithDeadline(context.Background(), now.Add(d.opts.PublishTimeout))
		d.pubRenew = now.Add(d.opts.PublishTimeout / 2)
	}
	if err := d.tr.PublishEvent(d.pubCtx, msg); err != nil {
		total := d.failed.Add(int64(n))
		// At most one log line every 30 s while the transport fails.
		if now.Sub(d.lastLog) >= 30*time.Second {
			d.lastLog = now
			d.opts.Logger.Warn("publishing event failed", "routing_key", routingKey, "failed_so_far", total, "err", err)
		}
		return
	}
	d.sent.Add(int64(n))
}

// workerEventLinger is the BatchLinger of workers' event dispatchers (0:
// the default; the benchmarks set -1 to compare).
var workerEventLinger time.Duration

// newWorkerEvents returns the event dispatcher of w (wired in NewWorker).
func newWorkerEvents(w *Worker, et driver.EventTransport) *eventDispatcher {
	return newEventDispatcher(et, eventDispatcherOptions{
		Hostname:          w.opts.Hostname,
		HeartbeatInterval: w.opts.HeartbeatInterval,
		BatchLinger:       workerEventLinger,
		Logger:            w.log,
		TaskEventsOff:     w.ctl.disabled.Load, // control: disable_events / enable_events
		Stats: func() (active, processed int64) {
			s := w.Stats()
			// Celery's processed counts the tasks accepted for running.
			return s.Active, s.Active + s.Succeeded + s.Failed + s.Retried
		},
	})
}

// closeEvents sends worker-offline and flushes the queued events, waiting at
// most 5 s for a slow transport.
func (w *Worker) closeEvents() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.events.Close(ctx); err != nil {
		w.log.Warn("events not all published at shutdown", "err", err)
	}
	if n := w.events.Dropped(); n > 0 {
		w.log.Warn("events dropped: the event queue was full", "dropped", n)
	}
}

// observers calls each observer in turn.
type observers [2]Observer

// Heartbeat forwards the heartbeat control command to the observers that
// send heartbeats (the event dispatcher).
func (o observers) Heartbeat() {
	for _, x := range o {
		if hb, ok := x.(interface{ Heartbeat() }); ok {
			hb.Heartbeat()
		}
	}
}

func (o observers) TaskReceived(m *driver.Message) { o[0].TaskReceived(m); o[1].TaskReceived(m) }
func (o observers) TaskStarted(m *driver.Message)  { o[0].TaskStarted(m); o[1].TaskStarted(m) }
func (o observers) TaskSucceeded(m *driver.Message, r any, d time.Duration) {
	o[0].TaskSucceeded(m, r, d)
	o[1].TaskSucceeded(m, r, d)
}
func (o observers) TaskFailed(m *driver.Message, e *driver.ExceptionInfo, tb string) {
	o[0].TaskFailed(m, e, tb)
	o[1].TaskFailed(m, e, tb)
}
func (o observers) TaskRetried(m *driver.Message, e *driver.ExceptionInfo, tb string) {
	o[0].TaskRetried(m, e, tb)
	o[1].TaskRetried(m, e, tb)
}
func (o observers) TaskRejected(m *driver.Message, reason string) {
	o[0].TaskRejected(m, reason)
	o[1].TaskRejected(m, reason)
}
func (o observers) TaskRevoked(m *driver.Message, expired, terminated bool) {
	o[0].TaskRevoked(m, expired, terminated)
	o[1].TaskRevoked(m, expired, terminated)
}
