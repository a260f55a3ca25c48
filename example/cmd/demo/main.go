// Command demo runs the whole sign-up scenario in one process on the
// in-process broker (memory://), with nothing to install:
//
//   - a fake email provider that fails the first attempts of every email,
//     a fake Slack webhook and a fake photo store (example/internal/fakes);
//   - the sign-up web server (signup.Handler, gallery.Handler) on a
//     loopback port;
//   - a worker running the example's tasks, retrying with exponential backoff;
//   - a client that signs up a few users (/sign-up: SendWelcomeEmail), then
//     onboards one (/onboard: the chain CreateAccount → SendWelcome →
//     NotifySlack) and builds a gallery (/gallery: a chord of
//     RenderThumbnail calls with BuildGallery as its body), imports a small
//     contact list (POST /contacts/import: ImportContacts, which reports its
//     progress row by row) and polls GET /contacts/import/{id} until it is
//     done, and waits for every result.
//
// It prints each sign-up, each failed attempt with its backoff delay, each
// success with its result, each step of the import's progress, and exits 0 when every email went out and both
// workflows finished (1 otherwise, or after -timeout). `make demo` runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgen/taskgen/example/gallery"
	"github.com/taskgen/taskgen/example/internal/fakes"
	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/monitor"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	_ "github.com/taskgen/taskgen/runtime/memory"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
)

