package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

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
		w.Active, w.hasActive = int64(v), true
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
		s.unindexLocked(ot)
		if p := ot.prefetchedIn; p != nil {
			p.prefetched--
		}
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
	}{{"eta", &t.ETA}, {"expires", &t.Expires},
		{"exchange", &t.Exchange}, {"routing_key", &t.RoutingKey}} {
		if v, ok := ev[f.key].(string); ok {
			*f.dst = v
		}
	}
	rel := t.relations()
	for _, f := range [...]struct {
		key string
		dst *string
	}{{"root_id", &rel.root}, {"parent_id", &rel.parent}, {"group", &rel.group}, {"chord", &rel.chord}} {
		if v, ok := ev[f.key].(string); ok {
			*f.dst = v
		}
	}
	if g, ok := ev["group"].(string); ok && g != "" {
		t.GroupIndex = -1
		if v, ok := num(ev["group_index"]); ok && v >= 0 && v < math.MaxInt32 {
			t.GroupIndex = int(v)
		}
	}
	s.setRelationsLocked(t, rel)
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
	if tr, sp := traceContext(ev); tr != "" {
		t.traceID, t.spanID = tr, sp
	}
	var rt float64 // this event's runtime
	switch typ {
	case driver.EventTaskSucceeded:
		if v, ok := ev["result"]; ok {
			t.Result = reprField(v)
		}
		if v, ok := num(ev["runtime"]); ok {
			t.Runtime, t.hasRuntime, rt = v, true, v
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

	// Flower's series: every task event, by its hostname and the task's
	// name; the runtime of task-succeeded (Celery's only event with one).
	wt := s.workerTaskLocked(t, host)
	s.countEventLocked(wt, typ)
	if rt != 0 {
		wt.runtime.observe(rt, t.traceID, t.spanID, now)
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
	ns := s.countLocked(t, state, now)
	switch state {
	case StateReceived:
		// Prefetched (Flower's flower_worker_prefetched_tasks) from
		// task-received to task-started, once per delivery; a task with an
		// ETA waits for its time, not for a slot, and a late task-received
		// (its task-started came first) starts nothing.
		if t.ETA == "" && t.prefetchedIn == nil && t.Started < ts {
			t.prefetchedIn = wt
			wt.prefetched++
			wt.hasPrefetched = true
		}
	case StateStarted:
		if p := t.prefetchedIn; p != nil {
			t.prefetchedIn = nil
			p.prefetched--
			wait := max(ts-t.Received, 0)
			wt.prefetchTime, wt.hasPrefetchTime = wait, true
			ns.wait.observe(wait, t.traceID, t.spanID, now)
		}
	case StateSuccess, StateFailure:
		if wt.hasPrefetchTime {
			wt.prefetchTime = 0 // as Flower: the wait is over
		}
	}
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

// countLocked counts a state change of t in its name's and the per-second
// series, and returns its name's.
func (s *State) countLocked(t *Task, state string, now time.Time) *nameStats {
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
			ns = newNameStats()
			s.names[name] = ns
		}
	}
	ns.states[state]++
	if state == StateSuccess && t.hasRuntime {
		ns.runtime.observe(t.Runtime, t.traceID, t.spanID, now)
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
	return ns
}
