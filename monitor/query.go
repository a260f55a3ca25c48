package monitor

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TaskQuery selects, sorts and pages tasks. Its URL form uses Flower's
// /api/tasks parameters, which the Tasks page shares.
type TaskQuery struct {
	// Search matches, case-insensitively, every whitespace-separated term:
	// a bare term against the name, id, args, kwargs, result and exception;
	// "name:x", "uuid:x", "args:x", "kwargs:x", "result:x", "state:x" and
	// "worker:x" against one field (Flower's search syntax).
	Search string
	// States keeps tasks in one of these states (empty: all).
	States []string
	// Worker keeps tasks handled by this nodename.
	Worker string
	// Name keeps tasks with this name.
	Name string
	// ReceivedStart and ReceivedEnd bound the received time (zero: open).
	ReceivedStart, ReceivedEnd time.Time
	// SortBy is a field name, "-" first for descending: name, state,
	// received, started, succeeded, failed, timestamp, runtime, worker,
	// retries, uuid. Empty: newest first.
	SortBy string
	// Offset skips the first tasks; Limit bounds the page (0: all).
	Offset, Limit int
}

// timeLayouts are the accepted forms of received_start/received_end:
// Flower's "2006-01-02 15:04", HTML's datetime-local, RFC 3339, a date.
var timeLayouts = []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05",
	time.RFC3339Nano, "2006-01-02"}

func parseQueryTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 1e8 {
		return time.Unix(0, int64(f*1e9)), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q (want YYYY-MM-DD HH:MM, RFC 3339 or unix seconds)", s)
}

// ParseTaskQuery reads Flower's parameters: limit, offset, sort_by,
// workername, taskname, state (comma-separated allowed), received_start,
// received_end (in loc unless they carry an offset) and search.
func ParseTaskQuery(v url.Values, loc *time.Location) (TaskQuery, error) {
	q := TaskQuery{Search: v.Get("search"), Worker: v.Get("workername"), Name: v.Get("taskname"), SortBy: v.Get("sort_by")}
	for _, s := range v["state"] {
		for _, p := range strings.Split(s, ",") {
			if p = strings.ToUpper(strings.TrimSpace(p)); p != "" {
				q.States = append(q.States, p)
			}
		}
	}
	var err error
	if q.ReceivedStart, err = parseQueryTime(v.Get("received_start"), loc); err != nil {
		return q, fmt.Errorf("received_start: %w", err)
	}
	if q.ReceivedEnd, err = parseQueryTime(v.Get("received_end"), loc); err != nil {
		return q, fmt.Errorf("received_end: %w", err)
	}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &q.Limit}, {"offset", &q.Offset}} {
		if s := v.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return q, fmt.Errorf("%s: want a non-negative integer, got %q", p.name, s)
			}
			*p.dst = n
		}
	}
	if q.SortBy != "" {
		if _, ok := sortKeys[strings.TrimPrefix(q.SortBy, "-")]; !ok {
			return q, fmt.Errorf("sort_by: unknown field %q (one of %s)", q.SortBy, strings.Join(slices.Sorted(maps.Keys(sortKeys)), ", "))
		}
	}
	return q, nil
}

