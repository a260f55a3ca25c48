package monitor

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/taskgen/taskgen/runtime/beat"
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
//
// The monitor's GET /metrics follows them with the leaders' metrics of the
// periodic-task schedules it watches (Config.BeatKeys), as runtime/beat's
// WriteDocMetrics writes them from each schedule document, labelled
// key="<schedule key>", as of the latest poll:
//
//	taskgen_beat_leader{key}                       gauge: 1 while the document's scheduler holds the lease
//	taskgen_beat_elections_total{key}              counter: times that scheduler took the lease
//	taskgen_beat_slots_sent_total{key,entry}       counter: slots it published
//	taskgen_beat_slots_missed_total{key,entry}     counter: slots its catch-up policies did not send
//	taskgen_beat_send_errors_total{key}            counter: failed publishes (each is retried)
//	taskgen_beat_fire_lateness_seconds{key}        histogram: publish time minus slot time (1 ms … 10 s)
//
// The counters are the leader's since it started: they restart from zero
// when another scheduler takes over. A key no scheduler leads has only
// taskgen_beat_leader 0 (and the last leader's counters while its document
// lasts, three lease times).
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

// writeBeatMetrics writes runtime/beat's metrics of each watched schedule
// (see State.WriteMetrics): beat.WriteDocMetrics of the schedule's latest
// document, its leader gauge 0 unless the document's scheduler still holds
// the lease; a key without a document has taskgen_beat_leader 0 only.
// beat.WriteDocMetrics writes one document's families, each with its HELP
// and TYPE; the families of several keys are merged so that each appears
// once.
func (m *Monitor) writeBeatMetrics(out io.Writer) error {
	if m.beat.store == nil {
		return nil
	}
	var fams []*metricFamily
	idx := map[string]*metricFamily{}
	var buf bytes.Buffer
	for _, v := range m.beatViews() {
		if v.Polled.IsZero() {
			continue
		}
		d, only := &beat.ScheduleDoc{Key: v.Key}, "taskgen_beat_leader"
		if v.Doc != nil {
			c := *v.Doc
			c.Key, c.Stats = v.Key, *v.Stats
			d, only = &c, ""
		}
		buf.Reset()
		if err := beat.WriteDocMetrics(&buf, d); err != nil {
			return err
		}
		mergeFamilies(&fams, idx, buf.String(), only)
	}
	w := bufio.NewWriter(out)
	for _, f := range fams {
		for _, l := range f.head {
			w.WriteString(l + "\n")
		}
		for _, l := range f.samples {
			w.WriteString(l + "\n")
		}
	}
	return w.Flush()
}

// metricFamily is one metric family of the text exposition format: its
// HELP and TYPE lines and its samples.
type metricFamily struct {
	head, samples []string
}

// mergeFamilies adds the families of text (a family starts at its "# HELP"
// line) to fams, the samples of a family already there after its own;
// only, when set, keeps that family alone.
func mergeFamilies(fams *[]*metricFamily, idx map[string]*metricFamily, text, only string) {
	var cur *metricFamily
	fresh := false
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(rest, " ")
			cur, fresh = nil, false
			if only != "" && name != only {
				continue
			}
			if cur = idx[name]; cur == nil {
				cur, fresh = &metricFamily{}, true
				idx[name] = cur
				*fams = append(*fams, cur)
			}
		}
		switch {
		case cur == nil || line == "":
		case strings.HasPrefix(line, "#"):
			if fresh {
				cur.head = append(cur.head, line)
			}
		default:
			cur.samples = append(cur.samples, line)
		}
	}
}
