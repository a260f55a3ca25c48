package monitor

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// WriteMetrics writes the state in Prometheus' text exposition format
// (version 0.0.4):
//
//	taskgen_tasks_total{name,state}           counter: task events by resulting state
//	taskgen_task_runtime_seconds{name}        histogram: runtime of succeeded tasks
//	taskgen_queue_depth{queue}                gauge: ready messages at the last poll
//	taskgen_queue_unacked{queue}              gauge: where the transport can say
//	taskgen_workers_online                    gauge: workers alive by Flower's rule
//	taskgen_worker_online{worker}             gauge: 1 or 0 per known worker
//	taskgen_monitor_events_total              counter: events consumed
//	taskgen_monitor_bad_events_total          counter: malformed events
//	taskgen_monitor_tasks                     gauge: tasks kept in memory
func (s *State) WriteMetrics(out io.Writer) error {
	w := bufio.NewWriter(out)
	now := s.opts.Now()
	s.mu.RLock()
	names := slices.Sorted(maps.Keys(s.names))

	header(w, "taskgen_tasks_total", "counter", "Task events seen by the monitor, by task name and the state they set.")
	for _, n := range names {
		ns := s.names[n]
		for _, st := range slices.Sorted(maps.Keys(ns.states)) {
			w.WriteString("taskgen_tasks_total{name=")
			label(w, n)
			w.WriteString(",state=")
			label(w, st)
			w.WriteString("} ")
			w.WriteString(strconv.FormatInt(ns.states[st], 10))
			w.WriteByte('\n')
		}
	}

	header(w, "taskgen_task_runtime_seconds", "histogram", "Runtime of succeeded tasks (the runtime field of task-succeeded).")
	for _, n := range names {
		h := &s.names[n].runtime
		if h.count == 0 {
			continue
		}
		var cum uint64
		for i, ub := range runtimeBuckets {
			cum += h.counts[i]
			bucketLine(w, n, strconv.FormatFloat(ub, 'g', -1, 64), cum)
		}
		bucketLine(w, n, "+Inf", h.count)
		w.WriteString("taskgen_task_runtime_seconds_sum{name=")
		label(w, n)
		w.WriteString("} ")
		w.WriteString(strconv.FormatFloat(h.sum, 'g', -1, 64))
		w.WriteString("\ntaskgen_task_runtime_seconds_count{name=")
		label(w, n)
		w.WriteString("} ")
		w.WriteString(strconv.FormatUint(h.count, 10))
		w.WriteByte('\n')
	}

	header(w, "taskgen_queue_depth", "gauge", "Ready messages in the queue at the last poll.")
	qs := slices.Sorted(maps.Keys(s.queues))
	for _, q := range qs {
		if qi := s.queues[q]; qi.Err == "" {
			gaugeLine(w, "taskgen_queue_depth", "queue", q, qi.Ready)
		}
	}
	header(w, "taskgen_queue_unacked", "gauge", "Delivered, unacknowledged messages of the queue at the last poll, where the transport reports them.")
	for _, q := range qs {
		if qi := s.queues[q]; qi.Err == "" && qi.Unacked >= 0 {
			gaugeLine(w, "taskgen_queue_unacked", "queue", q, qi.Unacked)
		}
	}

	online := 0
	hosts := slices.Sorted(maps.Keys(s.workers))
	for _, h := range hosts {
		if s.workers[h].Alive(now) {
			online++
		}
	}
	header(w, "taskgen_workers_online", "gauge", "Workers alive by Flower's rule (a heartbeat within 2 × freq).")
	w.WriteString("taskgen_workers_online " + strconv.Itoa(online) + "\n")
	header(w, "taskgen_worker_online", "gauge", "1 if the worker is alive, 0 if not.")
	for _, h := range hosts {
		v := int64(0)
		if s.workers[h].Alive(now) {
			v = 1
		}
		gaugeLine(w, "taskgen_worker_online", "worker", h, v)
	}
	header(w, "taskgen_monitor_events_total", "counter", "Events consumed by the monitor.")
	w.WriteString("taskgen_monitor_events_total " + strconv.FormatInt(s.events, 10) + "\n")
	header(w, "taskgen_monitor_bad_events_total", "counter", "Malformed events ignored by the monitor.")
	w.WriteString("taskgen_monitor_bad_events_total " + strconv.FormatInt(s.bad, 10) + "\n")
	header(w, "taskgen_monitor_tasks", "gauge", "Tasks kept in the monitor's memory.")
	w.WriteString("taskgen_monitor_tasks " + strconv.Itoa(len(s.tasks)) + "\n")
	s.mu.RUnlock()
	return w.Flush()
}

func header(w *bufio.Writer, name, typ, help string) {
	w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

func bucketLine(w *bufio.Writer, name, le string, n uint64) {
	w.WriteString("taskgen_task_runtime_seconds_bucket{name=")
	label(w, name)
	w.WriteString(`,le="` + le + `"} `)
	w.WriteString(strconv.FormatUint(n, 10))
	w.WriteByte('\n')
}

func gaugeLine(w *bufio.Writer, metric, key, val string, v int64) {
	w.WriteString(metric + "{" + key + "=")
	label(w, val)
	w.WriteString("} " + strconv.FormatInt(v, 10) + "\n")
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// label writes a quoted label value, escaped as the exposition format says.
func label(w *bufio.Writer, v string) {
	w.WriteByte('"')
	labelEscaper.WriteString(w, v)
	w.WriteByte('"')
}