// Values returns q in URL form (the inverse of ParseTaskQuery), without
// offset, for links that change only the page.
func (q TaskQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("search", q.Search)
	set("workername", q.Worker)
	set("taskname", q.Name)
	set("state", strings.Join(q.States, ","))
	set("sort_by", q.SortBy)
	if !q.ReceivedStart.IsZero() {
		set("received_start", q.ReceivedStart.Format("2006-01-02T15:04"))
	}
	if !q.ReceivedEnd.IsZero() {
		set("received_end", q.ReceivedEnd.Format("2006-01-02T15:04"))
	}
	if q.Limit > 0 {
		set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

var sortKeys = map[string]func(a, b *Task) int{
	"name":      func(a, b *Task) int { return strings.Compare(a.Name, b.Name) },
	"state":     func(a, b *Task) int { return strings.Compare(a.State, b.State) },
	"uuid":      func(a, b *Task) int { return strings.Compare(a.UUID, b.UUID) },
	"worker":    func(a, b *Task) int { return strings.Compare(a.Worker, b.Worker) },
	"received":  func(a, b *Task) int { return cmpF(a.Received, b.Received) },
	"started":   func(a, b *Task) int { return cmpF(a.Started, b.Started) },
	"succeeded": func(a, b *Task) int { return cmpF(a.Succeeded, b.Succeeded) },
	"failed":    func(a, b *Task) int { return cmpF(a.Failed, b.Failed) },
	"timestamp": func(a, b *Task) int { return cmpF(a.Timestamp, b.Timestamp) },
	"runtime":   func(a, b *Task) int { return cmpF(a.Runtime, b.Runtime) },
	"retries":   func(a, b *Task) int { return a.Retries - b.Retries },
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type term struct{ field, text string }

func parseSearch(s string) []term {
	var out []term
	for _, f := range strings.Fields(strings.ToLower(s)) {
		t := term{text: f}
		if k, v, ok := strings.Cut(f, ":"); ok && v != "" {
			switch k {
			case "name", "uuid", "id", "args", "kwargs", "result", "state", "worker", "exception":
				t = term{field: k, text: v}
			}
		}
		out = append(out, t)
	}
	return out
}

func contains(hay, needle string) bool { return strings.Contains(strings.ToLower(hay), needle) }

func (t *Task) matches(terms []term) bool {
	for _, tm := range terms {
		var ok bool
		switch tm.field {
		case "name":
			ok = contains(t.Name, tm.text)
		case "uuid", "id":
			ok = contains(t.UUID, tm.text)
		case "args":
			ok = contains(t.Args, tm.text)
		case "kwargs":
			ok = contains(t.Kwargs, tm.text)
		case "result":
			ok = contains(t.Result, tm.text)
		case "exception":
			ok = contains(t.Exception, tm.text)
		case "state":
			ok = strings.EqualFold(t.State, tm.text)
		case "worker":
			ok = contains(t.Worker, tm.text)
		default:
			ok = contains(t.Name, tm.text) || contains(t.UUID, tm.text) || contains(t.Args, tm.text) ||
				contains(t.Kwargs, tm.text) || contains(t.Result, tm.text) || contains(t.Exception, tm.text)
		}
		if !ok {
			return false
		}
	}
	return true
}

// Tasks returns copies of the tasks q selects, sorted and paged, and how
// many matched before paging.
func (s *State) Tasks(q TaskQuery) (page []Task, total int) {
	terms := parseSearch(q.Search)
	states := map[string]bool{}
	for _, st := range q.States {
		states[strings.ToUpper(st)] = true
	}
	start, end := timeF(q.ReceivedStart), timeF(q.ReceivedEnd)
	s.mu.RLock()
	var sel []*Task
	for e := s.order.Back(); e != nil; e = e.Prev() { // newest first
		t := e.Value.(*Task)
		if len(states) > 0 && !states[t.State] ||
			q.Worker != "" && t.Worker != q.Worker ||
			q.Name != "" && t.Name != q.Name ||
			start != 0 && t.Received < start ||
			end != 0 && (t.Received == 0 || t.Received > end) ||
			!t.matches(terms) {
			continue
		}
		sel = append(sel, t)
	}
	if q.SortBy != "" {
		key, desc := strings.CutPrefix(q.SortBy, "-")
		if cmp := sortKeys[key]; cmp != nil {
			sort.SliceStable(sel, func(i, j int) bool {
				c := cmp(sel[i], sel[j])
				if desc {
					return c > 0
				}
				return c < 0
			})
		}
	}
	total = len(sel)
	if q.Offset >= len(sel) {
		sel = nil
	} else {
		sel = sel[q.Offset:]
	}
	if q.Limit > 0 && len(sel) > q.Limit {
		sel = sel[:q.Limit]
	}
	page = make([]Task, len(sel))
	for i, t := range sel {
		page[i] = t.clone()
	}
	s.mu.RUnlock()
	return page, total
}

func timeF(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
