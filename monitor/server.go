package monitor

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

//go:embed assets templates
var files embed.FS

// routes builds the monitor's handler.
func (m *Monitor) routes() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(files, "assets")
	static := http.StripPrefix("/static/", http.FileServerFS(assets))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /{$}", m.pageDashboard)
	mux.HandleFunc("GET /tasks", m.pageTasks)
	mux.HandleFunc("GET /task/{id}", m.pageTask)
	mux.HandleFunc("GET /group/{id}", m.pageGroup)
	mux.HandleFunc("GET /broker", m.pageBroker)
	mux.HandleFunc("GET /beat", m.pageBeat)
	mux.Handle("GET /metrics", m.metricsHandler())
	mux.HandleFunc("GET /healthcheck", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("OK")) })

	// Flower's REST API.
	mux.HandleFunc("GET /api/workers", m.apiWorkers)
	mux.HandleFunc("GET /api/tasks", m.apiTasks)
	mux.HandleFunc("GET /api/task/info/{id}", m.apiTaskInfo)
	mux.HandleFunc("GET /api/task/result/{id}", m.apiTaskResult)
	mux.HandleFunc("GET /api/progress", m.apiProgress)
	mux.HandleFunc("GET /api/queues/length", m.apiQueuesLength)
	mux.HandleFunc("POST /api/task/async-apply/{name}", m.apiAsyncApply)
	mux.HandleFunc("POST /api/task/revoke/{id}", m.apiRevoke)
	mux.HandleFunc("GET /api/task/workflow/{id}", m.apiTaskWorkflow)
	mux.HandleFunc("GET /api/group/info/{id}", m.apiGroupInfo)
	// taskmon's own.
	mux.HandleFunc("GET /api/events/stream", m.apiStream)
	mux.HandleFunc("GET /api/series", m.apiSeries)
	mux.HandleFunc("GET /api/summary", m.apiSummary)
	mux.HandleFunc("GET /api/beat", m.apiBeat)
	m.deadLetterRoutes(mux) // deadletters.go
	mux.HandleFunc("GET /api/broker", m.apiBroker)

	var h http.Handler = mux
	// Browsers' cross-site POSTs (CSRF) are refused; curl and scripts pass.
	h = http.NewCrossOriginProtection().Handler(h)
	return m.guard(h)
}

