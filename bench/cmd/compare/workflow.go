package main

// The workflow rows (issue 15): a chord of 1 000 and of 10 000 members
// and a 100-step chain, taskgen against Python Celery on the same Redis
// (broker and result backend), timed from the producer's Delay /
// apply_async until the body's / last step's result is readable.
//
// One child process (-child workflows) keeps a taskgen worker (in process,
// as for the other Go rows) and a Celery worker (a subprocess, prefork)
// running side by side, and a persistent Python producer (producer.py
// workflows) that runs one workflow per line it reads. Every round runs
// each workflow on both sides in turn (taskgen first in odd rounds, Celery
// first in even ones), so a noisy minute of the shared machine hits both.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
)

var (
	flagWfRounds = flag.Int("wf-rounds", 5, "workflow phase: rounds (each runs every workflow once per side); the table shows medians")
	flagWfChords = flag.String("wf-chords", "1000,10000", "workflow phase: comma-separated chord header sizes")
	flagWfChain  = flag.Int("wf-chain", 100, "workflow phase: chain length (0: no chain row)")
	flagWfConc   = flag.Int("wf-conc", 8, "workflow phase: worker concurrency of both sides")
	flagWfEvents = flag.Bool("wf-events", true, "workflow phase: the taskgen worker sends events (its default); false: WithoutEvents")
	flagWfCyEv   = flag.Bool("wf-celery-events", false, "workflow phase: the Celery worker sends task events (celery worker -E; off by default, as in Celery and the other Celery rows)")
	flagWfCyGet  = flag.Bool("wf-celery-chained-get", false, "workflow phase: the Celery producer waits with res.get() on the result apply_async returned (O(N²) in the header size in Celery 5.2.6) instead of a fresh AsyncResult(res.id).get()")
)

// Redis databases of the workflow phase (broker and result backend in one).
const (
	dbWfTaskgen = 7
	dbWfCelery  = 8
)

// wfKey names the workflow child for -only and -list.
const wfKey = "workflows"

// wfHeading starts the Workflows section of the report file.
const wfHeading = "## Workflows"

// wfSpec is one workflow row.
type wfSpec struct {
	Kind string // chord or chain
	N    int    // header members or chain steps
}

func (w wfSpec) String() string {
	return fmt.Sprintf("%s %s", w.Kind, thousands(float64(w.N)))
}

func wfSpecs() ([]wfSpec, error) {
	var specs []wfSpec
	for _, f := range strings.Split(*flagWfChords, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-wf-chords: bad size %q", f)
		}
		specs = append(specs, wfSpec{"chord", n})
	}
	if *flagWfChain > 0 {
		specs = append(specs, wfSpec{"chain", *flagWfChain})
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("no workflow to run (-wf-chords, -wf-chain)")
	}
	return specs, nil
}

// WfResult is what the workflow child prints: per row, the seconds of each
// round on each side.
type WfResult struct {
	Rows []WfRow
	Err  string
}

// WfRow is one workflow's measurements.
type WfRow struct {
	Spec    wfSpec
	Taskgen []float64 // seconds, one per round
	Celery  []float64
	// Seconds until Delay / apply_async returned (every message sent).
	TaskgenSent, CelerySent []float64
}

// want is the result both sides must return: the sum of the members
// (member i returns i % 10), or the chain's length (0 + 1 per step).
func (w wfSpec) want() int64 {
	if w.Kind == "chain" {
		return int64(w.N)
	}
	var s int64
	for i := range w.N {
		s += int64(i % 10)
	}
	return s
}

// wfTaskgen is the taskgen side: an app on Redis DB dbWfTaskgen (broker
// and backend) and a worker with the default options but concurrency.
type wfTaskgen struct {
	app  *runtime.App
	stop func()
}

