package monitor

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// Dead letters: the messages workers set aside (unregistered task,
// undecodable body, bad arguments), listed per queue from the transport's
// driver.DeadLetterStore, with requeue and drop (asynq's archived tasks).
// The page's buttons are same-origin form POSTs, so they pass the basic auth
// and the cross-origin (CSRF) protection of every other route.

func init() {
	pages["deadletters"] = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/steps.html", "templates/deadletters.html"))
}

// deadLetterLimit bounds the entries listed per queue.
const deadLetterLimit = 200

// deadLetterRoutes registers the page and its API.
func (m *Monitor) deadLetterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /dead-letters", m.pageDeadLetters)
	mux.HandleFunc("POST /dead-letters/{action}", m.formDeadLetters)
	mux.HandleFunc("GET /api/dead-letters", m.apiDeadLetters)
	mux.HandleFunc("POST /api/dead-letters/{action}", m.apiDeadLetterAction)
}

func (m *Monitor) deadLetterStore() (driver.DeadLetterStore, bool) {
	ds, ok := m.app.Broker().(driver.DeadLetterStore)
	return ds, ok
}

// deadLetterQueues are the queues the page and API look at: ?queue= (or
// several), else the polled queues.
func (m *Monitor) deadLetterQueues(r *http.Request) []string {
	if qs := r.URL.Query()["queue"]; len(qs) > 0 {
		return qs
	}
	return m.queueNames()
}

// deadLetterQueue is one queue's dead letters.
type deadLetterQueue struct {
	Name    string
	Count   int64
	Letters []deadLetterRow
	Err     string
}

type deadLetterRow struct {
	driver.DeadLetter
	At, Args, Kwargs string
}

func (m *Monitor) collectDeadLetters(ctx context.Context, ds driver.DeadLetterStore, queues []string, limit int) []deadLetterQueue {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []deadLetterQueue
	for _, q := range queues {
		dq := deadLetterQueue{Name: q}
		n, err := ds.CountDeadLetters(ctx, q)
		if err == nil {
			dq.Count = n
			var list []driver.DeadLetter
			if n > 0 {
				list, err = ds.ListDeadLetters(ctx, q, limit)
			}
			for _, dl := range list {
				row := deadLetterRow{DeadLetter: dl}
				if !dl.Time.IsZero() {
					row.At = m.fmtTime(dl.Time)
				}
				if dl.Message != nil {
					row.Args, row.Kwargs = dl.Message.Headers.ArgsRepr, dl.Message.Headers.KwargsRepr
				}
				dq.Letters = append(dq.Letters, row)
			}
		}
		if err != nil {
			dq.Err = err.Error()
		}
		out = append(out, dq)
	}
	return out
}

func (m *Monitor) pageDeadLetters(w http.ResponseWriter, r *http.Request) {
	ds, ok := m.deadLetterStore()
	var queues []deadLetterQueue
	if ok {
		queues = m.collectDeadLetters(r.Context(), ds, m.deadLetterQueues(r), deadLetterLimit)
	}
	m.render(w, http.StatusOK, "deadletters", "Dead letters", struct {
		Supported bool
		Transport string
		Queues    []deadLetterQueue
		Limit     int
		Notice    string
	}{ok, driver.Redact(m.app.Config().Broker), queues, deadLetterLimit, r.URL.Query().Get("notice")})
}

