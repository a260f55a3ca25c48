// Command demo runs the whole sign-up scenario in one process on the
// in-process broker (memory://), with nothing to install:
//
//   - a fake email provider that fails the first attempts of every email;
//   - the sign-up web server (signup.Handler) on a loopback port;
//   - a worker running SendWelcomeEmail, retrying with exponential backoff;
//   - a client that signs up a few users, then waits for every result.
//
// It prints each sign-up, each failed attempt with its backoff delay, each
// success with its result, and exits 0 when every email went out (1 otherwise,
// or after -timeout). `make demo` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/monitor"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/memory"
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

func run(users, failures int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log := slog.New(&lineHandler{w: os.Stdout, start: time.Now()})

	provider, err := startProvider(failures, log)
	if err != nil {
		return err
	}
	signup.Configure(signup.Provider{URL: provider})

	app, err := runtime.New(runtime.Config{Broker: "memory://", Backend: "memory://", Logger: log, Hostname: "demo@localhost"})
	if err != nil {
		return err
	}
	defer app.Close()
	runtime.SetDefault(app)

	worker := app.NewWorker(runtime.WorkerOptions{Queues: []string{"emails"}, Concurrency: 4, ShutdownTimeout: 5 * time.Second})
	signup.RegisterTasks(worker)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() { workerDone <- worker.Run(workerCtx) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: signup.Handler(log), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	monURL, stopMonitor, err := monitor.Start(ctx, app, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopMonitor()
	fmt.Printf("taskgen demo: sign-up server on %s, email provider on %s, broker memory://\n", base, provider)
	fmt.Printf("taskgen demo: monitor on %s\n\n", monURL)

	var ids []string
	for i := 1; i <= users; i++ {
		email := fmt.Sprintf("user%d@example.com", i)
		resp, err := http.Get(base + "/sign-up?email=" + url.QueryEscape(email))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sign-up %s: %s %s", email, resp.Status, body)
		}
		id := resp.Header.Get("X-Task-Id")
		fmt.Printf("client: GET /sign-up?email=%s -> %q (task %s)\n", email, strings.TrimSpace(string(body)), id)
		ids = append(ids, id)
	}

	var wg sync.WaitGroup
	errs := make([]error, len(ids))
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
	wg.Wait()
	printMonitorSummary(ctx, monURL, len(ids))
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
	fmt.Println("every welcome email was sent.")
	return nil
}

// startProvider serves a fake email API that answers 503 to the first
// failures attempts for each recipient.
func startProvider(failures int, log *slog.Logger) (string, error) {
	var mu sync.Mutex
	attempts := map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ To string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.To == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		attempts[req.To]++
		n := attempts[req.To]
		mu.Unlock()
		if n <= failures {
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"id": fmt.Sprintf("msg-%s-%d", strings.SplitN(req.To, "@", 2)[0], n)})
	})
	go http.Serve(ln, h)
	return "http://" + ln.Addr().String() + "/send", nil
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