func startWfTaskgen(ctx context.Context, e *env) (*wfTaskgen, error) {
	u := fmt.Sprintf("redis://%s/%d", e.redisAddr, dbWfTaskgen)
	app, err := runtime.New(runtime.Config{Broker: u, Backend: u, Logger: logger()})
	if err != nil {
		return nil, err
	}
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: *flagWfConc, WithoutEvents: !*flagWfEvents, ShutdownTimeout: 10 * time.Second})
	tasks.RegisterTasks(w)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	return &wfTaskgen{app: app, stop: func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "taskgen worker:", err)
		}
		app.Close()
	}}, nil
}

// run sends one workflow and returns the seconds from Delay until Get
// returned its result, and until Delay returned.
func (t *wfTaskgen) run(ctx context.Context, w wfSpec) (float64, float64, error) {
	var sig runtime.Signature[int64]
	switch w.Kind {
	case "chord":
		sigs := make([]runtime.Signature[int64], w.N)
		for i := range sigs {
			sigs[i] = tasks.WfMember.Sig(int64(i % 10))
		}
		sig = runtime.Chord(runtime.Group(sigs...), tasks.WfSum.Partial())
	case "chain":
		sig = tasks.WfInc.Sig(0)
		for range w.N - 1 {
			sig = runtime.Chain(sig, tasks.WfInc.Partial())
		}
	}
	sig = sig.With(runtime.WithApp(t.app))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := sig.Delay(rctx)
	sent := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("taskgen %s: Delay: %w", w, err)
	}
	v, err := res.Get(rctx)
	el := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("taskgen %s: Get: %w", w, err)
	}
	if v != w.want() {
		return 0, 0, fmt.Errorf("taskgen %s: result %d, want %d", w, v, w.want())
	}
	return el.Seconds(), sent.Seconds(), nil
}

// wfCelery is the Celery side: a prefork worker on Redis DB dbWfCelery
// (broker and backend), and a producer process per workflow.
type wfCelery struct {
	worker *celeryWorker
	mk     func(ctx context.Context, args ...string) *exec.Cmd
}

func startWfCelery(e *env) (*wfCelery, error) {
	dir, err := celeryDir()
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("redis://%s/%d", e.redisAddr, dbWfCelery)
	get := "fresh"
	if *flagWfCyGet {
		get = "chained"
	}
	mk := func(ctx context.Context, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, e.python, args...)
		c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
		c.Dir = dir
		c.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "BENCH_BROKER="+u, "BENCH_BACKEND="+u, "BENCH_QUEUE=celery",
			"BENCH_WF_GET="+get,
			fmt.Sprintf("BENCH_STATS=redis://%s/%d", e.redisAddr, dbCeleryStats), fmt.Sprintf("BENCH_PREFIX=benchwf.%d", os.Getpid()))
		c.Stderr = os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return c
	}
	// The flags of the other Celery rows (celerySys.startWorker).
	args := []string{"-m", "celery", "-A", "benchtasks", "worker", "-P", *flagCeleryPool, "-c", strconv.Itoa(*flagWfConc),
		"--without-heartbeat", "--without-gossip", "--without-mingle",
		"-l", "WARNING", "-n", fmt.Sprintf("benchwf%d@localhost", os.Getpid())}
	if *flagWfCyEv {
		args = append(args, "-E")
	}
	wc := mk(context.Background(), args...)
	if err := wc.Start(); err != nil {
		return nil, err
	}
	return &wfCelery{worker: &celeryWorker{cmd: wc}, mk: mk}, nil
}

// run has a fresh producer.py run one workflow and returns the seconds it
// measured from apply_async until AsyncResult.get returned, and until
// apply_async returned. (A fresh process each time: Celery's result
// consumer keeps the subscriptions and unread messages of the tasks a
// process sent, which a persistent producer would carry into the next
// workflow; see producer.py.)
func (s *wfCelery) run(ctx context.Context, w wfSpec) (float64, float64, error) {
	out, err := s.mk(ctx, "producer.py", "workflow", w.Kind, strconv.Itoa(w.N)).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("celery %s: producer: %w", w, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("celery %s: producer said %q", w, out)
	}
	el, err1 := strconv.ParseFloat(f[0], 64)
	sent, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("celery %s: producer said %q", w, out)
	}
	if v, _ := strconv.ParseInt(f[2], 10, 64); v != w.want() {
		return 0, 0, fmt.Errorf("celery %s: result %s, want %d", w, f[2], w.want())
	}
	return el, sent, nil
}