// takeDeadLetters requeues or drops ids (all of the queue's with all).
func (m *Monitor) takeDeadLetters(ctx context.Context, action, queue string, ids []string, all bool) (int, error) {
	ds, ok := m.deadLetterStore()
	if !ok {
		return 0, errNoDeadLetters
	}
	if queue == "" {
		return 0, errors.New("queue: missing")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if all {
		list, err := ds.ListDeadLetters(ctx, queue, 0)
		if err != nil {
			return 0, err
		}
		ids = nil
		for _, dl := range list {
			ids = append(ids, dl.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch action {
	case "requeue":
		n, err = ds.RequeueDeadLetters(ctx, queue, ids)
	case "drop":
		n, err = ds.DropDeadLetters(ctx, queue, ids)
	default:
		return 0, errBadAction
	}
	if err == nil {
		m.log.Info("dead letters "+action+"d", "queue", queue, "ids", ids, "count", n)
	}
	return n, err
}

var (
	errNoDeadLetters = errors.New("this broker's transport keeps no dead letters taskmon can read")
	errBadAction     = errors.New("action: want requeue or drop")
)

// formDeadLetters handles the page's buttons (POST /dead-letters/requeue
// and /dead-letters/drop, form fields queue, id…, all) and redirects back.
func (m *Monitor) formDeadLetters(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	all, _ := strconv.ParseBool(r.PostForm.Get("all"))
	n, err := m.takeDeadLetters(r.Context(), action, r.PostForm.Get("queue"), r.PostForm["id"], all)
	notice := ""
	switch {
	case errors.Is(err, errBadAction):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		notice = action + " failed: " + err.Error()
	case action == "requeue":
		notice = strconv.Itoa(n) + " requeued to " + r.PostForm.Get("queue")
	default:
		notice = strconv.Itoa(n) + " dropped from " + r.PostForm.Get("queue")
	}
	http.Redirect(w, r, "/dead-letters?"+url.Values{"notice": {notice}}.Encode(), http.StatusSeeOther)
}

func deadLetterObject(dl deadLetterRow) object {
	o := object{{"id", dl.ID}, {"task", nullS(dl.Task)}, {"queue", dl.Queue}, {"reason", dl.Reason}}
	if dl.Time.IsZero() {
		o = append(o, kv{"time", nil})
	} else {
		o = append(o, kv{"time", float64(dl.Time.UnixNano()) / 1e9})
	}
	return append(o, kv{"hostname", nullS(dl.Hostname)}, kv{"args", nullS(dl.Args)}, kv{"kwargs", nullS(dl.Kwargs)}, kv{"size", dl.Size})
}

// apiDeadLetters answers GET /api/dead-letters[?queue=Q…&limit=N]:
// {"queues": [{"name", "count", "dead_letters": [...], "error"?}]}.
func (m *Monitor) apiDeadLetters(w http.ResponseWriter, r *http.Request) {
	ds, ok := m.deadLetterStore()
	if !ok {
		jsonError(w, http.StatusNotImplemented, errNoDeadLetters.Error())
		return
	}
	limit := deadLetterLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			jsonError(w, http.StatusBadRequest, "limit: want a count (0: all)")
			return
		}
		limit = n
	}
	out := []object{}
	for _, q := range m.collectDeadLetters(r.Context(), ds, m.deadLetterQueues(r), limit) {
		letters := []object{}
		for _, dl := range q.Letters {
			letters = append(letters, deadLetterObject(dl))
		}
		o := object{{"name", q.Name}, {"count", q.Count}, {"dead_letters", letters}}
		if q.Err != "" {
			o = append(o, kv{"error", q.Err})
		}
		out = append(out, o)
	}
	writeJSON(w, http.StatusOK, object{{"queues", out}})
}

// apiDeadLetterAction answers POST /api/dead-letters/requeue and
// /api/dead-letters/drop (form or query fields queue, id… or all=true):
// {"queue", "requeued"|"dropped": n}.
func (m *Monitor) apiDeadLetterAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if action != "requeue" && action != "drop" {
		jsonError(w, http.StatusNotFound, errBadAction.Error())
		return
	}
	if err := r.ParseForm(); err != nil {
		jsonError(w, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	queue := r.Form.Get("queue")
	all, _ := strconv.ParseBool(r.Form.Get("all"))
	ids := slices.Clone(r.Form["id"])
	if !all && len(ids) == 0 {
		jsonError(w, http.StatusBadRequest, "want id=… (one or more) or all=true")
		return
	}
	n, err := m.takeDeadLetters(r.Context(), action, queue, ids, all)
	switch {
	case errors.Is(err, errNoDeadLetters):
		jsonError(w, http.StatusNotImplemented, err.Error())
		return
	case err != nil && queue == "":
		jsonError(w, http.StatusBadRequest, "want queue=…")
		return
	case err != nil:
		jsonError(w, http.StatusServiceUnavailable, action+" failed: "+err.Error())
		return
	}
	key := "requeued"
	if action == "drop" {
		key = "dropped"
	}
	writeJSON(w, http.StatusOK, object{{"queue", queue}, {key, n}})
}
