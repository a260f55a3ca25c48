package monitor

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// getJSON decodes the answer into v, which it resets first (json.Unmarshal
// merges into maps).
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	reflect.ValueOf(v).Elem().SetZero()
	code, body := get(t, url)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
	return code
}

func post(t *testing.T, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI_FlowerEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.worker("w1@test", 200*time.Millisecond)
	ok := e.send("ann@example.com", 1)
	bad := e.send("bob@example.com", -1)
	e.waitState(ok, StateSuccess)
	e.waitState(bad, StateFailure)

	// /api/workers
	var workers map[string]map[string]any
	require.Equal(t, 200, getJSON(t, e.url+"/api/workers", &workers))
	require.Contains(t, workers, "w1@test")
	w := workers["w1@test"]
	require.Equal(t, "online", w["status"])
	require.Equal(t, 0.2, w["freq"])
	require.Equal(t, "taskgen", w["sw_ident"])
	var status map[string]bool
	getJSON(t, e.url+"/api/workers?status=true", &status)
	require.Equal(t, map[string]bool{"w1@test": true}, status)
	code, _ := get(t, e.url+"/api/workers?workername=nobody")
	require.Equal(t, 404, code)

	// /api/tasks keeps Flower's shape: {uuid: task}, ordered.
	code, body := get(t, e.url+"/api/tasks?taskname=signup.send_welcome_email&sort_by=received")
	require.Equal(t, 200, code)
	require.Less(t, strings.Index(body, ok), strings.Index(body, bad), "sorted by received")
	var tasks map[string]map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &tasks))
	require.Len(t, tasks, 2)
	getJSON(t, e.url+"/api/tasks?state=FAILURE", &tasks)
	require.Len(t, tasks, 1)
	require.Contains(t, tasks, bad)
	getJSON(t, e.url+"/api/tasks?search=ann@example&limit=5", &tasks)
	require.Len(t, tasks, 1)
	require.Contains(t, tasks, ok)
	getJSON(t, e.url+"/api/tasks?workername=w1@test&limit=1&offset=1", &tasks)
	require.Len(t, tasks, 1)
	code, _ = get(t, e.url+"/api/tasks?limit=x")
	require.Equal(t, 400, code)

	// /api/task/info
	var info map[string]any
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/info/"+ok, &info))
	require.Equal(t, ok, info["uuid"])
	require.Equal(t, "signup.send_welcome_email", info["name"])
	require.Equal(t, "SUCCESS", info["state"])
	require.Equal(t, "('ann@example.com', 1)", info["args"])
	require.Equal(t, "'msg-ann@example.com'", info["result"])
	require.Equal(t, "w1@test", info["worker"])
	require.Equal(t, "emails", info["routing_key"])
	require.Equal(t, ok, info["root_id"])
	require.IsType(t, float64(0), info["runtime"])
	require.Len(t, info["timeline"], 3)
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/info/"+bad, &info))
	require.Equal(t, "HTTPError('email provider answered 503')", info["exception"])
	code, _ = get(t, e.url+"/api/task/info/nope")
	require.Equal(t, 404, code)

	// /api/task/result reads the backend.
	var res map[string]any
	getJSON(t, e.url+"/api/task/result/"+ok, &res)
	require.Equal(t, map[string]any{"task-id": ok, "state": "SUCCESS", "result": "msg-ann@example.com"}, res)
	getJSON(t, e.url+"/api/task/result/"+bad, &res)
	require.Equal(t, "FAILURE", res["state"])
	require.Equal(t, "HTTPError('email provider answered 503')", res["result"])
	getJSON(t, e.url+"/api/task/result/unknown-id", &res)
	require.Equal(t, map[string]any{"task-id": "unknown-id", "state": "PENDING"}, res)

	// /api/queues/length
	var ql struct {
		ActiveQueues []struct {
			Name     string `json:"name"`
			Messages int64  `json:"messages"`
		} `json:"active_queues"`
	}
	require.Eventually(t, func() bool {
		getJSON(t, e.url+"/api/queues/length", &ql)
		return len(ql.ActiveQueues) == 2
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "celery", ql.ActiveQueues[0].Name)
	require.Equal(t, "emails", ql.ActiveQueues[1].Name)

	// /metrics
	code, body = get(t, e.url+"/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, `taskgen_tasks_total{name="signup.send_welcome_email",state="SUCCESS"} 1`)
	require.Contains(t, body, `taskgen_tasks_total{name="signup.send_welcome_email",state="FAILURE"} 1`)
	require.Contains(t, body, `taskgen_task_runtime_seconds_count{name="signup.send_welcome_email"} 1`)
	require.Eventually(t, func() bool {
		_, body := get(t, e.url+"/metrics")
		return strings.Contains(body, `taskgen_queue_depth{queue="emails"} 0`)
	}, 5*time.Second, 20*time.Millisecond)
	require.Contains(t, body, "taskgen_workers_online 1\n")
}

func TestAPI_ResultFromEventsWithoutBackend(t *testing.T) {
	t.Parallel()
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Logger: quietLogger()})
	require.NoError(t, err)
	defer app.Close()
	m, err := New(Config{App: app})
	require.NoError(t, err)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	m.State().Event(map[string]any{"type": "task-succeeded", "uuid": "a", "hostname": "w", "result": "'x'", "runtime": 0.1})
	m.State().Event(map[string]any{"type": "task-received", "uuid": "b", "hostname": "w", "name": "n"})
	var res map[string]any
	getJSON(t, srv.URL+"/api/task/result/a", &res)
	require.Equal(t, map[string]any{"task-id": "a", "state": "SUCCESS", "result": "'x'"}, res)
	getJSON(t, srv.URL+"/api/task/result/b", &res)
	require.Equal(t, map[string]any{"task-id": "b", "state": "PENDING"}, res)
}

