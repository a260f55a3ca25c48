package monitor

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write docs/dashboard.png and docs/task.png from the browser test")

// chromiumPath finds Debian's chromium (or $TASKMON_CHROMIUM). Without it the
// browser tests skip, or fail when CI is set.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TASKMON_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		if lp, err := exec.LookPath("chromium"); err == nil {
			return lp
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium not found at %s (CI is set: browser tests must run; apt-get install chromium)", p)
		}
		t.Skipf("chromium not found at %s; skipping browser tests (set CI to make this a failure)", p)
	}
	return p
}

// newBrowser starts headless chromium with a fresh profile.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return ctx
}

// within runs steps with a deadline.
func within(t *testing.T, ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	require.NoError(t, chromedp.Do(c, steps...))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// eventuallyJS evaluates a predicate until it is true, across page loads.
func eventuallyJS(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("browser: %s never became true (last error: %v)", js, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitJS(expr string, d time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond))
}

func TestBrowser_Monitor(t *testing.T) {
	testenv.SkipIfShort(t, "browser tests are not short")
	ctx := newBrowser(t)
	e := newEnv(t, func(c *Config) { c.PollInterval = 250 * time.Millisecond })
	const freq = 250 * time.Millisecond
	e.worker("emails@host-1", freq)
	carol := e.send("carol@example.com", 4)
	failed := e.send("bob@example.com", -1)
	e.waitState(carol, StateSuccess)
	e.waitState(failed, StateFailure)

	t.Run("every page loads", func(t *testing.T) {
		for path, sel := range map[string]string{
			"/": "#workers", "/tasks": "#tasks", "/task/" + carol: "#timeline", "/broker": "#queues", "/beat": "#beat-store",
		} {
			within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+path), chromedp.WaitVisible(chromedp.CSS(sel)))
			title := eval[string](t, ctx, "document.title")
			require.Contains(t, title, "taskmon", path)
		}
		within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/"),
			waitJS(`typeof uPlot === 'function' && document.querySelectorAll('#chart-tasks canvas').length > 0`, 5*time.Second))
	})

	t.Run("a worker goes online then offline without reload", func(t *testing.T) {
		within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#workers")))
		eval[bool](t, ctx, "window.__noReload = true")
		stop := e.worker("reports@host-2", freq)
		sel := `(document.querySelector('tr[data-worker="reports@host-2"] [data-status]') || {}).textContent`
		within(t, ctx, 5*time.Second, waitJS(sel+` === 'online'`, 5*time.Second))
		stop()
		start := time.Now()
		// worker-offline is immediate; the page learns it at the next SSE tick.
		within(t, ctx, 2*freq+3*time.Second, waitJS(sel+` === 'offline'`, 2*freq+3*time.Second))
		t.Logf("offline shown %v after the worker stopped", time.Since(start).Round(time.Millisecond))
		require.True(t, eval[bool](t, ctx, "window.__noReload === true"), "the page was not reloaded")

		// A worker that falls silent (no worker-offline) goes offline after
		// 2 × freq by Flower's rule.
		et := e.app.Broker().(driver.EventTransport)
		body := fmt.Sprintf(`{"hostname": "silent@host-9", "utcoffset": 0, "pid": 1, "clock": 1, "freq": 0.25, "active": 0, "processed": 0, "loadavg": [0.1, 0.1, 0.1], "sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux", "timestamp": %f, "type": "worker-online"}`, float64(time.Now().UnixNano())/1e9)
		require.NoError(t, et.PublishEvent(context.Background(), &driver.RawMessage{ContentType: "application/json", RoutingKey: "worker.online", Body: []byte(body)}))
		silent := `(document.querySelector('tr[data-worker="silent@host-9"] [data-status]') || {}).textContent`
		within(t, ctx, 5*time.Second, waitJS(silent+` !== undefined`, 5*time.Second))
		within(t, ctx, 3*time.Second, waitJS(silent+` === 'offline'`, 3*time.Second))
	})

	t.Run("a graph updates", func(t *testing.T) {
		within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/"),
			waitJS(`window.taskmon && window.taskmon.state.updates >= 1`, 5*time.Second))
		lastX := eval[float64](t, ctx, `(function(d){return d[d.length-1]})(window.taskmon.charts.tasks.data[0])`)
		before := eval[string](t, ctx, `document.querySelector('#total-succeeded').textContent`)
		for i := 0; i < 5; i++ {
			e.send(fmt.Sprintf("graph%d@example.com", i), 1)
		}
		within(t, ctx, 5*time.Second,
			waitJS(fmt.Sprintf(`(function(d){return d[d.length-1]})(window.taskmon.charts.tasks.data[0]) > %f`, lastX), 5*time.Second),
			waitJS(`window.taskmon.charts.tasks.data[1].reduce(function(a,b){return a+(b||0)},0) >= 5`, 5*time.Second),
			waitJS(fmt.Sprintf(`document.querySelector('#total-succeeded').textContent !== %q`, before), 5*time.Second))
	})

	t.Run("a search finds a task and its detail opens", func(t *testing.T) {
		within(t, ctx, 10*time.Second,
			chromedp.Navigate(e.url+"/tasks"),
			chromedp.SendKeys(chromedp.ID("search"), "carol@"),
			chromedp.Submit(chromedp.ID("search")))
		// The form reloads the page: poll across the navigation.
		eventuallyJS(t, ctx, fmt.Sprintf(`location.search.indexOf('search=carol') >= 0 && document.querySelector('tr[data-uuid=%q]') !== null && document.querySelectorAll('#tasks tbody tr').length === 1`, carol))
		within(t, ctx, 5*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/task/%s"]`, carol))))
		eventuallyJS(t, ctx, fmt.Sprintf(`location.pathname === '/task/%s' && document.querySelector('#task-uuid') !== null`, carol))
		require.Equal(t, carol, eval[string](t, ctx, `document.querySelector('#task-uuid').textContent`))
		require.Equal(t, "'msg-carol@example.com'", eval[string](t, ctx, `document.querySelector('#task-result').textContent`))
		require.Equal(t, 3, eval[int](t, ctx, `document.querySelectorAll('#timeline tbody tr').length`))
		require.Equal(t, "SUCCESS", eval[string](t, ctx, `document.querySelector('#task-state').textContent`))
	})

	t.Run("the beat page shows the leader and the entries", func(t *testing.T) {
		s := beat.New(e.app,
			beat.Every("heartbeat", 100*time.Millisecond, runtime.Named[int]("tasks.heartbeat", 1), beat.Offset(0), beat.Options(runtime.Queue("beat"))),
			beat.Cron("nightly-report", "30 2 * * 1-5", runtime.Named[string]("tasks.report", "nightly"), beat.CatchUp(beat.Skip), beat.Options(runtime.Queue("beat"))),
		)
		s.Holder, s.Lease = "beat@browser", 600*time.Millisecond
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		stopped := false
		halt := func() {
			if !stopped {
				stopped = true
				cancel()
				require.NoError(t, <-done)
			}
		}
		t.Cleanup(halt)

		sec := `document.querySelector('section.beat[data-key="default"]')`
		field := func(name string) string {
			return fmt.Sprintf(`(%s.querySelector('[data-field=%q]') || {}).textContent`, sec, name)
		}
		cell := func(entry, name string) string {
			return fmt.Sprintf(`(%s.querySelector('tr[data-entry=%q] [data-field=%q]') || {}).textContent`, sec, entry, name)
		}
		// The page is rendered from the latest poll: reload until the
		// leader's document is there with a few slots sent.
		reloadUntil := func(js string) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/beat"), chromedp.WaitVisible(chromedp.CSS("#beat-store")))
				if eval[bool](t, ctx, js) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("browser: %s never became true on /beat", js)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		reloadUntil(fmt.Sprintf(`%s === 'beat@browser' && Number(%s) >= 3`, field("leader"), cell("heartbeat", "sent")))
		require.Equal(t, "leading", eval[string](t, ctx, field("status")))
		require.Equal(t, "Beat", eval[string](t, ctx, `document.querySelector('nav a.active').textContent`))
		require.Equal(t, []string{"heartbeat", "nightly-report"},
			eval[[]string](t, ctx, fmt.Sprintf(`Array.from(%s.querySelectorAll('.beat-entries tbody tr')).map(function(r){return r.dataset.entry})`, sec)))
		require.Equal(t, "every 100ms", eval[string](t, ctx, cell("heartbeat", "schedule")))
		require.Equal(t, "tasks.heartbeat(1)", eval[string](t, ctx, cell("heartbeat", "signature")))
		require.Equal(t, "cron 30 2 * * 1-5", eval[string](t, ctx, cell("nightly-report", "schedule")))
		require.Equal(t, `tasks.report("nightly")`, eval[string](t, ctx, cell("nightly-report", "signature")))
		require.Equal(t, "skip", eval[string](t, ctx, cell("nightly-report", "catch-up")))
		require.Equal(t, "never", eval[string](t, ctx, cell("nightly-report", "last-sent")))
		require.Contains(t, eval[string](t, ctx, cell("nightly-report", "next")), "(in ")
		require.Contains(t, eval[string](t, ctx, cell("heartbeat", "last-sent")), "ago")
		require.Contains(t, eval[string](t, ctx, field("lease")), "left of 600.0 ms")
		require.GreaterOrEqual(t, eval[int](t, ctx, fmt.Sprintf(`Number(%s.querySelector('[data-field="slots-sent"]').textContent)`, sec)), 3)

		// The scheduler stops: the page says no scheduler leads.
		halt()
		reloadUntil(fmt.Sprintf(`%s === 'no leader'`, field("status")))
		require.Equal(t, "none", eval[string](t, ctx, field("leader")))
		require.Contains(t, eval[string](t, ctx, field("note")), "No scheduler leads this schedule")
		require.Contains(t, eval[string](t, ctx, cell("heartbeat", "last-sent")), "ago")
	})

	if *updateScreenshots {
		screenshots(t, ctx, e)
	}
}

