package monitor

import (
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

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
	ParentID   string          // parent_id
	RootID     string          // root_id
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
}

// HasRuntime reports whether a task-succeeded event gave the runtime.
func (t Task) HasRuntime() bool { return t.hasRuntime }

func (t *Task) clone() Task {
	c := *t
	c.Timeline = append([]TimelineEntry(nil), t.Timeline...)
	c.elem = nil
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

// runtimeBuckets are the upper bounds (seconds) of the runtime histogram,
// Prometheus client defaults.
var runtimeBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	count  uint64
}

func (h *histogram) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(runtimeBuckets)+1)
	}
	i := sort.SearchFloat64s(runtimeBuckets, v)
	h.counts[i]++
	h.sum += v
	h.count++
}

type nameStats struct {
	states  map[string]int64
	runtime histogram
}

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
	seq      uint64
	workers  map[string]*Worker
	names    map[string]*nameStats
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
		names: map[string]*nameStats{}, queues: map[string]QueueInfo{}, seen: map[string]bool{},
		started: o.Now().Unix(),
	}
}

// Now returns the state's clock reading.
func (s *State) Now() time.Time { return s.opts.Now() }

// MaxTasks returns the bound on kept tasks.
func (s *State) MaxTasks() int { return s.opts.MaxTasks }

// ErrBadEvent reports an event message that is not a JSON object or list of
// objects.
var ErrBadEvent = errors.New("monitor: malformed event")

// HandleMessage applies one event message: a JSON object, or a list of them
// (Celery's task.multi, possibly empty). Events are always JSON (WIRE §6).
func (s *State) HandleMessage(msg *driver.RawMessage) error {
	return s.HandleBody(msg.Body)
}

// HandleBody applies the JSON body of an event message.
func (s *State) HandleBody(body []byte) error {
	body = bytes.TrimSpace(body)
	var evs []map[string]any
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &evs); err != nil {
			s.countBad()
			return fmt.Errorf("%w: %v", ErrBadEvent, err)
		}
	} else {
		var one map[string]any
		if err := json.Unmarshal(body, &one); err != nil || one == nil {
			s.countBad()
			if err == nil {
				err = errors.New("null")
			}
			return fmt.Errorf("%w: %v", ErrBadEvent, err)
		}
		evs = []map[string]any{one}
	}
	if len(evs) == 0 {
		return nil
	}
	now := s.opts.Now()
	local := s.opts.LocalUTCOffset()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		if ev == nil {
			s.bad++
			continue
		}
		s.applyLocked(ev, now, local)
	}
	return nil
}

func (s *State) countBad() {
	s.mu.Lock()
	s.bad++
	s.mu.Unlock()
}

// Event applies one decoded event.
func (s *State) Event(ev map[string]any) {
	now := s.opts.Now()
	local := s.opts.LocalUTCOffset()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(ev, now, local)
}

// AdjustTimestamp is Celery's adjust_timestamp: the sender's timestamp moved
// by the difference between its utcoffset and the receiver's (both hours,
// positive west).
func AdjustTimestamp(ts float64, utcoffset, local int) float64 {
	return ts - float64(utcoffset-local)*3600
}

func (s *State) applyLocked(ev map[string]any, now time.Time, local int) {
	typ := str(ev["type"])
	s.events++
	ts, ok := num(ev["timestamp"])
	if !ok {
		ts = float64(now.UnixNano()) / 1e9
	} else if off, ok := num(ev["utcoffset"]); ok {
		ts = AdjustTimestamp(ts, int(off), local)
	}
	switch {
	case strings.HasPrefix(typ, "worker-"):
		s.workerEventLocked(typ, ev, now)
	case strings.HasPrefix(typ, "task-"):
		s.taskEventLocked(typ, ev, ts, now)
	default:
		s.bad++
	}
}

// maxWorkers bounds the workers kept: events naming further ones update a
// scratch record that is not kept.
const maxWorkers = 4096

func (s *State) worker(hostname string) *Worker {
	w := s.workers[hostname]
	if w == nil {
		w = &Worker{Hostname: hostname, Freq: 60}
		if len(s.workers) >= maxWorkers {
			s.bad++
			return w
		}
		s.workers[hostname] = w
	}
	return w
}

