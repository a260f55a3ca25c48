package monitor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	_ "github.com/taskgen/taskgen/runtime/redis" // redis://
)

// bareWorker runs a worker on app that registers no task, so that every
// message it takes is dead-lettered.
func bareWorker(t *testing.T, app *runtime.App) (stop func()) {
	w := app.NewWorker(runtime.WorkerOptions{Hostname: "bare@test", Queues: []string{"celery"}, ShutdownTimeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); require.NoError(t, <-done) }) }
	t.Cleanup(stop)
	return stop
}

// authed sends a request with the monitor's basic auth and, for POSTs, the
// browser's same-origin marker; redirects are not followed.
func authed(t *testing.T, method, u string, form url.Values, hdr ...string) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth("admin", "s3cret")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

type dlAPI struct {
	Queues []struct {
		Name        string
		Count       int64
		DeadLetters []struct {
			ID, Task, Queue, Reason, Args string
			Time                          float64
		} `json:"dead_letters"`
	}
}

// TestDeadLetters_Page: a message no worker knows is dead-lettered; the
// page and GET /api/dead-letters list it with its task, id, queue, reason
// and time; requeue and drop need the basic auth and refuse cross-site
// posts; the page's requeue button sends it back and a worker that knows
// the task runs it; the API drops another.
func TestDeadLetters_Page(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.BasicAuth = "admin:s3cret"; c.Queues = []string{"celery"} })
	runDeadLetterPage(t, e)
}

// TestDeadLetters_PageRedis is the same on a real Redis.
func TestDeadLetters_PageRedis(t *testing.T) {
	testenv.SkipIfShort(t, "needs Redis")
	raw := testenv.RedisURL(t) + "?global_keyprefix=taskmondl" + driver.NewID()[:8] + ":"
	app, err := runtime.New(runtime.Config{Broker: raw, Backend: raw, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	m, err := New(Config{App: app, BasicAuth: "admin:s3cret", Queues: []string{"celery"}, PollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	base, stop, err := m.Start(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(stop)
	runDeadLetterPage(t, &env{t: t, app: app, mon: m, url: base})
}

func runDeadLetterPage(t *testing.T, e *env) {
	stopBare := bareWorker(t, e.app)
	id := apply(t, e, "report.slow", `{"args": ["x", 5]}`)

	var api dlAPI
	require.Eventually(t, func() bool {
		code, body, _ := authed(t, http.MethodGet, e.url+"/api/dead-letters", nil)
		api = dlAPI{}
		return code == 200 && json.Unmarshal([]byte(body), &api) == nil && len(api.Queues) == 1 && api.Queues[0].Count >= 1 &&
			containsID(api, id)
	}, 20*time.Second, 20*time.Millisecond, "last %+v", api)
	stopBare()
	require.Equal(t, "celery", api.Queues[0].Name)
	var dl = api.Queues[0].DeadLetters[0]
	for _, d := range api.Queues[0].DeadLetters {
		if d.ID == id {
			dl = d
		}
	}
	require.Equal(t, "report.slow", dl.Task)
	require.Equal(t, "celery", dl.Queue)
	require.Contains(t, dl.Reason, `unregistered task "report.slow"`)
	require.Equal(t, "('x', 5)", dl.Args)
	require.InDelta(t, float64(time.Now().Unix()), dl.Time, 60)

	code, page, _ := authed(t, http.MethodGet, e.url+"/dead-letters", nil)
	require.Equal(t, 200, code)
	require.Contains(t, page, `<tr data-id="`+id+`">`)
	require.Contains(t, page, `unregistered task &#34;report.slow&#34;`)
	require.Contains(t, page, `action="/dead-letters/requeue"`)
	require.Contains(t, page, `href="/dead-letters" class="active"`)

	// The same protection as every other route: basic auth, and no
	// cross-site form posts.
	req, _ := http.NewRequest(http.MethodPost, e.url+"/dead-letters/requeue", strings.NewReader(url.Values{"queue": {"celery"}, "id": {id}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	code, _, _ = authed(t, http.MethodPost, e.url+"/dead-letters/requeue", url.Values{"queue": {"celery"}, "id": {id}}, "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = authed(t, http.MethodPost, e.url+"/api/dead-letters/drop", url.Values{"queue": {"celery"}, "id": {id}}, "Origin", "https://evil.example")
	require.Equal(t, http.StatusForbidden, code)
	code, body, _ := authed(t, http.MethodGet, e.url+"/api/dead-letters?queue=celery", nil)
	require.Equal(t, 200, code)
	require.Contains(t, body, id, "refused posts changed nothing")

	// The page's button: a same-origin form post, redirected back.
	e.worker("w1@test", time.Second)
	code, _, hdr := authed(t, http.MethodPost, e.url+"/dead-letters/requeue", url.Values{"queue": {"celery"}, "id": {id}}, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/dead-letters?notice=1+requeued+to+celery", hdr.Get("Location"))
	e.waitState(id, StateSuccess)
	code, page, _ = authed(t, http.MethodGet, e.url+"/dead-letters?notice=1+requeued+to+celery", nil)
	require.Equal(t, 200, code)
	require.Contains(t, page, "1 requeued to celery")
	require.NotContains(t, page, `<tr data-id="`+id+`">`)

	// The API: drop one by id, with curl's defaults (no browser headers).
	other := apply(t, e, "nope.unknown", `{"args": [1]}`)
	require.Eventually(t, func() bool {
		_, body, _ := authed(t, http.MethodGet, e.url+"/api/dead-letters?queue=celery", nil)
		return strings.Contains(body, other)
	}, 20*time.Second, 20*time.Millisecond)
	code, body, _ = authed(t, http.MethodPost, e.url+"/api/dead-letters/drop", url.Values{"queue": {"celery"}, "id": {other}})
	require.Equal(t, 200, code, body)
	require.JSONEq(t, `{"queue": "celery", "dropped": 1}`, body)
	code, body, _ = authed(t, http.MethodGet, e.url+"/api/dead-letters?queue=celery", nil)
	require.Equal(t, 200, code)
	require.NotContains(t, body, other)
	code, body, _ = authed(t, http.MethodPost, e.url+"/api/dead-letters/drop", url.Values{"queue": {"celery"}, "id": {"no-such-id"}})
	require.Equal(t, 200, code, body)
	require.JSONEq(t, `{"queue": "celery", "dropped": 0}`, body)
	code, body, _ = authed(t, http.MethodPost, e.url+"/api/dead-letters/requeue", url.Values{"queue": {"celery"}})
	require.Equal(t, 400, code, body)
	require.Contains(t, body, "all=true")
	code, _, _ = authed(t, http.MethodPost, e.url+"/api/dead-letters/explode", url.Values{"queue": {"celery"}, "all": {"true"}})
	require.Equal(t, 404, code)
}

func containsID(api dlAPI, id string) bool {
	for _, q := range api.Queues {
		for _, d := range q.DeadLetters {
			if d.ID == id {
				return true
			}
		}
	}
	return false
}

// apply publishes task name with body through POST /api/task/async-apply,
// as a script would, and returns its id.
func apply(t *testing.T, e *env, name, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/task/async-apply/"+name, strings.NewReader(body))
	req.SetBasicAuth("admin", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var applied map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&applied))
	require.NotEmpty(t, applied["task-id"], "%v", applied)
	return applied["task-id"]
}