// screenshots runs some traffic for the graphs, then writes docs/*.png.
func screenshots(t *testing.T, ctx context.Context, e *env) {
	e.worker("crm@host-3", 2*time.Second)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			email := fmt.Sprintf("user%d@example.com", i)
			switch {
			case i%9 == 0:
				e.send(email, -1)
			case i%2 == 0:
				e.send(email, i%50)
			default:
				runtime.NewStub[any](flakyDef).With(runtime.WithApp(e.app)).Send(context.Background(), &emailArgs{email: email, n: i})
			}
			if i%25 == 0 { // a backlog for the queue graph
				for j := 0; j < 20; j++ {
					runtime.NewStub[int](slowDef).With(runtime.WithApp(e.app)).Send(context.Background(), &emailArgs{n: 150})
				}
			}
		}
	}()
	within(t, ctx, 10*time.Second, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(e.url+"/"))
	time.Sleep(40 * time.Second)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), png, 0o644))
	close(stop)

	page, _ := e.mon.State().Tasks(TaskQuery{Name: flakyDef.Name, States: []string{StateSuccess}, SortBy: "-retries", Limit: 1})
	require.NotEmpty(t, page)
	within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/task/"+page[0].UUID), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "docs", "task.png"), png, 0o644))
	t.Log("wrote docs/dashboard.png and docs/task.png")
}

