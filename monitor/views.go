package monitor

import (
	"maps"
	"slices"

	"github.com/taskgen/taskgen/runtime/driver"
)

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