func (s *State) workerEventLocked(typ string, ev map[string]any, now time.Time) {
	host := str(ev["hostname"])
	if host == "" {
		s.bad++
		return
	}
	w := s.worker(host)
	if f, ok := num(ev["freq"]); ok && f > 0 {
		w.Freq = f
	}
	if v, ok := num(ev["active"]); ok {
		w.Active = int64(v)
	}
	if v, ok := num(ev["processed"]); ok {
		w.Processed = int64(v)
	}
	if l, ok := ev["loadavg"].([]any); ok {
		w.LoadAvg = w.LoadAvg[:0]
		for _, x := range l {
			f, _ := num(x)
			w.LoadAvg = append(w.LoadAvg, f)
		}
	}
	if v, ok := ev["sw_ident"].(string); ok {
		w.SWIdent = v
	}
	if v, ok := ev["sw_ver"].(string); ok {
		w.SWVer = v
	}
	if v, ok := ev["sw_sys"].(string); ok {
		w.SWSys = v
	}
	if v, ok := num(ev["pid"]); ok {
		w.PID = int64(v)
	}
	if v, ok := num(ev["clock"]); ok {
		w.Clock = int64(v)
	}
	if typ == driver.EventWorkerOffline {
		w.heartbeats = false
		w.Offline = true
		return
	}
	w.heartbeat(now)
}

func (w *Worker) heartbeat(now time.Time) {
	w.heartbeats = true
	w.Offline = false
	if now.After(w.LastHeartbeat) {
		w.LastHeartbeat = now
	}
}

func (s *State) task(uuid string) *Task {
	t := s.tasks[uuid]
	if t != nil {
		return t
	}
	s.seq++
	t = &Task{UUID: uuid, seq: s.seq}
	t.elem = s.order.PushBack(t)
	s.tasks[uuid] = t
	for len(s.tasks) > s.opts.MaxTasks {
		old := s.order.Front()
		ot := old.Value.(*Task)
		s.order.Remove(old)
		delete(s.tasks, ot.UUID)
		s.evicted++
	}
	return t
}

func (s *State) taskEventLocked(typ string, ev map[string]any, ts float64, now time.Time) {
	uuid := str(ev["uuid"])
	if uuid == "" {
		s.bad++
		return
	}
	host := str(ev["hostname"])
	t := s.task(uuid)
	state, known := eventState[typ]

	// Fields.
	if v, ok := ev["name"].(string); ok && v != "" {
		t.Name = v
	}
	if v, ok := ev["args"]; ok && v != nil {
		t.Args = reprField(v)
	}
	if v, ok := ev["kwargs"]; ok && v != nil {
		t.Kwargs = reprField(v)
	}
	if v, ok := num(ev["retries"]); ok {
		t.Retries = int(v)
	}
	for _, f := range [...]struct {
		key string
		dst *string
	}{{"root_id", &t.RootID}, {"parent_id", &t.ParentID}, {"eta", &t.ETA}, {"expires", &t.Expires},
		{"exchange", &t.Exchange}, {"routing_key", &t.RoutingKey}} {
		if v, ok := ev[f.key].(string); ok {
			*f.dst = v
		}
	}
	if t.RoutingKey == "" {
		if q, ok := ev["queue"].(string); ok {
			t.RoutingKey = q
		}
	}
	if t.RoutingKey != "" && !s.seen[t.RoutingKey] && len(s.seen) < 256 {
		s.seen[t.RoutingKey] = true
	}
	if v, ok := num(ev["clock"]); ok {
		t.Clock = int64(v)
	}
	switch typ {
	case driver.EventTaskSucceeded:
		if v, ok := ev["result"]; ok {
			t.Result = reprField(v)
		}
		if v, ok := num(ev["runtime"]); ok {
			t.Runtime, t.hasRuntime = v, true
		}
	case driver.EventTaskFailed, driver.EventTaskRetried:
		if v, ok := ev["exception"]; ok {
			t.Exception = reprField(v)
		}
		if v, ok := ev["traceback"].(string); ok {
			t.Traceback = v
		}
	case driver.EventTaskRevoked:
		t.Terminated, _ = ev["terminated"].(bool)
		t.Expired, _ = ev["expired"].(bool)
	}
	if typ == driver.EventTaskSent {
		t.Client = host
	} else if host != "" {
		t.Worker = host
	}

	if !known {
		return
	}
	switch state {
	case StatePending:
		t.Sent = ts
	case StateReceived:
		t.Received = ts
	case StateStarted:
		t.Started = ts
	case StateSuccess:
		t.Succeeded = ts
	case StateFailure:
		t.Failed = ts
	case StateRetry:
		t.Retried = ts
	case StateRevoked:
		t.Revoked = ts
	case StateRejected:
		t.Rejected = ts
	}
	if t.State == "" || state == StateRetry || t.State == StateRetry || rank(state) >= rank(t.State) {
		t.State = state
		t.Timestamp = ts
	}
	entry := TimelineEntry{State: state, Timestamp: ts}
	if typ != driver.EventTaskSent {
		entry.Worker = host
	}
	if len(t.Timeline) >= maxTimeline {
		copy(t.Timeline, t.Timeline[1:])
		t.Timeline = t.Timeline[:maxTimeline-1]
	}
	// Keep the timeline in time order when events arrive out of order.
	i := len(t.Timeline)
	for i > 0 && t.Timeline[i-1].Timestamp > ts {
		i--
	}
	t.Timeline = append(t.Timeline, TimelineEntry{})
	copy(t.Timeline[i+1:], t.Timeline[i:])
	t.Timeline[i] = entry

	// Counters.
	s.countLocked(t, state, now)
	if typ != driver.EventTaskSent && host != "" {
		w := s.worker(host)
		w.heartbeat(now) // task events count as heartbeats (celery.events.state)
		switch state {
		case StateReceived:
			w.Received++
		case StateStarted:
			w.Started++
		case StateSuccess:
			w.Succeeded++
		case StateFailure:
			w.Failed++
		case StateRetry:
			w.Retried++
		case StateRevoked:
			w.Revoked++
		case StateRejected:
			w.Rejected++
		}
	}
}

