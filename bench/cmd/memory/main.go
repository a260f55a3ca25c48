// Command memory measures how much memory taskgen needs as the work grows
// (issue 19, item 4), on real brokers:
//
//   - worker: the RSS of a worker process holding N tasks in memory (ETA
//     tasks inside its DelayHorizon, so each is a received, un-acknowledged
//     message kept until its time), against the same process idle;
//   - monitor: the RSS of a taskmon process that has followed N tasks'
//     events, once with its default bound (-max-tasks 10000) and once with
//     -max-tasks N, against the same process idle.
//
// Every measurement runs in its own child process, so one does not inherit
// another's heap. It reads the brokers from the TASKGEN_* variables that
// scripts/testenv.sh exports; `make bench-memory` runs it. The report is
// markdown on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
)

var (
	flagHeld    = flag.Int("held", 10000, "tasks a worker holds (ETA) in the worker measurement")
	flagTracked = flag.Int("tracked", 100000, "tasks whose events the monitor follows")
	flagOnly    = flag.String("only", "worker,monitor", "measurements to run")
	flagChild   = flag.String("child", "", "internal: run as the worker child on this broker URL")
	flagQueue   = flag.String("queue", "bench.memory", "internal: the child's queue")
	flagRuns    = flag.Int("runs", 2, "runs of each measurement (the table shows each)")
	flagWrite   = flag.String("write", "", "also write the report to this markdown file (e.g. ../docs/MEMORY.md)")
)

// out is where the report goes: stdout, and the -write file.
var out io.Writer = os.Stdout