// TestBrowser_Workflow runs a chain and a chord (then one more step) on a
// Go worker over a real Redis, broker and result backend, and follows in
// chromium the links between steps, parents, root, group and chord body.
func TestBrowser_Workflow(t *testing.T) {
	testenv.SkipIfShort(t, "browser tests are not short")
	ctx := newBrowser(t)
	srv := testenv.NewRedisServer(t)
	app, err := runtime.New(runtime.Config{Broker: srv.URL(), Backend: testenv.RedisDB(srv.URL(), 1), Logger: quietLogger(), Hostname: "client@test"})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	m, err := New(Config{App: app, PollInterval: 250 * time.Millisecond, Queues: []string{"celery", "emails"}})
	require.NoError(t, err)
	base, stop, err := m.Start(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(stop)
	e := &env{t: t, app: app, mon: m, url: base}
	e.worker("w1@redis", 250*time.Millisecond)

	rows := func(table string) []string {
		t.Helper()
		return eval[[]string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll('#%s tbody tr')).map(function(r){return r.dataset.uuid})`, table))
	}
	badges := func(table string) []string {
		t.Helper()
		return eval[[]string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll('#%s tbody tr .badge')).map(function(b){return b.textContent})`, table))
	}
	href := func(sel string) string {
		t.Helper()
		return eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q) || {getAttribute: function(){return 'missing: ' + %q}}).getAttribute('href')`, sel, sel))
	}
	// click follows the link sel and waits for the page at path.
	click := func(sel, path, ready string) {
		t.Helper()
		within(t, ctx, 5*time.Second, chromedp.Click(chromedp.CSS(sel)))
		eventuallyJS(t, ctx, fmt.Sprintf(`location.pathname === %q && document.querySelector(%q) !== null`, path, ready))
	}

	t.Run("a chain step links its parent, root and child", func(t *testing.T) {
		first, last := e.chain("dora@example.com")
		within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/task/"+last), chromedp.WaitVisible(chromedp.CSS("#workflow")))
		require.Equal(t, []string{first, last}, rows("workflow"))
		require.Equal(t, []string{"SUCCESS", "SUCCESS"}, badges("workflow"))
		require.Equal(t, last, eval[string](t, ctx, `document.querySelector('#workflow tr.current').dataset.uuid`))
		require.Equal(t, "signup.send_welcome_email", eval[string](t, ctx, `document.querySelector('#workflow tbody tr td:nth-child(2)').textContent`))
		require.Equal(t, "/task/"+first, href("#task-parent a"))
		require.Equal(t, "/task/"+first, href("#task-root a"))
		require.Equal(t, "/task/"+first, href("#workflow tbody tr:nth-child(2) td:nth-child(5) a"), "the Parent column")
		// The parent link opens the first step, whose child links back.
		click("#task-parent a", "/task/"+first, "#workflow")
		require.Equal(t, first, eval[string](t, ctx, `document.querySelector('#task-uuid').textContent`))
		require.Contains(t, eval[string](t, ctx, `document.querySelector('#task-root').textContent`), "(this task)")
		require.Equal(t, []string{first, last}, rows("workflow"))
		click("#task-children a", "/task/"+last, "#workflow")
	})

	t.Run("a chord's members, group and body link each other", func(t *testing.T) {
		wf := e.chord("ann@example.com", "bob@example.com", "cat@example.com")
		mem, body, last, gid := wf.members, wf.body, wf.last, wf.group
		all := []string{mem[0], mem[1], mem[2], body, last}

		// The root's page (a Go chord's root is its first member) lists
		// every step in order, with states and group links.
		within(t, ctx, 10*time.Second, chromedp.Navigate(e.url+"/task/"+mem[0]), chromedp.WaitVisible(chromedp.CSS("#workflow")))
		require.Equal(t, all, rows("workflow"))
		require.Equal(t, []string{"SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"}, badges("workflow"))
		require.Equal(t, "5 tasks", eval[string](t, ctx, `document.querySelector('#workflow-count').textContent.slice(0, 7)`))
		for i := range 3 {
			require.Equal(t, "/group/"+gid, href(fmt.Sprintf("#workflow tbody tr:nth-child(%d) td:nth-child(6) a", i+1)), "member %d", i)
		}
		require.Equal(t, "/group/"+gid, href("#workflow tbody tr:nth-child(4) td:nth-child(6) a"), "the body's chord group")
		require.Contains(t, eval[string](t, ctx, `document.querySelector('#workflow tbody tr:nth-child(4) td:nth-child(6)').textContent`), "body of")
		require.Equal(t, "/task/"+body, href("#task-chord a"))

		// Member → group page: members by index, root, chord body.
		click("#task-group a", "/group/"+gid, "#group-members")
		require.Equal(t, gid, eval[string](t, ctx, `document.querySelector('#group-id').textContent`))
		require.Equal(t, mem, rows("group-members"))
		require.Equal(t, []string{"SUCCESS", "SUCCESS", "SUCCESS"}, badges("group-members"))
		require.Equal(t, "/task/"+mem[0], href("#group-root a"))
		require.Equal(t, "/task/"+body, href("#group-chord-body a"))
		require.Equal(t, []string{body}, rows("group-chord"))

		// Group → chord body: the group it follows, its child.
		click("#group-chord-body a", "/task/"+body, "#workflow")
		require.Equal(t, "report.join", eval[string](t, ctx, `document.querySelector('h1').firstChild.textContent.trim()`))
		require.Equal(t, "/group/"+gid, href("#task-chord-of a"))
		require.Equal(t, body, eval[string](t, ctx, `document.querySelector('#workflow tr.current').dataset.uuid`))
		require.Equal(t, all, rows("workflow"))

		// Body → last step → its parent (the body) and root (the first member).
		click("#task-children a", "/task/"+last, "#workflow")
		require.Equal(t, "/task/"+body, href("#task-parent a"))
		click("#task-root a", "/task/"+mem[0], "#workflow")
		require.Equal(t, mem[0], eval[string](t, ctx, `document.querySelector('#task-uuid').textContent`))

		// A member row of the workflow table opens that member.
		click(fmt.Sprintf(`#workflow a[href="/task/%s"]`, mem[2]), "/task/"+mem[2], "#task-group")
		require.Contains(t, eval[string](t, ctx, `document.querySelector('#task-group').textContent`), "member 3, 3 known")
	})
}