// guard adds security headers, the loopback Host check and basic auth.
func (m *Monitor) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		if m.hostCheck && !loopbackHost(r.Host) {
			http.Error(w, "taskmon answers loopback host names only (start it with -basic-auth to serve other names)", http.StatusMisdirectedRequest)
			return
		}
		if m.auth && !m.authorized(r) {
			hd.Set("WWW-Authenticate", `Basic realm="taskmon", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ----- pages -----

var funcs = template.FuncMap{
	"stateClass": func(s string) string { return "st-" + strings.ToLower(s) },
	"trunc": func(n int, s string) string {
		if len([]rune(s)) <= n {
			return s
		}
		return string([]rune(s)[:n]) + "…"
	},
	"dur":   fmtDur,
	"load":  fmtLoad,
	"query": func(v url.Values) template.URL { return template.URL(v.Encode()) },
	"join":  strings.Join,
	"inc":   func(i int) int { return i + 1 },
	"sub":   func(a, b int) int { return a - b },
}

var pages = map[string]*template.Template{}

func init() {
	for _, p := range []string{"dashboard", "tasks", "task", "group", "broker", "beat", "error"} {
		pages[p] = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/steps.html", "templates/nodes.html", "templates/"+p+".html"))
	}
}

type pageData struct {
	Title  string
	Nav    string
	Broker string
	Now    string
	Data   any
}

func (m *Monitor) render(w http.ResponseWriter, status int, page, title string, data any) {
	var buf bytes.Buffer
	pd := pageData{Title: title, Nav: page, Broker: driver.Redact(m.app.Config().Broker), Now: m.fmtTime(m.cfg.Now()), Data: data}
	if err := pages[page].ExecuteTemplate(&buf, "layout", pd); err != nil {
		m.log.Error("rendering page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (m *Monitor) fmtTime(t time.Time) string {
	return t.In(m.cfg.Location).Format("2006-01-02 15:04:05.000")
}

// ts formats unix seconds for display ("" for zero).
func (m *Monitor) ts(f float64) string {
	if f == 0 {
		return ""
	}
	return m.fmtTime(time.Unix(0, int64(f*1e9)))
}

func fmtDur(sec float64) string {
	switch {
	case sec == 0:
		return "0 s"
	case sec < 0.001:
		return fmt.Sprintf("%.0f µs", sec*1e6)
	case sec < 1:
		return fmt.Sprintf("%.1f ms", sec*1e3)
	case sec < 120:
		return fmt.Sprintf("%.3f s", sec)
	}
	return (time.Duration(sec * float64(time.Second))).Round(time.Second).String()
}

func fmtLoad(l []float64) string {
	p := make([]string, len(l))
	for i, v := range l {
		p[i] = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strings.Join(p, " ")
}

type workerRow struct {
	WorkerView
	LastHeartbeat string
	Ago           string
}

func (m *Monitor) workerRows() []workerRow {
	now := m.cfg.Now()
	var rows []workerRow
	for _, w := range m.state.Workers() {
		r := workerRow{WorkerView: w}
		if !w.LastHeartbeat.IsZero() {
			r.LastHeartbeat = m.fmtTime(w.LastHeartbeat)
			r.Ago = fmtAgo(now.Sub(w.LastHeartbeat))
		}
		rows = append(rows, r)
	}
	return rows
}

func fmtAgo(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0f s ago", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0f min ago", d.Minutes())
	}
	return fmt.Sprintf("%.1f h ago", d.Hours())
}

func (m *Monitor) pageDashboard(w http.ResponseWriter, r *http.Request) {
	m.render(w, http.StatusOK, "dashboard", "Dashboard", struct {
		Totals  Totals
		Workers []workerRow
		Queues  []QueueInfo
		Nodes   BrokerNodes
	}{m.state.Totals(), m.workerRows(), m.state.Queues(), m.BrokerNodes()})
}

type taskRow struct {
	Task
	ReceivedAt, StartedAt, At string
}

type pageLink struct {
	Label   string
	Query   url.Values
	Current bool
}

func (m *Monitor) pageTasks(w http.ResponseWriter, r *http.Request) {
	q, err := ParseTaskQuery(r.URL.Query(), m.cfg.Location)
	if err != nil {
		m.render(w, http.StatusBadRequest, "error", "Bad request", err.Error())
		return
	}
	if q.Limit == 0 {
		q.Limit = 50
	}
	page, total := m.state.Tasks(q)
	rows := make([]taskRow, len(page))
	for i, t := range page {
		rows[i] = taskRow{Task: t, ReceivedAt: m.ts(t.Received), StartedAt: m.ts(t.Started), At: m.ts(t.Timestamp)}
	}
	var links []pageLink
	pagesN := (total + q.Limit - 1) / q.Limit
	cur := q.Offset / q.Limit
	for p := 0; p < pagesN; p++ {
		if pagesN > 12 && p > 1 && p < pagesN-2 && (p < cur-2 || p > cur+2) {
			if len(links) > 0 && links[len(links)-1].Label != "…" {
				links = append(links, pageLink{Label: "…"})
			}
			continue
		}
		v := q.Values()
		v.Set("offset", strconv.Itoa(p*q.Limit))
		links = append(links, pageLink{Label: strconv.Itoa(p + 1), Query: v, Current: p == cur})
	}
	var start, end string
	if !q.ReceivedStart.IsZero() {
		start = q.ReceivedStart.In(m.cfg.Location).Format("2006-01-02T15:04")
	}
	if !q.ReceivedEnd.IsZero() {
		end = q.ReceivedEnd.In(m.cfg.Location).Format("2006-01-02T15:04")
	}
	stateSel := map[string]bool{}
	for _, s := range q.States {
		stateSel[s] = true
	}
	var workers []string
	for _, wv := range m.state.Workers() {
		workers = append(workers, wv.Hostname)
	}
	m.render(w, http.StatusOK, "tasks", "Tasks", struct {
		Q               TaskQuery
		Rows            []taskRow
		Total, From, To int
		Pages           []pageLink
		States          []string
		StateSel        map[string]bool
		Workers, Names  []string
		Start, End      string
		SortFields      []string
		MaxTasks        int
	}{q, rows, total, min(q.Offset+1, total), q.Offset + len(rows), links, States, stateSel, workers, m.state.TaskNames(),
		start, end, []string{"received", "started", "timestamp", "runtime", "name", "state", "worker", "retries"}, m.state.MaxTasks()})
}

type timelineRow struct {
	TimelineEntry
	At    string
	Delta string
}

func (m *Monitor) pageTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := m.state.Task(id)
	if !ok {
		m.render(w, http.StatusNotFound, "error", "Unknown task", fmt.Sprintf("Unknown task %q: not seen by this monitor, or evicted (it keeps the last %d tasks).", id, m.state.MaxTasks()))
		return
	}
	var tl []timelineRow
	for i, e := range t.Timeline {
		row := timelineRow{TimelineEntry: e, At: m.ts(e.Timestamp)}
		if i > 0 {
			row.Delta = "+" + fmtDur(e.Timestamp-t.Timeline[0].Timestamp)
		}
		tl = append(tl, row)
	}
	rel := m.state.relations(t.UUID, maxStepsShown)
	m.render(w, http.StatusOK, "task", "Task "+t.Name, struct {
		T                             Task
		Timeline                      []timelineRow
		Sent, Received, Started, Done string
		Rel                           taskRelations
		Workflow                      stepsTable
		CanCtl                        bool
	}{t, tl, m.ts(t.Sent), m.ts(t.Received), m.ts(t.Started), m.ts(math.Max(math.Max(t.Succeeded, t.Failed), math.Max(t.Revoked, t.Rejected))),
		rel, m.stepsTable("workflow", t.UUID, rel.Steps, rel.Total), m.canControl()})
}

func (m *Monitor) canControl() bool {
	_, ok := m.app.Broker().(driver.ControlTransport)
	return ok
}

func (m *Monitor) pageBroker(w http.ResponseWriter, r *http.Request) {
	b := m.app.Broker()
	_, qi := b.(driver.QueueInspector)
	_, ui := b.(UnackedInspector)
	_, ct := b.(driver.ControlTransport)
	backend := ""
	if m.app.Backend() != nil {
		backend = driver.Redact(m.app.Config().Backend)
	}
	type queueRow struct {
		QueueInfo
		At string
	}
	var rows []queueRow
	for _, q := range m.state.Queues() {
		rows = append(rows, queueRow{q, m.fmtTime(q.Polled)})
	}
	m.render(w, http.StatusOK, "broker", "Broker", struct {
		URL, Backend, Transport   string
		Lengths, Unacked, Control bool
		Queues                    []queueRow
		Poll                      time.Duration
		Nodes                     BrokerNodes
	}{driver.Redact(m.app.Config().Broker), backend, fmt.Sprintf("%T", b), qi, ui, ct, rows, m.cfg.PollInterval, m.BrokerNodes()})
}

// ----- JSON helpers -----

// kv is one member of an ordered JSON object.
type kv struct {
	k string
	v any
}

// object is a JSON object that keeps its members' order (Flower's
// OrderedDict answers).
type object []kv

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteString(", ")
		}
		k, _ := json.Marshal(m.k)
		b.Write(k)
		b.WriteString(": ")
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte("\n"))
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func nullF(f float64) any {
	if f == 0 {
		return nil
	}
	return f
}

func nullS(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// taskObject is a task in Flower's JSON shape (celery.events.state.Task's
// fields), plus taskmon's group, group_index, chord and timeline.
func taskObject(t *Task, children []string) object {
	var rt any
	if t.hasRuntime {
		rt = t.Runtime
	}
	if children == nil {
		children = []string{}
	}
	var gidx any
	if t.Group != "" && t.GroupIndex >= 0 {
		gidx = t.GroupIndex
	}
	return object{
		{"uuid", t.UUID}, {"name", nullS(t.Name)}, {"state", t.State},
		{"received", nullF(t.Received)}, {"sent", nullF(t.Sent)}, {"started", nullF(t.Started)},
		{"rejected", nullF(t.Rejected)}, {"succeeded", nullF(t.Succeeded)}, {"failed", nullF(t.Failed)},
		{"retried", nullF(t.Retried)}, {"revoked", nullF(t.Revoked)},
		{"args", nullS(t.Args)}, {"kwargs", nullS(t.Kwargs)}, {"eta", nullS(t.ETA)}, {"expires", nullS(t.Expires)},
		{"retries", t.Retries}, {"worker", nullS(t.Worker)}, {"result", nullS(t.Result)},
		{"exception", nullS(t.Exception)}, {"timestamp", nullF(t.Timestamp)}, {"runtime", rt},
		{"traceback", nullS(t.Traceback)}, {"exchange", nullS(t.Exchange)}, {"routing_key", nullS(t.RoutingKey)},
		{"clock", t.Clock}, {"client", nullS(t.Client)}, {"root", nullS(t.RootID)}, {"root_id", nullS(t.RootID)},
		{"parent", nullS(t.ParentID)}, {"parent_id", nullS(t.ParentID)}, {"children", children},
		{"group", nullS(t.Group)}, {"group_index", gidx}, {"chord", nullS(t.Chord)}, {"timeline", t.Timeline},
	}
}

func workerObject(w WorkerView) object {
	var hb any
	if !w.LastHeartbeat.IsZero() {
		hb = float64(w.LastHeartbeat.UnixNano()) / 1e9
	}
	load := w.LoadAvg
	if load == nil {
		load = []float64{}
	}
	return object{
		{"hostname", w.Hostname}, {"status", w.Status}, {"online", w.Status == "online"}, {"freq", w.Freq},
		{"active", w.Active}, {"processed", w.Processed}, {"loadavg", load},
		{"sw_ident", w.SWIdent}, {"sw_ver", w.SWVer}, {"sw_sys", w.SWSys}, {"pid", w.PID}, {"clock", w.Clock},
		{"last_heartbeat", hb},
		{"task_counts", object{{"received", w.Received}, {"started", w.Started}, {"succeeded", w.Succeeded},
			{"failed", w.Failed}, {"retried", w.Retried}, {"revoked", w.Revoked}, {"rejected", w.Rejected}}},
	}
}

// ----- Flower's API -----

// apiWorkers answers GET /api/workers: {nodename: info}, or with
// ?status=true {nodename: online}, optionally for ?workername= only.
func (m *Monitor) apiWorkers(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("workername")
	statusOnly, _ := strconv.ParseBool(r.URL.Query().Get("status"))
	var out object
	for _, wv := range m.state.Workers() {
		if name != "" && wv.Hostname != name {
			continue
		}
		if statusOnly {
			out = append(out, kv{wv.Hostname, wv.Status == "online"})
		} else {
			out = append(out, kv{wv.Hostname, workerObject(wv)})
		}
	}
	if name != "" && len(out) == 0 {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("Unknown worker '%s'", name))
		return
	}
	if out == nil {
		out = object{}
	}
	writeJSON(w, http.StatusOK, out)
}

// apiTasks answers GET /api/tasks with Flower's parameters: {uuid: task}.
func (m *Monitor) apiTasks(w http.ResponseWriter, r *http.Request) {
	q, err := ParseTaskQuery(r.URL.Query(), m.cfg.Location)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, _ := m.state.Tasks(q)
	out := make(object, 0, len(page))
	for i := range page {
		out = append(out, kv{page[i].UUID, taskObject(&page[i], m.state.Children(page[i].UUID))})
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Monitor) apiTaskInfo(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := m.state.Task(id)
	if !ok {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("Unknown task '%s'", id))
		return
	}
	writeJSON(w, http.StatusOK, append(taskObject(&t, m.state.Children(id)), kv{"progress", m.progressField(id)}))
}

// apiTaskResult answers GET /api/task/result/<id>: from the result backend
// when the app has one (waiting up to ?timeout= seconds for a final state),
// else from the events.
func (m *Monitor) apiTaskResult(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if be := m.app.Backend(); be != nil {
		ctx := r.Context()
		var raw []byte
		var err error
		ser := m.app.Config().ResultSerializer
		if s := r.URL.Query().Get("timeout"); s != "" {
			sec, perr := strconv.ParseFloat(s, 64)
			if perr != nil || sec < 0 || sec > 3600 {
				jsonError(w, http.StatusBadRequest, "timeout: want seconds between 0 and 3600")
				return
			}
			wctx, cancel := context.WithTimeout(ctx, time.Duration(sec*float64(time.Second)))
			raw, err = be.Wait(wctx, id, func(doc []byte) bool {
				d, err := driver.DecodeResultDoc(ser, doc)
				return err == nil && d.Status.Ready()
			})
			cancel()
			if err != nil && wctx.Err() != nil && ctx.Err() == nil {
				raw, err = be.Load(ctx, id) // timed out: answer the current state
			}
		} else {
			raw, err = be.Load(ctx, id)
		}
		if err != nil {
			jsonError(w, http.StatusServiceUnavailable, "result backend: "+err.Error())
			return
		}
		if raw == nil {
			writeJSON(w, http.StatusOK, object{{"task-id", id}, {"state", "PENDING"}})
			return
		}
		doc, err := driver.DecodeResultDoc(ser, raw)
		if err != nil {
			jsonError(w, http.StatusBadGateway, "undecodable result document: "+err.Error())
			return
		}
		out := object{{"task-id", id}, {"state", string(doc.Status)}}
		switch doc.Status {
		case runtime.StateSuccess:
			var v any
			if err := doc.DecodeResult(&v); err != nil {
				out = append(out, kv{"result", nil})
			} else if _, err := json.Marshal(v); err != nil {
				out = append(out, kv{"result", driver.Repr(v)})
			} else {
				out = append(out, kv{"result", v})
			}
		case runtime.StateFailure, runtime.StateRetry, runtime.StateRevoked:
			e := doc.Exception()
			out = append(out, kv{"result", driver.ExceptionRepr(&e)})
			if doc.Traceback != "" {
				out = append(out, kv{"traceback", doc.Traceback})
			}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	t, ok := m.state.Task(id)
	if !ok {
		writeJSON(w, http.StatusOK, object{{"task-id", id}, {"state", "PENDING"}})
		return
	}
	state := t.State
	if state == StateReceived {
		state = StatePending // Celery's result states
	}
	out := object{{"task-id", id}, {"state", state}}
	switch t.State {
	case StateSuccess:
		out = append(out, kv{"result", t.Result})
	case StateFailure, StateRetry:
		out = append(out, kv{"result", t.Exception})
		if t.Traceback != "" {
			out = append(out, kv{"traceback", t.Traceback})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Monitor) apiQueuesLength(w http.ResponseWriter, r *http.Request) {
	type q struct {
		Name     string `json:"name"`
		Messages int64  `json:"messages"`
		Unacked  *int64 `json:"unacked,omitempty"`
	}
	out := []q{}
	for _, qi := range m.state.Queues() {
		if qi.Err != "" {
			continue
		}
		e := q{Name: qi.Name, Messages: qi.Ready}
		if qi.Unacked >= 0 {
			u := qi.Unacked
			e.Unacked = &u
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"active_queues": out})
}

// ----- taskmon's own API -----

func (m *Monitor) apiSeries(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 {
		n = 300
	}
	pts := m.state.Series(n)
	t := make([]int64, len(pts))
	s, f, re := make([]int64, len(pts)), make([]int64, len(pts)), make([]int64, len(pts))
	for i, p := range pts {
		t[i], s[i], f[i], re[i] = p.T, p.Succeeded, p.Failed, p.Retried
	}
	qs := map[string][]any{}
	for q, l := range m.state.QueueSeries(n) {
		vals := make([]any, len(l))
		for i, v := range l {
			if v >= 0 {
				vals[i] = v
			}
		}
		qs[q] = vals
	}
	writeJSON(w, http.StatusOK, map[string]any{"t": t, "succeeded": s, "failed": f, "retried": re, "queues": qs})
}

// snapshot is what the dashboard's event stream sends every second.
func (m *Monitor) snapshot() object {
	pts := m.state.Series(1)
	queues := object{}
	for _, q := range m.state.Queues() {
		if q.Err == "" {
			queues = append(queues, kv{q.Name, q.Ready})
		}
	}
	var workers []object
	for _, row := range m.workerRows() {
		o := workerObject(row.WorkerView)
		o = append(o, kv{"ago", row.Ago})
		workers = append(workers, o)
	}
	if workers == nil {
		workers = []object{}
	}
	return object{{"point", pts[0]}, {"queues", queues}, {"workers", workers}, {"totals", m.state.Totals()}}
}

func (m *Monitor) apiSummary(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, m.snapshot())
}

// apiStream is the dashboard's Server-Sent Events stream: one snapshot per
// second (and one at once), until the client leaves or the monitor stops.
func (m *Monitor) apiStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func() bool {
		b, err := json.Marshal(m.snapshot())
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil || !send() {
		return
	}
	// Tick just after each second boundary, so each snapshot carries the
	// second that just completed.
	for {
		now := m.cfg.Now()
		wait := time.Second - time.Duration(now.Nanosecond()) + 20*time.Millisecond
		select {
		case <-r.Context().Done():
			return
		case <-m.stopping:
			return
		case <-time.After(wait):
			if !send() {
				return
			}
		}
	}
}
