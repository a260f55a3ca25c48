package e2e

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/gallery"
	"github.com/taskgen/taskgen/example/internal/fakes"
	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// services are the fake outside services of one test: the email provider
// fails twice per recipient, then accepts.
type services struct {
	provider *fakes.EmailProvider
	slack    *fakes.Slack
	store    *fakes.Store
}

var photos = []string{"beach.png", "city.png", "forest.png"}

func startServices(t *testing.T) *services {
	t.Helper()
	provider, err := fakes.NewEmailProvider(2)
	require.NoError(t, err)
	t.Cleanup(func() { provider.Close() })
	slack, err := fakes.NewSlack()
	require.NoError(t, err)
	t.Cleanup(func() { slack.Close() })
	store, err := fakes.NewStore()
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	for i, p := range photos {
		require.NoError(t, store.PutPhoto(p, 320+80*i, 240, color.NRGBA{uint8(80 * i), 120, 200, 255}))
	}
	return &services{provider, slack, store}
}

// workflowRun is what one run of both workflows against a server checks.
type workflowRun struct {
	email, title string
}

// send calls /onboard and /gallery on base and returns the ids of the
// chain's and the chord's results.
func (r workflowRun) send(t *testing.T, base string) (chainID, chordID string) {
	t.Helper()
	get := func(path string, want int) string {
		var resp *http.Response
		var err error
		require.Eventually(t, func() bool { // the server binary may still be starting
			resp, err = http.Get(base + path)
			return err == nil
		}, 20*time.Second, 50*time.Millisecond, "GET %s: %v", path, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "GET %s: %s", path, body)
		id := resp.Header.Get("X-Task-Id")
		require.NotEmpty(t, id)
		return id
	}
	chainID = get("/onboard?email="+url.QueryEscape(r.email), http.StatusOK)
	q := url.Values{"title": {r.title}, "width": {"64"}, "photo": photos}
	chordID = get("/gallery?"+q.Encode(), http.StatusAccepted)
	return chainID, chordID
}

// check waits for both workflows' results on app and checks them and what
// the fake services saw.
func (r workflowRun) check(t *testing.T, app *runtime.App, svc *services, chainID, chordID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	text, err := runtime.NewAsyncResult[string](app, chainID).Get(ctx)
	require.NoError(t, err)
	acct, err := signup.CreateAccount.Call(ctx, r.email)
	require.NoError(t, err)
	local := strings.SplitN(acct.Email, "@", 2)[0]
	want := fmt.Sprintf("%s signed up (account %s, welcome email msg-%s-3)", acct.Email, acct.ID, local)
	require.Equal(t, want, text, "the chain's result: the last step's, after the email step's two retries")
	require.Equal(t, 3, svc.provider.Attempts(acct.Email))
	require.Contains(t, svc.slack.Messages(), fakes.SlackMessage{Channel: "#sign-ups", Text: want})

	g, err := runtime.NewAsyncResult[gallery.Gallery](app, chordID).Get(ctx)
	require.NoError(t, err)
	page := "galleries/" + strings.ReplaceAll(strings.ToLower(r.title), " ", "-") + ".html"
	require.Equal(t, gallery.Gallery{Title: r.title, URL: svc.store.URL + "/" + page, Photos: len(photos)}, g)
	html := string(svc.store.Data(page))
	last := -1
	for _, p := range photos {
		thumb := "thumbs/" + strings.TrimSuffix(p, ".png") + "-64.png"
		require.NotEmpty(t, svc.store.Data(thumb), thumb)
		at := strings.Index(html, svc.store.URL+"/"+thumb)
		require.Greater(t, at, last, "the page lists %s after the photos before it", thumb)
		last = at
	}
}

// TestWorkflows_InProcessOnEveryBroker runs the sign-up chain and the
// gallery chord through the real handlers (signup.Handler,
// gallery.Handler) and a worker in this process, on memory://, Redis and
// RabbitMQ (with the Redis result backend, which counts chords), with
// msgpack and JSON. Redis and RabbitMQ must be there: see internal/testenv
// (missing, the test skips, or fails when CI is set).
func TestWorkflows_InProcessOnEveryBroker(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	amqpURL := testenv.AMQPURL(t)
	svc := startServices(t)
	signup.Configure(signup.Provider{URL: svc.provider.URL + "/send"})
	signup.ConfigureSlack(signup.Slack{WebhookURL: svc.slack.URL + "/webhook"})
	gallery.Configure(gallery.Store{URL: svc.store.URL})

	// The handlers send with the default app, so the runs go one after
	// the other. Redis runs get key prefixes of their own.
	prefix := func(ser string) string { return "?global_keyprefix=wf-" + ser + "-" + driver.NewID()[:8] + ":" }
	brokers := []struct {
		name            string
		broker, backend func(ser string) string
	}{
		{"memory", func(ser string) string { return "memory://wf-" + ser }, func(ser string) string { return "memory://wf-" + ser }},
		{"redis", func(ser string) string { return testenv.RedisDB(redisURL, 5) + prefix(ser) }, func(ser string) string { return testenv.RedisDB(redisURL, 6) + prefix(ser) }},
		{"amqp", func(string) string { return amqpURL }, func(ser string) string { return testenv.RedisDB(redisURL, 6) + prefix(ser) }},
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			for _, ser := range []string{"msgpack", "json"} {
				t.Run(ser, func(t *testing.T) {
					app, err := runtime.New(runtime.Config{Broker: b.broker(ser), Backend: b.backend(ser), Serializer: ser,
						Hostname: "e2e-wf-" + b.name + "-" + ser + "@localhost"})
					require.NoError(t, err)
					defer app.Close()
					defer runtime.SetDefault(runtime.SetDefault(app))
					w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"accounts", "emails", "notifications", "images"},
						Concurrency: 4, ShutdownTimeout: 5 * time.Second, WithoutEvents: true})
					signup.RegisterTasks(w)
					gallery.RegisterTasks(w)
					ctx, stop := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- w.Run(ctx) }()
					defer func() { stop(); require.NoError(t, <-done) }()

					mux := http.NewServeMux()
					mux.Handle("/gallery", gallery.Handler(app.Logger()))
					mux.Handle("/", signup.Handler(app.Logger()))
					srv := httptest.NewServer(mux)
					defer srv.Close()

					run := workflowRun{email: "Ivy-" + b.name + "-" + ser + "@Example.com", title: "Trip " + b.name + " " + ser}
					chainID, chordID := run.send(t, srv.URL)
					run.check(t, app, svc, chainID, chordID)
				})
			}
		})
	}
}
