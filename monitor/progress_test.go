package monitor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// stepper drives report.import_rows: each value sent on step is one
// runtime.Progress call (current, of 3, note "row N"); after the third the
// task waits for finish, then returns. stored acks each stored update.
type stepper struct {
	step   chan int
	stored chan error
	finish chan struct{}
}

func newStepper() *stepper {
	return &stepper{step: make(chan int), stored: make(chan error), finish: make(chan struct{})}
}

func (s *stepper) def() *codegen.TaskDef {
	return &codegen.TaskDef{Name: "report.import_rows", Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(emailArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			for range 3 {
				select {
				case i := <-s.step:
					if i < 0 {
						s.stored <- runtime.UpdateState(ctx, "VALIDATING", map[string]any{"rows": 3})
						continue
					}
					s.stored <- runtime.Progress(ctx, i, 3, "row "+string(rune('0'+i)))
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			select {
			case <-s.finish:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return 3, nil
		}}
}

// newProgressEnv is newEnv on the given broker and backend URLs, with a
// worker running the stepper's task.
func newProgressEnv(t *testing.T, broker, backend string, s *stepper) (*env, *codegen.TaskDef) {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: broker, Backend: backend, Logger: quietLogger(), Hostname: "client@test"})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	m, err := New(Config{App: app, PollInterval: 100 * time.Millisecond, Queues: []string{"celery"}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	select {
	case <-m.Subscribed():
	case <-time.After(5 * time.Second):
		t.Fatal("monitor did not subscribe")
	}
	srv := httptest.NewServer(m.Handler())
	e := &env{t: t, app: app, mon: m, srv: srv, url: srv.URL}
	def := s.def()
	w := app.NewWorker(runtime.WorkerOptions{Hostname: "import@test", Queues: []string{"celery"}, Concurrency: 1, ShutdownTimeout: 2 * time.Second})
	w.Register(def)
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			close(s.finish)
			wcancel()
			<-wdone
			cancel()
			<-done
			srv.Close()
		})
	})
	return e, def
}

func (s *stepper) do(t *testing.T, i int) {
	t.Helper()
	s.step <- i
	require.NoError(t, <-s.stored)
}

func getProgress(t *testing.T, h http.Handler, id string) map[string]any {
	t.Helper()
	body := progressJSON(t, h, "/api/task/info/"+id)
	p, _ := body["progress"].(map[string]any)
	return p
}

func progressJSON(t *testing.T, h http.Handler, path string) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	return out
}

// waitProgress waits until the monitor's JSON shows want as the task's
// progress (a fresh poll of the backend).
func waitProgress(t *testing.T, h http.Handler, id string, want func(p map[string]any) bool, what string) map[string]any {
	t.Helper()
	var p map[string]any
	require.Eventually(t, func() bool {
		p = getProgress(t, h, id)
		return p != nil && want(p)
	}, 10*time.Second, 20*time.Millisecond, "progress of %s never became %s (last %v)", id, what, p)
	return p
}

func atStep(i int) func(map[string]any) bool {
	return func(p map[string]any) bool { return p["state"] == "PROGRESS" && p["current"] == float64(i) }
}

func testProgressAPI(t *testing.T, broker, backend string) {
	s := newStepper()
	e, def := newProgressEnv(t, broker, backend, s)
	h := e.mon.Handler()
	res, err := runtime.NewStub[int](def).With(runtime.WithApp(e.app)).Send(context.Background(), &emailArgs{email: "list.csv"})
	require.NoError(t, err)
	id := res.ID()
	e.waitState(id, StateStarted)
	require.Nil(t, progressJSON(t, h, "/api/task/info/"+id)["progress"], "no progress before the task reports any")

	s.do(t, -1) // a custom state
	p := waitProgress(t, h, id, func(p map[string]any) bool { return p["state"] == "VALIDATING" }, "VALIDATING")
	require.Equal(t, map[string]any{"rows": float64(3)}, p["meta"])
	require.NotContains(t, p, "current", "a custom state without current/total has no bar")

	s.do(t, 1)
	p = waitProgress(t, h, id, atStep(1), "1/3")
	require.Equal(t, float64(3), p["total"])
	require.InDelta(t, 100.0/3, p["percent"], 1e-9)
	require.Equal(t, "row 1", p["note"])
	all := progressJSON(t, h, "/api/progress")
	require.Contains(t, all, id)

	s.do(t, 2)
	p = waitProgress(t, h, id, atStep(2), "2/3")
	require.InDelta(t, 200.0/3, p["percent"], 1e-9)

	s.finish <- struct{}{}
	e.waitState(id, StateSuccess)
	require.Eventually(t, func() bool { return progressJSON(t, h, "/api/task/info/"+id)["progress"] == nil }, 10*time.Second, 20*time.Millisecond,
		"a finished task keeps showing progress")
	require.NotContains(t, progressJSON(t, h, "/api/progress"), id)
}

func TestProgress_API_Memory(t *testing.T) {
	name := driver.NewID()
	testProgressAPI(t, "memory://"+name, "memory://"+name)
}

func TestProgress_API_Redis(t *testing.T) {
	u := testenv.RedisURL(t) + "?global_keyprefix=taskmonpg" + driver.NewID()[:8] + ":"
	testProgressAPI(t, u, u)
}