func (s *State) countLocked(t *Task, state string, now time.Time) {
	name := t.Name
	if name == "" {
		name = "unknown"
	}
	ns := s.names[name]
	if ns == nil {
		if len(s.names) >= maxNames {
			name = "other"
			ns = s.names[name]
		}
		if ns == nil {
			ns = &nameStats{states: map[string]int64{}}
			s.names[name] = ns
		}
	}
	ns.states[state]++
	if state == StateSuccess && t.hasRuntime {
		ns.runtime.observe(t.Runtime)
	}
	sec := now.Unix()
	b := &s.buckets[sec%historySeconds]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	switch state {
	case StateSuccess:
		b.succeeded++
		s.totalOut[0]++
	case StateFailure:
		b.failed++
		s.totalOut[1]++
	case StateRetry:
		b.retried++
		s.totalOut[2]++
	}
}

// MarkRevoked records a revoke requested through the monitor (the API's
// revoke): the task goes to REVOKED now.
func (s *State) MarkRevoked(uuid string, terminate bool) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taskEventLocked(driver.EventTaskRevoked, map[string]any{"uuid": uuid, "terminated": terminate, "expired": false},
		float64(now.UnixNano())/1e9, now)
}

// SetQueue records a poll of one queue's depth.
func (s *State) SetQueue(q QueueInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[q.Name] = q
}

// RecordQueueSample appends the current queue depths to the graph history.
func (s *State) RecordQueueSample() {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	d := make(map[string]int64, len(s.queues))
	for n, q := range s.queues {
		if q.Err == "" {
			d[n] = q.Ready
		}
	}
	if len(s.samples) >= historySeconds {
		copy(s.samples, s.samples[1:])
		s.samples = s.samples[:historySeconds-1]
	}
	s.samples = append(s.samples, queueSample{t: now.Unix(), depths: d})
}

// SeenQueues returns the queues named in task events (routing_key or
// queue fields), sorted.
func (s *State) SeenQueues() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.seen))
}

// Queues returns the last poll of every queue, sorted by name.
func (s *State) Queues() []QueueInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]QueueInfo, 0, len(s.queues))
	for _, n := range slices.Sorted(maps.Keys(s.queues)) {
		out = append(out, s.queues[n])
	}
	return out
}

