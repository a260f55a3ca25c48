package monitor

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
)

// MaxProgressPolled bounds how many started tasks the progress poller reads
// from the result backend per round (the most recently updated first), so
// that a monitor tracking 100 000 tasks does not hammer the backend.
const MaxProgressPolled = 200

// TaskProgress is a started task's latest custom state read from the
// result backend: Celery's update_state document, which sends no event.
// runtime.Progress and Celery's update_state(state="PROGRESS",
// meta={"current": i, "total": n}) fill Current and Total (HasBar).
type TaskProgress struct {
	State   string    // the stored state, e.g. PROGRESS or any custom one
	Meta    any       // the stored meta (the document's result), decoded
	Current float64   // meta["current"] when HasBar
	Total   float64   // meta["total"] when HasBar
	Note    string    // meta["note"], optional
	HasBar  bool      // meta has numeric current and total
	Polled  time.Time // when it was read
}

// Percent is Current/Total in percent, clamped to 0–100 (0 without a total).
func (p TaskProgress) Percent() float64 {
	if !p.HasBar || p.Total <= 0 {
		return 0
	}
	return min(100, max(0, 100*p.Current/p.Total))
}

func (p TaskProgress) object() object {
	o := object{{"state", p.State}, {"meta", p.Meta}}
	if p.HasBar {
		o = append(o, kv{"current", p.Current}, kv{"total", p.Total}, kv{"percent", p.Percent()})
	}
	return append(o, kv{"note", nullS(p.Note)}, kv{"polled", float64(p.Polled.UnixMilli()) / 1000})
}

// progressWatch holds the latest progress of the polled tasks.
type progressWatch struct {
	mu sync.Mutex
	m  map[string]TaskProgress
}

func (w *progressWatch) get(id string) (TaskProgress, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.m[id]
	return p, ok
}

func (w *progressWatch) all() map[string]TaskProgress {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]TaskProgress, len(w.m))
	for k, v := range w.m {
		out[k] = v
	}
	return out
}

// standardState reports Celery's own states, which are not progress.
func standardState(s string) bool {
	switch s {
	case "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED":
		return true
	}
	return false
}

// pollProgress reads, each PollInterval, the result-backend document of up
// to MaxProgressPolled tasks the events show STARTED, and keeps those in a
// custom state (PROGRESS or another). Without a result backend it does
// nothing.
func (m *Monitor) pollProgress(ctx context.Context) {
	be := m.app.Backend()
	if be == nil {
		return
	}
	ser := m.app.Config().ResultSerializer
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		page, _ := m.state.Tasks(TaskQuery{States: []string{StateStarted}, SortBy: "-timestamp", Limit: MaxProgressPolled})
		next := make(map[string]TaskProgress, len(page))
		for i := range page {
			id := page[i].UUID
			cctx, cancel := context.WithTimeout(ctx, m.cfg.PollInterval)
			raw, err := be.Load(cctx, id)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil || raw == nil {
				if old, ok := m.progress.get(id); ok && err != nil {
					next[id] = old // a transient error keeps what was read
				}
				continue
			}
			if p, ok := decodeProgress(ser, raw, m.cfg.Now()); ok {
				next[id] = p
			}
		}
		m.progress.mu.Lock()
		m.progress.m = next
		m.progress.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// decodeProgress reads a custom state from a result document.
func decodeProgress(ser string, raw []byte, now time.Time) (TaskProgress, bool) {
	doc, err := driver.DecodeResultDoc(ser, raw)
	if err != nil || standardState(string(doc.Status)) {
		return TaskProgress{}, false
	}
	p := TaskProgress{State: string(doc.Status), Polled: now}
	var meta any
	if doc.DecodeResult(&meta) == nil {
		if _, err := json.Marshal(meta); err == nil {
			p.Meta = meta
		} else {
			p.Meta = driver.Repr(meta)
		}
	}
	if mm, ok := meta.(map[string]any); ok {
		c, okc := num(mm["current"])
		n, okn := num(mm["total"])
		if okc && okn {
			p.Current, p.Total, p.HasBar = c, n, true
		}
		if s, ok := mm["note"].(string); ok {
			p.Note = s
		}
	}
	return p, true
}

// apiProgress answers GET /api/progress: the polled tasks' progress by id.
func (m *Monitor) apiProgress(w http.ResponseWriter, r *http.Request) {
	all := m.progress.all()
	out := make(map[string]object, len(all))
	for id, p := range all {
		out[id] = p.object()
	}
	writeJSON(w, http.StatusOK, out)
}

// progressField is the "progress" member of a task's JSON (null when none).
func (m *Monitor) progressField(id string) any {
	if p, ok := m.progress.get(id); ok {
		return p.object()
	}
	return nil
}
