package monitor

import (
	"container/list"
	"math"
	"sync"
	"time"

	"github.com/taskgen/taskgen/internal/anynum"
	"github.com/taskgen/taskgen/runtime/driver"
)

// Task states as the monitor shows them: Celery's, with PENDING for a task
// only seen in a task-sent event.
const (
	StatePending  = "PENDING"
	StateReceived = "RECEIVED"
	StateStarted  = "STARTED"
	StateSuccess  = "SUCCESS"
	StateFailure  = "FAILURE"
	StateRetry    = "RETRY"
	StateRevoked  = "REVOKED"
	StateRejected = "REJECTED"
)

// States lists the task states in the order the UI offers them.
var States = []string{StatePending, StateReceived, StateStarted, StateSuccess, StateFailure, StateRetry, StateRevoked, StateRejected}

// rank orders states as celery.events.state does: an event whose state ranks
// below the task's current one (it happened before, arriving late) only
// fills in fields. RETRY is outside the order: it always applies, and a
// task in RETRY takes any next state.
func rank(state string) int {
	switch state {
	case StatePending:
		return 0
	case StateReceived:
		return 1
	case StateRejected:
		return 2
	case StateStarted:
		return 3
	case StateRevoked:
		return 4
	case StateSuccess, StateFailure:
		return 5
	}
	return -1
}

var eventState = map[string]string{
	driver.EventTaskSent:      StatePending,
	driver.EventTaskReceived:  StateReceived,
	driver.EventTaskStarted:   StateStarted,
	driver.EventTaskSucceeded: StateSuccess,
	driver.EventTaskFailed:    StateFailure,
	driver.EventTaskRetried:   StateRetry,
	driver.EventTaskRevoked:   StateRevoked,
	driver.EventTaskRejected:  StateRejected,
}

// TimelineEntry is one state change of a task.
type TimelineEntry struct {
	State     string  `json:"state"`            // the state the event set
	Timestamp float64 `json:"timestamp"`        // unix seconds, utcoffset-adjusted
	Worker    string  `json:"worker,omitempty"` // nodename of the sender
}

// maxTimeline bounds the timeline of one task (a task retried forever).
const maxTimeline = 64

// Task is what the monitor knows of one task, from its events. Times are
// unix seconds adjusted by the event's utcoffset as Celery's receivers do;
// zero means not seen.
type Task struct {
	UUID       string          // task id
	Name       string          // task name (from task-received or task-sent)
	State      string          // one of States
	Args       string          // argsrepr
	Kwargs     string          // kwargsrepr
	Sent       float64         // task-sent time
	Received   float64         // task-received time
	Started    float64         // task-started time
	Succeeded  float64         // task-succeeded time
	Failed     float64         // task-failed time
	Retried    float64         // task-retried time
	Revoked    float64         // task-revoked time
	Rejected   float64         // task-rejected time
	Timestamp  float64         // of the event that set the state
	Runtime    float64         // seconds; from task-succeeded
	Result     string          // repr
	Exception  string          // repr
	Traceback  string          // as sent by the worker
	Worker     string          // nodename of the worker that handled it
	Client     string          // hostname of a task-sent event
	Retries    int             // retries so far
	ParentID   string          // parent_id: the task whose result this one follows
	RootID     string          // root_id: the first task of its workflow
	Group      string          // group id ("group", sent by Go workers; Celery's events have none)
	GroupIndex int             // position in Group ("group_index"); -1 when not given
	Chord      string          // a chord header member's chord body id ("chord", Go workers)
	ETA        string          // ISO-8601, as sent
	Expires    string          // ISO-8601, as sent
	Exchange   string          // from task-sent
	RoutingKey string          // queue (task-sent; Go workers' task-received)
	Clock      int64           // Lamport clock of the last event
	Terminated bool            // task-revoked
	Expired    bool            // task-revoked
	Timeline   []TimelineEntry // state changes in time order (at most 64)

	hasRuntime bool
	seq        uint64
	elem       *list.Element
	// traceID and spanID are the task's trace context, from its events'
	// trace_id and span_id, or traceparent, fields (the latest given).
	traceID, spanID string
	// prefetchedIn: a task-received (without an ETA) counts in these
	// series' flower_worker_prefetched_tasks until its task-started.
	prefetchedIn *workerTaskStats
	// wt caches the per-worker, per-name series of the latest event.
	wt *workerTaskStats
}

// HasRuntime reports whether a task-succeeded event gave the runtime.
func (t Task) HasRuntime() bool { return t.hasRuntime }

func (t *Task) clone() Task {
	c := *t
	c.Timeline = append([]TimelineEntry(nil), t.Timeline...)
	c.elem, c.wt, c.prefetchedIn = nil, nil, nil
	return c
}