func TestAPI_AsyncApplyAndRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.worker("w1@test", 200*time.Millisecond)

	code, body := post(t, e.url+"/api/task/async-apply/signup.send_welcome_email", `{"args": ["carol@example.com", 3], "kwargs": {}, "queue": "emails"}`)
	require.Equal(t, 200, code, body)
	var out map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	id := out["task-id"]
	require.NotEmpty(t, id)
	require.Equal(t, "PENDING", out["state"])
	task := e.waitState(id, StateSuccess)
	require.Equal(t, "('carol@example.com', 3)", task.Args)
	require.Equal(t, "'msg-carol@example.com'", task.Result)

	// kwargs by name, a countdown.
	code, body = post(t, e.url+"/api/task/async-apply/signup.send_welcome_email", `{"kwargs": {"email": "dan@example.com", "n": 1}, "countdown": 0.05, "queue": "emails"}`)
	require.Equal(t, 200, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	task = e.waitState(out["task-id"], StateSuccess)
	require.Equal(t, "{'email': 'dan@example.com', 'n': 1}", task.Kwargs)
	require.NotEmpty(t, task.ETA)

	code, body = post(t, e.url+"/api/task/async-apply/x", `{"args": "nope"}`)
	require.Equal(t, 400, code, body)

	// A browser's cross-site POST is refused (CSRF); a same-origin one passes.
	code, _ = post(t, e.url+"/api/task/revoke/"+id, "", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	require.Equal(t, http.StatusForbidden, code)

	long, err := runtime.NewStub[int](slowDef).With(runtime.WithApp(e.app), runtime.Countdown(time.Hour)).Send(t.Context(), &emailArgs{n: 1})
	require.NoError(t, err)
	e.waitState(long.ID(), StateReceived)
	code, body = post(t, e.url+"/api/task/revoke/"+long.ID()+"?terminate=true", "", "Sec-Fetch-Site", "same-origin")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, "Revoked '"+long.ID()+"'")
	task, _ = e.mon.State().Task(long.ID())
	require.Equal(t, StateRevoked, task.State)
	require.True(t, task.Terminated)
}