func main() {
	users := flag.Int("users", 3, "sign-ups to send")
	failures := flag.Int("failures", 2, "failed provider answers before each email succeeds")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after")
	flag.Parse()
	if err := run(*users, *failures, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// photos are the gallery's photos, put in the fake store at start.
var photos = []struct {
	name          string
	width, height int
	color         color.NRGBA
}{
	{"beach.png", 640, 480, color.NRGBA{250, 200, 120, 255}},
	{"city.png", 800, 450, color.NRGBA{120, 130, 160, 255}},
	{"forest.png", 480, 640, color.NRGBA{60, 180, 90, 255}},
}

func run(users, failures int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log := slog.New(&lineHandler{w: os.Stdout, start: time.Now()})

	provider, err := fakes.NewEmailProvider(failures)
	if err != nil {
		return err
	}
	defer provider.Close()
	signup.Configure(signup.Provider{URL: provider.URL + "/send"})
	slack, err := fakes.NewSlack()
	if err != nil {
		return err
	}
	defer slack.Close()
	slack.OnPost = func(m fakes.SlackMessage) { fmt.Printf("slack %s: %s\n", m.Channel, m.Text) }
	signup.ConfigureSlack(signup.Slack{WebhookURL: slack.URL + "/webhook"})
	store, err := fakes.NewStore()
	if err != nil {
		return err
	}
	defer store.Close()
	for _, p := range photos {
		if err := store.PutPhoto(p.name, p.width, p.height, p.color); err != nil {
			return err
		}
	}
	gallery.Configure(gallery.Store{URL: store.URL})

	app, err := runtime.New(runtime.Config{Broker: "memory://", Backend: "memory://", Logger: log, Hostname: "demo@localhost"})
	if err != nil {
		return err
	}
	defer app.Close()
	runtime.SetDefault(app)
	signup.ConfigureResults(app)
	signup.ConfigureImport(signup.Importer{RowDelay: 40 * time.Millisecond})

	// Tracing: every publish and run is a span (runtime/otel), kept in
	// memory here; the demo prints the trace of the first sign-up.
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())
	taskotel.Instrument(app, taskotel.WithTracerProvider(tp), taskotel.WithPropagator(propagation.TraceContext{}))

	// The periodic tasks: the example's //task:schedule entries (a digest
	// every minute, a weekday-morning one), and for the demo the same
	// digest every 2 s, run by the worker's scheduler (celery worker -B).
	sched := beat.New(app, append(signup.Schedules(), beat.Every("demo.digest", 2*time.Second, signup.SignupDigest.Sig()))...)
	digests := make(chan string, 16)
	sched.OnSend = func(entry string, slot, _ time.Time) {
		select {
		case digests <- beat.SlotID(sched.Key, entry, slot):
		default:
		}
	}
	for _, e := range sched.Entries() {
		fmt.Printf("beat: %s\n", e)
	}
	worker := app.NewWorker(runtime.WorkerOptions{Queues: []string{"accounts", "emails", "notifications", "images"}, Concurrency: 4,
		ShutdownTimeout: 5 * time.Second, Beat: sched})
	signup.RegisterTasks(worker)
	gallery.RegisterTasks(worker)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() { workerDone <- worker.Run(workerCtx) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/gallery", gallery.Handler(log))
	mux.Handle("/", signup.Handler(log))
	traced := otelhttp.NewHandler(mux, "http", otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	srv := &http.Server{Handler: traced, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	monURL, stopMonitor, err := monitor.Start(ctx, app, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopMonitor()
	fmt.Printf("taskgen demo: sign-up server on %s, email provider on %s/send, broker memory://\n", base, provider.URL)
	fmt.Printf("taskgen demo: monitor on %s\n\n", monURL)

	// get sends a GET to the server and returns the X-Task-Id of its answer.
	get := func(path string, want int) (string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return "", fmt.Errorf("GET %s: %s %s", path, resp.Status, body)
		}
		id := resp.Header.Get("X-Task-Id")
		fmt.Printf("client: GET %s -> %q (task %s)\n", path, strings.TrimSpace(string(body)), id)
		return id, nil
	}

	var ids []string
	for i := 1; i <= users; i++ {
		id, err := get(fmt.Sprintf("/sign-up?email=user%d@example.com", i), http.StatusOK)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	// The workflows: a chain of three tasks, and a chord of one thumbnail
	// per photo then the gallery. Their ids are their results': the
	// chain's last step, the chord's body.
	chainID, err := get("/onboard?email=dana@example.com", http.StatusOK)
	if err != nil {
		return err
	}
	q := url.Values{"title": {"Summer 2026"}, "width": {"160"}}
	for _, p := range photos {
		q.Add("photo", p.name)
	}
	chordID, err := get("/gallery?"+q.Encode(), http.StatusAccepted)
	if err != nil {
		return err
	}

	importPoll, err := startImport(base)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make([]error, len(ids)+3)
	for i, id := range ids {
		wg.Go(func() {
			res := runtime.NewAsyncResult[string](app, id)
			msgID, err := res.Get(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			fmt.Printf("result: task %s -> provider message id %q\n", id, msgID)
		})
	}
	wg.Go(func() {
		text, err := runtime.NewAsyncResult[string](app, chainID).Get(ctx)
		if err != nil {
			errs[len(ids)] = fmt.Errorf("onboarding chain: %w", err)
			return
		}
		fmt.Printf("result: chain CreateAccount → SendWelcome → NotifySlack %s -> %q\n", chainID, text)
	})
	wg.Go(func() {
		g, err := runtime.NewAsyncResult[gallery.Gallery](app, chordID).Get(ctx)
		if err != nil {
			errs[len(ids)+1] = fmt.Errorf("gallery chord: %w", err)
			return
		}
		page := strings.TrimPrefix(g.URL, store.URL+"/")
		fmt.Printf("result: chord %d × RenderThumbnail → BuildGallery %s -> %q, %d photos, page %s (%d bytes, %d <img>)\n",
			len(photos), chordID, g.Title, g.Photos, page, len(store.Data(page)), strings.Count(string(store.Data(page)), "<img "))
	})
	wg.Go(func() { errs[len(ids)+2] = followImport(ctx, base+importPoll) })
	wg.Wait()
	// The next digest after the emails went out reports them.
	digestErr := func() error {
		for len(digests) > 0 {
			<-digests // slots sent before the emails were all out
		}
		select {
		case id := <-digests:
			text, err := runtime.NewAsyncResult[string](app, id).Get(ctx)
			if err != nil {
				return fmt.Errorf("digest: %w", err)
			}
			fmt.Printf("result: periodic signup.digest %s -> %q\n", id, text)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("no digest was scheduled: %w", ctx.Err())
		}
	}()
	errs = append(errs, digestErr)
	printTrace(spans.GetSpans(), "GET /sign-up")
	tasks := len(ids) + 3 + len(photos) + 1 + 1 // sign-ups, the chain's steps, the chord's header and body, the import
	printMonitorSummary(ctx, monURL, tasks)
	stopWorker()
	if err := <-workerDone; err != nil {
		return err
	}
	st := worker.Stats()
	fmt.Printf("\nworker stats: received=%d succeeded=%d retried=%d failed=%d\n", st.Received, st.Succeeded, st.Retried, st.Failed)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Println("every welcome email was sent; the onboarding chain and the gallery chord finished; the contacts were imported; the scheduler sent the digest.")
	return nil
}

// demoContacts is the contact list the demo imports: one bad address and
// one duplicate among them.
var demoContacts = []signup.Contact{
	{Name: "Ann", Email: "ann@example.com"}, {Name: "Bob", Email: "bob@example.com"},
	{Name: "Cid", Email: "cid(at)example.com"}, {Name: "Dee", Email: "dee@example.com"},
	{Name: "Ann", Email: "Ann@Example.com"}, {Name: "Eve", Email: "eve@example.com"},
}

// startImport posts demoContacts to /contacts/import and returns the poll
// path of the 202 answer.
func startImport(base string) (string, error) {
	body, err := json.Marshal(map[string]any{"contacts": demoContacts})
	if err != nil {
		return "", err
	}
	resp, err := http.Post(base+"/contacts/import", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer struct{ ID, Poll string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST /contacts/import: %s (%v)", resp.Status, err)
	}
	fmt.Printf("client: POST /contacts/import (%d contacts) -> %s, poll %s\n", len(demoContacts), resp.Status, resp.Header.Get("Location"))
	return answer.Poll, nil
}

// followImport polls url until the import is done, printing each progress
// step it sees and then the summary.
func followImport(ctx context.Context, url string) error {
	var st signup.ImportStatus
	last := -1
	for {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		st = signup.ImportStatus{}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		if st.State == runtime.StateProgress && st.Current != last {
			last = st.Current
			fmt.Printf("import %d/%d (%3.0f%%) %s\n", st.Current, st.Total, st.Percent, st.Note)
		}
		if st.State.Ready() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("contact import: %s at %d/%d: %w", st.State, st.Current, st.Total, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if st.Result == nil {
		return fmt.Errorf("contact import %s: %s %s", st.ID, st.State, st.Error)
	}
	fmt.Printf("result: import %s -> imported=%d invalid=%d duplicates=%d %q\n", st.ID, st.Result.Imported, st.Result.Invalid,
		st.Result.Duplicates, st.Result.Skipped)
	return nil
}

// printTrace prints the span tree of the first trace whose root is named
// root: the sign-up's request, its Delay, the runs and retries.
func printTrace(spans tracetest.SpanStubs, root string) {
	var first *tracetest.SpanStub
	for i, s := range spans {
		if s.Name == root && !s.Parent.IsValid() && (first == nil || s.StartTime.Before(first.StartTime)) {
			first = &spans[i]
		}
	}
	if first == nil {
		return
	}
	children := map[trace.SpanID][]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == first.SpanContext.TraceID() && s.Parent.IsValid() {
			children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
		}
	}
	fmt.Printf("\ntrace %s of the first sign-up (runtime/otel; set OTEL_EXPORTER_OTLP_ENDPOINT to send such traces to your collector):\n", first.SpanContext.TraceID())
	var walk func(s tracetest.SpanStub, depth int)
	walk = func(s tracetest.SpanStub, depth int) {
		var extra []string
		for _, a := range s.Attributes {
			switch a.Key {
			case taskotel.AttrState, taskotel.AttrRetries:
				extra = append(extra, string(a.Key)+"="+a.Value.String())
			}
		}
		fmt.Printf("  %s%-40s %-9s %8s  %s\n", strings.Repeat("  ", depth), s.Name, strings.ToLower(s.SpanKind.String()),
			s.EndTime.Sub(s.StartTime).Round(10*time.Microsecond), strings.Join(extra, " "))
		kids := children[s.SpanContext.SpanID()]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime.Before(kids[j].StartTime) })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	walk(*first, 0)
}

// lineHandler prints log records as short aligned lines.
type lineHandler struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	attrs []slog.Attr
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{w: h.w, start: h.start, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *lineHandler) WithGroup(string) slog.Handler { return h }
func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.2fs %-5s %-22s", time.Since(h.start).Seconds(), r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "worker" {
			return true
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintln(h.w, b.String())
	return nil
}

// printMonitorSummary prints what the monitor's API says about the run,
// once it has seen every task finish (events arrive asynchronously).
func printMonitorSummary(ctx context.Context, monURL string, tasks int) {
	var sum struct {
		Totals struct {
			Events, Succeeded, Failed, Retried int64
			Online                             int `json:"workers_online"`
		} `json:"totals"`
		Workers []struct {
			Hostname, Status string
			Counts           struct{ Succeeded, Retried, Failed int64 } `json:"task_counts"`
		} `json:"workers"`
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, err := http.Get(monURL + "/api/summary")
		if err != nil {
			fmt.Println("monitor: ", err)
			return
		}
		err = json.NewDecoder(resp.Body).Decode(&sum)
		resp.Body.Close()
		if err != nil || sum.Totals.Succeeded+sum.Totals.Failed >= int64(tasks) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("\nmonitor %s: %d events; succeeded=%d retried=%d failed=%d; workers online=%d\n",
		monURL, sum.Totals.Events, sum.Totals.Succeeded, sum.Totals.Retried, sum.Totals.Failed, sum.Totals.Online)
	for _, w := range sum.Workers {
		fmt.Printf("  worker %s: %s, succeeded=%d retried=%d failed=%d\n", w.Hostname, w.Status, w.Counts.Succeeded, w.Counts.Retried, w.Counts.Failed)
	}
}