func (s *wfCelery) close() { s.worker.stop() }

// workflowChild runs the workflow phase and prints its WfResult.
func workflowChild(e *env) {
	var res WfResult
	if err := runWorkflows(e, &res); err != nil {
		res.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

func runWorkflows(e *env, res *WfResult) error {
	specs, err := wfSpecs()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, db := range []int{dbWfTaskgen, dbWfCelery} {
		rdb := goredis.NewClient(&goredis.Options{Addr: e.redisAddr, DB: db})
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			return err
		}
		defer func() { rdb.FlushDB(context.Background()); rdb.Close() }()
	}
	tg, err := startWfTaskgen(ctx, e)
	if err != nil {
		return err
	}
	defer tg.stop()
	cy, err := startWfCelery(e)
	if err != nil {
		return err
	}
	defer cy.close()

	// Warm up both sides (connections, the Celery worker's start-up and
	// prefork children, code paths): a small chord and chain each, not timed.
	t0 := time.Now()
	for _, w := range []wfSpec{{"chord", 10}, {"chain", 3}} {
		if _, _, err := tg.run(ctx, w); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if _, _, err := cy.run(ctx, w); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "workflows: both workers up and warm after %.1fs\n", time.Since(t0).Seconds())

	res.Rows = make([]WfRow, len(specs))
	for i, w := range specs {
		res.Rows[i].Spec = w
	}
	for round := 1; round <= *flagWfRounds; round++ {
		for i, w := range specs {
			row := &res.Rows[i]
			sides := []string{"taskgen", "celery"}
			if round%2 == 0 {
				slices.Reverse(sides)
			}
			for _, side := range sides {
				var el, sent float64
				if side == "taskgen" {
					el, sent, err = tg.run(ctx, w)
				} else {
					el, sent, err = cy.run(ctx, w)
				}
				if err != nil {
					return fmt.Errorf("round %d: %w", round, err)
				}
				if side == "taskgen" {
					row.Taskgen = append(row.Taskgen, el)
					row.TaskgenSent = append(row.TaskgenSent, sent)
				} else {
					row.Celery = append(row.Celery, el)
					row.CelerySent = append(row.CelerySent, sent)
				}
				fmt.Fprintf(os.Stderr, "workflows round %d %-12s %-8s %8.3fs (sent after %.3fs)\n", round, w, side, el, sent)
				// Let the worker that just finished settle (acks, events)
				// before the other side starts.
				time.Sleep(300 * time.Millisecond)
			}
		}
	}
	return nil
}

// runWorkflowChild runs the workflow child from the parent and returns its
// result.
func runWorkflowChild(self string) WfResult {
	args := []string{"-child", wfKey, "-wf-rounds", fmt.Sprint(*flagWfRounds), "-wf-chords", *flagWfChords,
		"-wf-chain", fmt.Sprint(*flagWfChain), "-wf-conc", fmt.Sprint(*flagWfConc), "-wf-events=" + fmt.Sprint(*flagWfEvents),
		"-wf-celery-events=" + fmt.Sprint(*flagWfCyEv), "-wf-celery-chained-get=" + fmt.Sprint(*flagWfCyGet), "-celery-pool", *flagCeleryPool}
	cmd := exec.Command(self, args...)
	var out, eb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(&eb, os.Stderr)
	err := cmd.Run()
	var r WfResult
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		r = WfResult{Err: fmt.Sprintf("child: %v %v", err, jerr)}
	}
	return r
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// secs formats seconds with 3 significant digits.
func secs(x float64) string {
	switch {
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	case x >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3f", x)
	}
}

// tasks is the number of task runs of the workflow: the members and the
// body of a chord, the steps of a chain.
func (w wfSpec) tasks() int {
	if w.Kind == "chord" {
		return w.N + 1
	}
	return w.N
}

// workflowReport is the "## Workflows" section of the report.
func workflowReport(r WfResult, notes []string, took time.Duration) string {
	var b strings.Builder
	b.WriteString(wfHeading + "\n\n")
	b.WriteString("A chord of 1 000 and of 10 000 no-op members and a 100-step chain (issue 15), taskgen and Python\n")
	b.WriteString("Celery on the same Redis as broker and result backend, side by side in one run. Wall time in seconds\n")
	b.WriteString("(lower is better) from the producer's `Delay` / `apply_async` until the chord body's or the chain's\n")
	b.WriteString("last step's result is read (`AsyncResult.Get` / `AsyncResult.get`): the median of the rounds, in\n")
	b.WriteString("parentheses the fastest and the slowest round. Celery / taskgen: the ratio of the medians (how many\n")
	b.WriteString("times faster taskgen is). Tasks/s: the workflow's task runs (members + body; steps) over the median\n")
	b.WriteString("wall time. Sent: the median seconds until `Delay` / `apply_async` returned (every message of a chord's\n")
	b.WriteString("header published; a chain publishes its first step only). `make bench` runs this part after the\n")
	b.WriteString("others; re-run this section alone (the rest of the file is kept) with\n\n")
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", wfCommandLine())
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	tgEv := "on (its default)"
	if !*flagWfEvents {
		tgEv = "off (`WithoutEvents`)"
	}
	cyEv := "off (Celery's default, as in the other Celery rows)"
	if *flagWfCyEv {
		cyEv = "on (`-E`)"
	}
	rounds := "rounds"
	if *flagWfRounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(&b, "- workflow part: %s; %d %s, interleaved; worker concurrency %d on both sides; task events: taskgen %s, Celery %s\n\n",
		took.Round(time.Second), *flagWfRounds, rounds, *flagWfConc, tgEv, cyEv)
	b.WriteString("| Workflow | Tasks | taskgen s | Celery s | Celery / taskgen | taskgen tasks/s | Celery tasks/s | taskgen sent s | Celery sent s |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	cell := func(v []float64) string {
		if len(v) == 0 {
			return "–"
		}
		if len(v) == 1 {
			return secs(v[0])
		}
		return fmt.Sprintf("%s (%s–%s)", secs(medianF(v)), secs(slices.Min(v)), secs(slices.Max(v)))
	}
	med := func(v []float64) string {
		if len(v) == 0 {
			return "–"
		}
		return secs(medianF(v))
	}
	tput := func(n int, v []float64) string {
		if m := medianF(v); m > 0 {
			return thousands(float64(n) / m)
		}
		return "–"
	}
	for _, row := range r.Rows {
		ratio := "–"
		if t, c := medianF(row.Taskgen), medianF(row.Celery); t > 0 && c > 0 {
			ratio = fmt.Sprintf("%.1f×", c/t)
		}
		n := row.Spec.tasks()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Spec, thousands(float64(n)),
			cell(row.Taskgen), cell(row.Celery), ratio, tput(n, row.Taskgen), tput(n, row.Celery),
			med(row.TaskgenSent), med(row.CelerySent))
	}
	if r.Err != "" {
		fmt.Fprintf(&b, "\nError of the workflow phase: %s\n", r.Err)
	}
	b.WriteString(wfMethodology)
	return b.String()
}