func TestAPI_BasicAuthAndHostCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.BasicAuth = "admin:s3cret" })
	for _, path := range []string{"/", "/tasks", "/api/workers", "/metrics", "/static/taskmon.js", "/api/events/stream"} {
		code, _ := get(t, e.url+path)
		require.Equal(t, http.StatusUnauthorized, code, path)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/workers", nil)
	req.SetBasicAuth("admin", "wrong")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req.SetBasicAuth("admin", "s3cret")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	_, err = New(Config{App: e.app, BasicAuth: "nocolon"})
	require.Error(t, err)

	// A loopback monitor without auth refuses foreign Host names (DNS rebinding).
	m, err := New(Config{App: e.app})
	require.NoError(t, err)
	m.hostCheck = true
	for host, want := range map[string]int{"127.0.0.1:5555": 200, "localhost:5555": 200, "[::1]:5555": 200, "evil.example:5555": 421} {
		r := httptest.NewRequest(http.MethodGet, "/healthcheck", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, r)
		require.Equal(t, want, rec.Code, host)
	}
}

func TestPages_RenderAndHideSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.worker("w1@test", 200*time.Millisecond)
	id := e.send("ann@example.com", 1)
	e.waitState(id, StateSuccess)
	for path, want := range map[string]string{
		"/":                                "w1@test",
		"/tasks":                           id,
		"/tasks?search=ann":                id,
		"/task/" + id:                      "msg-ann@example.com",
		"/broker":                          "emails",
		"/static/taskmon.js":               "EventSource",
		"/static/vendor/uPlot.iife.min.js": "uPlot",
	} {
		code, body := get(t, e.url+path)
		require.Equal(t, 200, code, path)
		require.Contains(t, body, want, path)
	}
	code, body := get(t, e.url+"/task/nope")
	require.Equal(t, 404, code)
	require.Contains(t, body, "Unknown task")
	code, _ = get(t, e.url+"/tasks?sort_by=bogus")
	require.Equal(t, 400, code)

	// A broker password never shows.
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name + "?x=1", Backend: "memory://user:hunter2@" + name, Logger: quietLogger()})
	require.NoError(t, err)
	defer app.Close()
	m, err := New(Config{App: app})
	require.NoError(t, err)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, path := range []string{"/", "/broker", "/tasks"} {
		_, body := get(t, srv.URL+path)
		require.NotContains(t, body, "hunter2", path)
	}
	_, body = get(t, srv.URL+"/broker")
	require.Contains(t, body, "memory://user:", "the backend is shown, masked")
}

func TestAPI_EventStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.worker("w1@test", 200*time.Millisecond)
	resp, err := http.Get(e.url + "/api/events/stream")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var snaps []map[string]any
	for len(snaps) < 2 && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var s map[string]any
			require.NoError(t, json.Unmarshal([]byte(d), &s))
			snaps = append(snaps, s)
		}
	}
	require.Len(t, snaps, 2)
	p0 := snaps[0]["point"].(map[string]any)["t"].(float64)
	p1 := snaps[1]["point"].(map[string]any)["t"].(float64)
	require.Greater(t, p1, p0, "one point per second")
	require.NotEmpty(t, snaps[1]["workers"])
}

// TestStart_InProcess is what example/cmd/demo does: a monitor on the app's
// own memory:// broker, its URL, and a summary from its API.
func TestStart_InProcess(t *testing.T) {
	t.Parallel()
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name, Logger: quietLogger()})
	require.NoError(t, err)
	defer app.Close()
	url, stop, err := Start(t.Context(), app, "127.0.0.1:0")
	require.NoError(t, err)
	defer stop()
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), url)

	e := &env{t: t, app: app}
	e.worker("demo@localhost", 100*time.Millisecond)
	id := e.send("ann@example.com", 1)
	var sum struct {
		Totals  Totals `json:"totals"`
		Workers []struct {
			Hostname string `json:"hostname"`
			Status   string `json:"status"`
		} `json:"workers"`
	}
	require.Eventually(t, func() bool {
		getJSON(t, url+"/api/summary", &sum)
		return sum.Totals.Succeeded == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "demo@localhost", sum.Workers[0].Hostname)
	require.Equal(t, "online", sum.Workers[0].Status)
	var info map[string]any
	require.Equal(t, 200, getJSON(t, url+"/api/task/info/"+id, &info))
	stop()
	_, err = http.Get(url + "/healthcheck")
	require.Error(t, err, "stopped")
}