// Task returns a copy of the task with uuid.
func (s *State) Task(uuid string) (Task, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tasks[uuid]
	if !ok {
		return Task{}, false
	}
	return t.clone(), true
}

// Children returns the ids of the tasks whose parent is uuid, oldest first.
func (s *State) Children(uuid string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for e := s.order.Front(); e != nil; e = e.Next() {
		if t := e.Value.(*Task); t.ParentID == uuid && t.UUID != uuid {
			ids = append(ids, t.UUID)
		}
	}
	return ids
}

// WorkerView is a copy of a worker with its status at a given time.
type WorkerView struct {
	Worker
	Status string // "online" or "offline"
}

// Workers returns copies of the workers sorted by hostname, with status.
func (s *State) Workers() []WorkerView {
	now := s.opts.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]WorkerView, 0, len(s.workers))
	for _, n := range slices.Sorted(maps.Keys(s.workers)) {
		w := *s.workers[n]
		w.LoadAvg = append([]float64(nil), w.LoadAvg...)
		out = append(out, WorkerView{Worker: w, Status: w.Status(now)})
	}
	return out
}

// OnlineWorkers counts the workers alive now.
func (s *State) OnlineWorkers() int {
	now := s.opts.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, w := range s.workers {
		if w.Alive(now) {
			n++
		}
	}
	return n
}

// TaskNames returns every task name seen (within the kept tasks), sorted.
func (s *State) TaskNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := map[string]bool{}
	for _, t := range s.tasks {
		if t.Name != "" {
			set[t.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Series returns the per-second outcome counts of the n complete seconds
// before now (fewer when the state is younger), oldest first.
func (s *State) Series(n int) []Point {
	end := s.opts.Now().Unix() // the current, incomplete second is excluded
	n = min(max(n, 1), historySeconds-1, max(int(end-s.started), 1))
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Point, n)
	for i := range out {
		sec := end - int64(n-i)
		p := Point{T: sec}
		if b := s.buckets[sec%historySeconds]; b.sec == sec {
			p.Succeeded, p.Failed, p.Retried = b.succeeded, b.failed, b.retried
		}
		out[i] = p
	}
	return out
}

// QueueSeries returns, for the seconds of Series(n), each queue's last
// polled depth at that second (-1 before the first poll).
func (s *State) QueueSeries(n int) map[string][]int64 {
	end := s.opts.Now().Unix()
	n = min(max(n, 1), historySeconds-1, max(int(end-s.started), 1))
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string][]int64{}
	for _, sm := range s.samples {
		for q := range sm.depths {
			if out[q] == nil {
				out[q] = make([]int64, n)
				for i := range out[q] {
					out[q][i] = -1
				}
			}
		}
	}
	j := 0
	var cur map[string]int64
	for i := 0; i < n; i++ {
		sec := end - int64(n-i)
		for j < len(s.samples) && s.samples[j].t <= sec {
			cur = s.samples[j].depths
			j++
		}
		for q, l := range out {
			if v, ok := cur[q]; ok {
				l[i] = v
			}
		}
	}
	return out
}

// Totals are the monitor's counters since it started.
type Totals struct {
	Events    int64 `json:"events"`         // events consumed
	BadEvents int64 `json:"bad_events"`     // malformed events ignored
	Tasks     int   `json:"tasks"`          // kept now
	Evicted   int64 `json:"evicted"`        // dropped by the MaxTasks bound
	Succeeded int64 `json:"succeeded"`      // task-succeeded events
	Failed    int64 `json:"failed"`         // task-failed events
	Retried   int64 `json:"retried"`        // task-retried events
	Online    int   `json:"workers_online"` // workers alive now
	Workers   int   `json:"workers"`        // workers known
}

// Totals returns the monitor's counters.
func (s *State) Totals() Totals {
	now := s.opts.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := Totals{Events: s.events, BadEvents: s.bad, Tasks: len(s.tasks), Evicted: s.evicted,
		Succeeded: s.totalOut[0], Failed: s.totalOut[1], Retried: s.totalOut[2], Workers: len(s.workers)}
	for _, w := range s.workers {
		if w.Alive(now) {
			t.Online++
		}
	}
	return t
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// reprField turns an event field into display text: strings as they are
// (Celery sends reprs), anything else as its Python repr.
func reprField(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return driver.Repr(v)
}