// Worker is what the monitor knows of one worker, from its events.
type Worker struct {
	Hostname  string    // nodename, name@host
	Freq      float64   // seconds between heartbeats; 60 until told
	Active    int64     // tasks running (worker events)
	Processed int64     // tasks accepted so far (worker events)
	LoadAvg   []float64 // 1, 5, 15 minutes
	SWIdent   string    // "taskgen", "py-celery"
	SWVer     string    // software version
	SWSys     string    // "Linux"
	PID       int64     // process id
	Clock     int64     // Lamport clock of the last worker event
	// LastHeartbeat is when the last worker event or task event of this
	// worker was received (monitor clock).
	LastHeartbeat time.Time
	// Offline is set by worker-offline and cleared by the next event.
	Offline bool
	// Counted from task events, as Flower does.
	Received, Started, Succeeded, Failed, Retried, Revoked, Rejected int64

	heartbeats bool
	hasActive  bool // a worker event gave active
}

// Alive applies Flower's rule (celery.events.state.Worker.alive): the
// worker has heartbeats and now is before the last one plus freq×2.
// worker-offline clears the heartbeats.
func (w *Worker) Alive(now time.Time) bool {
	if !w.heartbeats {
		return false
	}
	window := time.Duration(w.Freq * 2 * float64(time.Second))
	return now.Before(w.LastHeartbeat.Add(window))
}

// Status is "online" or "offline" at now.
func (w *Worker) Status(now time.Time) string {
	if w.Alive(now) {
		return "online"
	}
	return "offline"
}

// Point is one second of task outcomes.
type Point struct {
	T         int64 `json:"t"`         // unix second
	Succeeded int64 `json:"succeeded"` // task-succeeded events received that second
	Failed    int64 `json:"failed"`    // task-failed events
	Retried   int64 `json:"retried"`   // task-retried events
}

// QueueInfo is the last poll of one queue.
type QueueInfo struct {
	Name    string    `json:"name"`            // queue name
	Ready   int64     `json:"messages"`        // ready messages
	Unacked int64     `json:"unacked"`         // -1 when the transport cannot say
	Polled  time.Time `json:"polled"`          // when
	Err     string    `json:"error,omitempty"` // why the poll failed
}

// historySeconds is how much per-second history the graphs can show.
const historySeconds = 600

// maxNames bounds the task names kept for metrics; further names count
// under "other".
const maxNames = 1000

type bucket struct {
	sec                        int64
	succeeded, failed, retried int64
}

type queueSample struct {
	t      int64
	depths map[string]int64
}

// StateOptions configure a State.
type StateOptions struct {
	// MaxTasks bounds the tasks kept (default 10 000); the oldest seen is
	// evicted first.
	MaxTasks int
	// Now is the monitor's clock (default time.Now); tests inject one.
	Now func() time.Time
	// LocalUTCOffset is the monitor's own utcoffset (hours, positive west),
	// used to adjust event timestamps (default: driver.UTCOffset(Now())).
	LocalUTCOffset func() int
}

// State is the monitor's bounded in-memory view of a broker's events:
// workers, the most recent tasks, per-second outcome counts and queue depths.
// It is safe for concurrent use.
type State struct {
	mu       sync.RWMutex
	opts     StateOptions
	tasks    map[string]*Task
	order    *list.List // of *Task, oldest first
	byRoot   relIndex   // kept tasks by root_id
	byParent relIndex   // kept tasks by parent_id
	byGroup  relIndex   // kept tasks by group id
	byChord  relIndex   // kept chord header members by chord body id
	seq      uint64
	workers  map[string]*Worker
	names    map[string]*nameStats
	wts      map[workerTask]*workerTaskStats // Flower's per-worker, per-name series
	wtOther  map[workerTaskType]int64        // flower_events_total of task-* types Celery does not define
	buckets  [historySeconds]bucket
	queues   map[string]QueueInfo
	samples  []queueSample // ring of queue polls, oldest first
	seen     map[string]bool
	events   int64
	bad      int64
	evicted  int64
	totalOut [3]int64 // succeeded, failed, retried
	started  int64    // unix second the state was made; series start there
}

// NewState returns an empty state.
func NewState(o StateOptions) *State {
	if o.MaxTasks <= 0 {
		o.MaxTasks = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LocalUTCOffset == nil {
		now := o.Now
		o.LocalUTCOffset = func() int { return driver.UTCOffset(now()) }
	}
	return &State{
		opts: o, tasks: map[string]*Task{}, order: list.New(), workers: map[string]*Worker{},
		byRoot: relIndex{}, byParent: relIndex{}, byGroup: relIndex{}, byChord: relIndex{},
		names: map[string]*nameStats{}, wts: map[workerTask]*workerTaskStats{}, wtOther: map[workerTaskType]int64{}, queues: map[string]QueueInfo{}, seen: map[string]bool{},
		started: o.Now().Unix(),
	}
}

// Now returns the state's clock reading.
func (s *State) Now() time.Time { return s.opts.Now() }

// MaxTasks returns the bound on kept tasks.
func (s *State) MaxTasks() int { return s.opts.MaxTasks }

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) (float64, bool) {
	f, ok := anynum.Float64(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// reprField turns an event field into display text: strings as they are
// (Celery sends reprs), anything else as its Python repr.
func reprField(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return driver.Repr(v)
}
