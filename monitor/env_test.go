package monitor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	_ "github.com/taskgen/taskgen/runtime/memory"
)

// emailArgs is what taskgen generates for func send(ctx, email string, n int).
type emailArgs struct {
	email string
	n     int
}

var emailArgsNames = codegen.ArgNames{{"email"}, {"n"}}

func (*emailArgs) ArgNames() codegen.ArgNames { return emailArgsNames }
func (a *emailArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.String(a.email)
	w.Int(int64(a.n))
	return nil
}
func (a *emailArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	switch i {
	case 0:
		a.email, err = r.String()
	case 1:
		var v int64
		v, err = r.Int(64)
		a.n = int(v)
	}
	return err
}

// HTTPError is the sign-up example's provider error.
type HTTPError struct{ Status int }

func (e *HTTPError) Error() string { return "email provider answered 503" }

var (
	sendDef = &codegen.TaskDef{Name: "signup.send_welcome_email", Queue: "emails", Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(emailArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			x := a.(*emailArgs)
			if x.n < 0 {
				return nil, &HTTPError{Status: 503}
			}
			return "msg-" + x.email, nil
		}}
	flakyDef = &codegen.TaskDef{Name: "signup.sync_crm", Retry: codegen.RetryPolicy{MaxRetries: 3, Backoff: 200 * time.Millisecond,
		BackoffMax: time.Second, DefaultDelay: time.Second, AutoretryFor: func(err error) bool { _, ok := errors.AsType[*HTTPError](err); return ok }},
		NewArgs: func() codegen.Args { return new(emailArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			x := a.(*emailArgs)
			info, _ := runtime.TaskFromContext(ctx)
			if info.Retries < x.n%3 {
				return nil, &HTTPError{Status: 503}
			}
			time.Sleep(time.Duration(x.n%7) * 3 * time.Millisecond)
			return map[string]any{"contact": x.email, "attempts": info.Retries + 1}, nil
		}}
	slowDef = &codegen.TaskDef{Name: "report.slow", Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(emailArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			select {
			case <-time.After(time.Duration(a.(*emailArgs).n) * time.Millisecond):
				return a.(*emailArgs).n, nil
			case <-ctx.Done():
				return nil, errors.New("cancelled")
			}
		}}
)

// env is a memory:// app, a monitor consuming it, its HTTP server and
// workers.
type env struct {
	t   *testing.T
	app *runtime.App
	mon *Monitor
	srv *httptest.Server
	url string
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	name := driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name, Logger: quietLogger(), Hostname: "client@test"})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	cfg := Config{App: app, PollInterval: 100 * time.Millisecond, Queues: []string{"celery", "emails"}}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg)
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
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return &env{t: t, app: app, mon: m, srv: srv, url: srv.URL}
}

// worker starts a worker on the env's app; stop stops it (worker-offline).
func (e *env) worker(hostname string, hb time.Duration) (stop func()) {
	e.t.Helper()
	w := e.app.NewWorker(runtime.WorkerOptions{Hostname: hostname, Queues: []string{"celery", "emails"}, Concurrency: 2,
		HeartbeatInterval: hb, ShutdownTimeout: 2 * time.Second})
	w.Register(sendDef)
	w.Register(slowDef)
	w.Register(flakyDef)
	w.Register(joinDef)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(e.t, <-done)
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// send enqueues signup.send_welcome_email(email, n); n < 0 fails.
func (e *env) send(email string, n int) string {
	e.t.Helper()
	res, err := runtime.NewStub[string](sendDef).With(runtime.WithApp(e.app)).Send(context.Background(), &emailArgs{email: email, n: n})
	require.NoError(e.t, err)
	return res.ID()
}

// waitState waits until the monitor has seen task id in state.
func (e *env) waitState(id, state string) Task {
	e.t.Helper()
	var t Task
	require.Eventually(e.t, func() bool {
		var ok bool
		t, ok = e.mon.State().Task(id)
		return ok && t.State == state
	}, 10*time.Second, 5*time.Millisecond, "task %s never reached %s (last %+v)", id, state, t)
	return t
}
