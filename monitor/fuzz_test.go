package monitor

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzState_HandleBody feeds arbitrary event bodies to the state: no panic,
// the bounds hold, and every reader still works.
func FuzzState_HandleBody(f *testing.F) {
	files, _ := filepath.Glob("testdata/celery/*.bin")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"type": "task-received", "uuid": "a", "hostname": "w", "args": [1, {"x": null}], "retries": "x", "timestamp": 1e308, "utcoffset": -1e9}`))
	f.Add([]byte(`[{"type": "worker-heartbeat", "hostname": "w", "freq": -1, "loadavg": "x"}, null, 3]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := newClock()
		s := newTestState(c, 5)
		_ = s.HandleBody(body)
		_ = s.HandleBody(body)
		c.Advance(time.Second)
		if n := s.Totals().Tasks; n > 5 {
			t.Fatalf("%d tasks kept, bound 5", n)
		}
		s.Workers()
		s.Series(10)
		s.QueueSeries(10)
		page, _ := s.Tasks(TaskQuery{Search: "a", SortBy: "-runtime"})
		for _, task := range page {
			s.Task(task.UUID)
			s.Children(task.UUID)
		}
		q, _ := ParseTaskQuery(url.Values{"search": {string(body)}}, time.UTC)
		s.Tasks(q)
		var buf bytes.Buffer
		if err := s.WriteMetrics(&buf); err != nil {
			t.Fatal(err)
		}
	})
}