func wfCommandLine() string {
	args := []string{"bash scripts/testenv.sh run -- go -C bench run ./cmd/compare -phases workflow"}
	for _, f := range []string{"wf-rounds", "wf-chords", "wf-chain", "wf-conc", "wf-events", "wf-celery-events", "wf-celery-chained-get", "celery-pool", "write"} {
		if fl := flag.Lookup(f); fl != nil && fl.Value.String() != fl.DefValue {
			if _, isBool := fl.Value.(interface{ IsBoolFlag() bool }); isBool {
				args = append(args, fmt.Sprintf("-%s=%s", f, fl.Value.String()))
			} else {
				args = append(args, fmt.Sprintf("-%s %s", f, fl.Value.String()))
			}
		}
	}
	return strings.Join(args, " ")
}

const wfMethodology = `
- **Tasks**: header members ` + "`bench.wf_member(x)`" + ` return x (member i gets i % 10), the body
  ` + "`bench.wf_sum(xs)`" + ` sums them; the chain is ` + "`bench.wf_inc(0)`" + ` followed by ` + "`bench.wf_inc`" + ` steps that
  each add 1 to the previous result, so a chain of n steps returns n (bench/tasks,
  bench/celery/benchtasks.py). Every task stores its result, as chords and chains need; both sides
  check the final value.
- **taskgen**: ` + "`runtime.Chord(runtime.Group(WfMember.Sig(…)…), WfSum.Partial())`" + ` and
  ` + "`runtime.Chain(…, WfInc.Partial())`" + `, ` + "`Delay`" + ` then ` + "`Get`" + ` (the Redis backend's pub/sub wait). The
  worker runs in the producer's process (as in the other Go rows) with its default options but
  concurrency: prefetch 4×c, msgpack, task events on.
- **Celery**: ` + "`res = chord(group([wf_member.si(…)…]), wf_sum.s()).apply_async()`" + ` and
  ` + "`chain(wf_inc.si(0), wf_inc.s(), …)`" + `, then ` + "`app.AsyncResult(res.id).get()`" + ` (JSON), from a fresh Python
  process per workflow (not timed: its start-up and a chain of 3 that opens the connections), since
  Celery's result consumer keeps the subscriptions and unread messages of every task a process sent
  (` + "`RedisBackend.on_task_call`" + ` subscribes to each header member's result channel, so ` + "`apply_async`" + ` also
  sends one SUBSCRIBE per member and the wait reads one message per member). The fresh ` + "`AsyncResult`" + `:
  Celery 5.2.6's ` + "`res.get()`" + ` on the object ` + "`apply_async`" + ` returned walks all its parents (the chord's
  ` + "`GroupResult`" + ` of N members, the chain's N−1 steps) after every message it reads, which made a chord of
  10 000 take 140–210 s in the producer whenever its body had not finished by the time
  ` + "`apply_async`" + ` returned (and 11–18 s when it had; runs of 2026-12-06); ` + "`-wf-celery-chained-get`" + ` measures that plain ` + "`res.get()`" + `.
- **Celery worker**: ` + "`celery worker -P prefork -c 8 --without-heartbeat --without-gossip --without-mingle`" + ` as in the other
  Celery rows (prefetch multiplier 4, no task events, the Redis backend's native chord counter). So
  taskgen's worker publishes a task-received/started/succeeded event per task here and Celery's does
  not (` + "`-wf-celery-events`" + ` gives Celery ` + "`-E`" + `, ` + "`-wf-events=false`" + ` turns taskgen's off).
- The signatures are built before the clock starts on both sides. Each side has its own Redis
  database (broker and backend in one), flushed before and after; both workers stay up for the whole
  part and warm up with a chord of 10 and a chain of 3 first; each round runs every workflow on both
  sides in turn, taskgen first in odd rounds and Celery first in even ones.
- ` + "`-wf-rounds`" + `, ` + "`-wf-chords`" + `, ` + "`-wf-chain`" + ` and ` + "`-wf-conc`" + ` change the sizes (e.g.
  ` + "`-wf-chords 100,1000 -wf-chain 20 -wf-rounds 1`" + ` for a quick check); ` + "`-only workflows`" + ` is the same as
  ` + "`-phases workflow`" + `, and ` + "`-phases enqueue,drain,latency`" + ` leaves this part out.
`