func main() {
	flag.Parse()
	if *flagChild != "" {
		if err := child(*flagChild); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	var buf strings.Builder
	if *flagWrite != "" {
		out = io.MultiWriter(os.Stdout, &buf)
	}
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	if *flagWrite != "" {
		if err := os.WriteFile(*flagWrite, []byte(buf.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "memory:", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context) error {
	redisAddr, amqpURL := os.Getenv("TASKGEN_REDIS_ADDR"), os.Getenv("TASKGEN_AMQP_URL")
	if redisAddr == "" || amqpURL == "" {
		return errors.New("TASKGEN_REDIS_ADDR and TASKGEN_AMQP_URL are unset: run through scripts/testenv.sh run (make bench-memory)")
	}
	fmt.Fprintf(out, "# Memory\n\n`make bench-memory` (bench/cmd/memory), %s, GOMAXPROCS %d, %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), goruntime.GOMAXPROCS(0), goruntime.Version())
	if strings.Contains(*flagOnly, "worker") {
		fmt.Fprintf(out, "## Worker holding %d ETA tasks\n\n", *flagHeld)
		fmt.Fprintln(out, "A worker (Concurrency 8, Prefetch = held + 64, DelayHorizon 2h) receives tasks due in 1 h and holds them in memory, un-acknowledged, as Celery's worker holds ETA tasks. RSS of the worker process, idle and then holding them; heap in use after a GC.")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| broker | run | RSS idle | RSS holding | per held task | heap in use holding |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|")
		for _, b := range []struct{ name, url string }{
			{"redis", fmt.Sprintf("redis://%s/9", redisAddr)},
			{"rabbitmq", amqpURL},
		} {
			for r := 1; r <= *flagRuns; r++ {
				m, err := measureWorker(ctx, b.url, *flagHeld)
				if err != nil {
					return fmt.Errorf("worker on %s: %w", b.name, err)
				}
				fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s |\n", b.name, r, mib(m.idle), mib(m.held), perTask(m.held-m.idle, *flagHeld), mib(m.heap))
			}
		}
		fmt.Fprintln(out)
	}
	if strings.Contains(*flagOnly, "monitor") {
		fmt.Fprintf(out, "## Monitor following %d tasks\n\n", *flagTracked)
		fmt.Fprintln(out, "taskmon on Redis; a Go worker (events on) runs the tasks, no-op with one short string argument. RSS of the taskmon process idle and after it has seen every task succeed; `kept` is the number of tasks it keeps (its `-max-tasks` bound; older ones are evicted, counters and metrics keep counting).")
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| -max-tasks | run | RSS idle | RSS after | per kept task | kept |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|")
		bin, cleanup, err := buildTaskmon(ctx)
		if err != nil {
			return err
		}
		defer cleanup()
		for _, max := range []int{10000, *flagTracked} {
			for r := 1; r <= *flagRuns; r++ {
				m, err := measureMonitor(ctx, bin, redisAddr, max, *flagTracked)
				if err != nil {
					return fmt.Errorf("monitor -max-tasks %d: %w", max, err)
				}
				kept := min(max, *flagTracked)
				fmt.Fprintf(out, "| %d | %d | %s | %s | %s | %d |\n", max, r, mib(m.idle), mib(m.held), perTask(m.held-m.idle, kept), kept)
			}
		}
		fmt.Fprintln(out)
	}
	fmt.Fprint(out, bounds)
	return nil
}

// bounds explains the figures; the numbers in it are from the runs in
// docs/MEMORY.md.
const bounds = "## What bounds it\n\n- A worker holds at most its `Prefetch` messages (default Concurrency \u00d7 4): ETA and countdown tasks due within `DelayHorizon` (default 5 s) count against it, and later ones are parked in the broker, not in memory. So with the defaults a worker's task memory is bounded by Prefetch \u00d7 the per-task figure above (about 3\u20134 KiB for a small task, plus its body); this measurement raises Prefetch and DelayHorizon on purpose to hold 10 000.\n- taskmon keeps at most `-max-tasks` tasks (default 10 000; the oldest is evicted), each with a timeline bounded to 64 events; per-name statistics are bounded to 1 000 names. About 2.4\u20133.7 KiB per kept task: the default bound costs about 50 MiB, 100 000 kept tasks about 250\u2013300 MiB.\n"

type measurement struct{ idle, held, heap int64 }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func perTask(b int64, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%d B", b/int64(n))
}

// rss is a process's resident set size from /proc.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// childReport is one line the worker child prints.
type childReport struct {
	Held int64 `json:"held"`
	Heap int64 `json:"heap"`
}

// child runs a worker that holds ETA tasks, printing its held count (and,
// once asked on stdin, its heap after a GC) every 100 ms.
func child(url string) error {
	app, err := runtime.New(runtime.Config{Broker: url, Logger: quiet()})
	if err != nil {
		return err
	}
	defer app.Close()
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{*flagQueue}, Concurrency: 8, Prefetch: *flagHeld + 64,
		DelayHorizon: 2 * time.Hour, ShutdownTimeout: time.Second})
	tasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	gc := make(chan struct{}, 1)
	go func() {
		// Any line on stdin: report the heap after a GC; EOF: stop.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			gc <- struct{}{}
		}
		cancel()
	}()
	enc := json.NewEncoder(os.Stdout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-gc:
			goruntime.GC()
			var ms goruntime.MemStats
			goruntime.ReadMemStats(&ms)
			if err := enc.Encode(childReport{Held: w.Stats().Held, Heap: int64(ms.HeapInuse)}); err != nil {
				return err
			}
		case <-tick.C:
			if err := enc.Encode(childReport{Held: w.Stats().Held}); err != nil {
				return err
			}
		}
	}
}

func measureWorker(ctx context.Context, url string, n int) (measurement, error) {
	queue := fmt.Sprintf("bench.memory.%d", time.Now().UnixNano())
	cmd := exec.CommandContext(ctx, os.Args[0], "-child", url, "-queue", queue, "-held", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return measurement{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return measurement{}, err
	}
	if err := cmd.Start(); err != nil {
		return measurement{}, err
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	reports := make(chan childReport, 64)
	go func() {
		defer close(reports)
		dec := json.NewDecoder(stdout)
		for {
			var r childReport
			if dec.Decode(&r) != nil {
				return
			}
			reports <- r
		}
	}()
	next := func(timeout time.Duration) (childReport, error) {
		select {
		case r, ok := <-reports:
			if !ok {
				return r, errors.New("worker child exited")
			}
			return r, nil
		case <-time.After(timeout):
			return childReport{}, errors.New("worker child silent")
		}
	}
	// Idle: consuming, nothing held, after its start-up settled.
	if _, err := next(30 * time.Second); err != nil {
		return measurement{}, err
	}
	time.Sleep(2 * time.Second)
	var m measurement
	if m.idle, err = rss(cmd.Process.Pid); err != nil {
		return m, err
	}
	app, err := runtime.New(runtime.Config{Broker: url, Logger: quiet()})
	if err != nil {
		return m, err
	}
	defer app.Close()
	defer purge(ctx, url, queue)
	st := tasks.Noop.With(runtime.WithApp(app), runtime.Queue(queue), runtime.Countdown(time.Hour))
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	errs := make(chan error, 16)
	for p := range 16 {
		go func() {
			var err error
			for i := p; i < n && err == nil; i += 16 {
				_, err = st.Delay(ctx, ts)
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			return m, err
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := next(30 * time.Second)
		if err != nil {
			return m, err
		}
		if r.Held >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("the worker holds %d of %d tasks after 2 minutes", r.Held, n)
		}
	}
	time.Sleep(time.Second)
	if m.held, err = rss(cmd.Process.Pid); err != nil {
		return m, err
	}
	if _, err := io.WriteString(stdin, "gc\n"); err != nil {
		return m, err
	}
	for {
		r, err := next(30 * time.Second)
		if err != nil {
			return m, err
		}
		if r.Heap > 0 {
			m.heap = r.Heap
			return m, nil
		}
	}
}

// purge deletes the measurement's queue (its held tasks went back to it
// when the worker stopped).
func purge(ctx context.Context, url, queue string) {
	if strings.HasPrefix(url, "redis://") {
		o, err := goredis.ParseURL(url)
		if err != nil {
			return
		}
		rdb := goredis.NewClient(o)
		defer rdb.Close()
		rdb.FlushDB(ctx)
		return
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
		ch.Close()
	}
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func buildTaskmon(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "bench-memory")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "taskmon")
	// Build in taskgen's own module (its go.sum has the monitor's
	// dependencies; the bench module's need not).
	root, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/taskgen/taskgen").Output()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("locating taskgen's module: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/taskmon")
	cmd.Dir = strings.TrimSpace(string(root))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building taskmon: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func measureMonitor(ctx context.Context, bin, redisAddr string, maxTasks, n int) (measurement, error) {
	var m measurement
	url := fmt.Sprintf("redis://%s/10", redisAddr)
	o, _ := goredis.ParseURL(url)
	rdb := goredis.NewClient(o)
	defer rdb.Close()
	defer rdb.FlushDB(ctx)
	addr, err := freeAddr()
	if err != nil {
		return m, err
	}
	mon := exec.CommandContext(ctx, bin, "-broker", url, "-addr", addr, "-max-tasks", strconv.Itoa(maxTasks), "-loglevel", "warn")
	mon.Stderr = os.Stderr
	if err := mon.Start(); err != nil {
		return m, err
	}
	defer func() { _ = mon.Process.Kill(); _ = mon.Wait() }()
	if err := waitHTTP(ctx, "http://"+addr+"/healthcheck", 30*time.Second); err != nil {
		return m, err
	}
	time.Sleep(2 * time.Second)
	if m.idle, err = rss(mon.Process.Pid); err != nil {
		return m, err
	}
	app, err := runtime.New(runtime.Config{Broker: url, Logger: quiet()})
	if err != nil {
		return m, err
	}
	defer app.Close()
	queue := "bench.memory.monitor"
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 8})
	tasks.RegisterTasks(w)
	wctx, stop := context.WithCancel(ctx)
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { stop(); <-wdone }()
	st := tasks.Noop.With(runtime.WithApp(app), runtime.Queue(queue))
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	errs := make(chan error, 8)
	for p := range 8 {
		go func() {
			var err error
			for i := p; i < n && err == nil; i += 8 {
				_, err = st.Delay(ctx, ts)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			return m, err
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, err := succeededSeen(ctx, "http://"+addr+"/metrics")
		if err != nil {
			return m, err
		}
		if got >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("taskmon saw %d of %d tasks succeed after 5 minutes", got, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second)
	m.held, err = rss(mon.Process.Pid)
	return m, err
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after %s: %v", url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// succeededSeen sums flower_events_total{type="task-succeeded"} of a
// taskmon's text exposition.
func succeededSeen(ctx context.Context, url string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "flower_events_total{") || !strings.Contains(line, `type="task-succeeded"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			total += int64(v)
		}
	}
	return total, sc.Err()
}
