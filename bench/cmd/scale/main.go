// Command scale measures how taskgen's cost grows with the work — worker
// processes, a backlog of a million tasks, countdowns, many queues,
// payload sizes, result round trips, quorum queues and Sentinel — next to
// hibiken/asynq, the raw clients and Celery where that makes sense, and
// writes docs/SCALE.md with one table and one plot (docs/scale/*.png) per
// section:
//
//	make bench-scale
//	bash scripts/testenv.sh run -- go -C bench run ./cmd/scale -write ../docs/SCALE.md [-only backlog,payload]
//
// Worker processes are children of this program (the same binary with
// -child worker); producers, callers and measurements run in the parent.
// A run of some sections (-only) rewrites only their sections of -write.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	flagOnly  = flag.String("only", "", "comma-separated sections to run (default all): "+strings.Join(sectionKeys(), ", "))
	flagWrite = flag.String("write", "", "write the report to this markdown file (its plots go to scale/ next to it), e.g. ../docs/SCALE.md")
	flagRuns  = flag.Int("runs", 2, "runs of the short sections (procs, payload, result, ha); tables show the median and the range")
	flagN     = flag.Int("n", 40000, "tasks per drain of the procs and ha sections")
	flagBack  = flag.Int("backlog", 1000000, "tasks of the backlog section (taskgen, Celery's envelope)")
	flagBackA = flag.Int("backlog-asynq", 1000000, "tasks of asynq's backlog (0: skip asynq)")
	flagETA   = flag.Int("eta-n", 100000, "tasks of the countdown section")
	flagSpan  = flag.Duration("eta-span", 60*time.Second, "the countdowns are spread uniformly over this span")
	flagNQ    = flag.Int("queues", 1000, "queues of the queues section")
	flagIdle  = flag.Duration("idle", 10*time.Second, "how long the queues section samples the idle worker's CPU")
	flagRTDur = flag.Duration("rt-dur", 10*time.Second, "duration of each result round-trip run")

	// child flags (internal)
	flagChild   = flag.String("child", "", "internal: run as a worker child")
	flagSystem  = flag.String("system", "taskgen", "internal: the child's system (taskgen, asynq)")
	flagBroker  = flag.String("broker", "", "internal: the child's broker URL")
	flagBackend = flag.String("backend", "", "internal: the child's result backend URL")
	flagQueues  = flag.String("queues-list", "", "internal: the child's queues, comma-separated")
	flagConc    = flag.Int("conc", 8, "internal: the child's concurrency")
	flagLat     = flag.Int("lat", 0, "internal: latencies the child records")
	flagPoll    = flag.Duration("poll", time.Millisecond, "internal: how often the child reports its count")
)

// section is one part of the report.
type section struct {
	key, title string
	run        func(ctx context.Context, e *env, r *report) error
}

func sections() []section {
	return []section{
		{"procs", "Drain rate with 1, 2 and 4 worker processes", secProcs},
		{"backlog", fmt.Sprintf("A backlog of %d tasks on Redis", *flagBack), secBacklog},
		{"countdown", fmt.Sprintf("%d countdowns spread over %s", *flagETA, *flagSpan), secCountdown},
		{"queues", fmt.Sprintf("%d queues consumed by one worker", *flagNQ), secQueues},
		{"payload", "Payloads of 100 B, 10 KiB and 1 MiB", secPayload},
		{"result", "Result round trip with 64 callers", secResult},
		{"ha", "Quorum vs classic queues, Sentinel vs single Redis", secHA},
	}
}

func sectionKeys() []string {
	var k []string
	for _, s := range []string{"procs", "backlog", "countdown", "queues", "payload", "result", "ha"} {
		k = append(k, s)
	}
	return k
}

type env struct {
	redisAddr, amqpURL, python string
}

func loadEnv() *env {
	e := &env{redisAddr: os.Getenv("TASKGEN_REDIS_ADDR"), amqpURL: os.Getenv("TASKGEN_AMQP_URL"), python: os.Getenv("TASKGEN_PYTHON")}
	if e.redisAddr == "" || e.amqpURL == "" {
		fmt.Fprintln(os.Stderr, "scale: TASKGEN_REDIS_ADDR and TASKGEN_AMQP_URL are not set: run `make bench-scale`, or this program under `bash scripts/testenv.sh run -- …`")
		os.Exit(2)
	}
	if e.python == "" {
		e.python = "/usr/bin/python3"
	}
	return e
}

func (e *env) redisURL(db int) string { return fmt.Sprintf("redis://%s/%d", e.redisAddr, db) }

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// report is one section's output.
type report struct {
	key, title string
	dir        string // where plots go
	body       strings.Builder
	started    time.Time
}

func (r *report) printf(format string, a ...any) { fmt.Fprintf(&r.body, format, a...) }

// plot returns the path of the section's plot file name and its markdown
// link (relative to the report).
func (r *report) plot(name string) (string, string) {
	return filepath.Join(r.dir, name), "scale/" + name
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("scale: ")
	flag.Parse()
	if *flagChild == "worker" {
		workerChild()
		return
	}
	e := loadEnv()
	var sel []section
	only := strings.Split(*flagOnly, ",")
	for _, s := range sections() {
		if *flagOnly == "" || slices.Contains(only, s.key) {
			sel = append(sel, s)
		}
	}
	if len(sel) == 0 {
		log.Fatalf("no section matches -only %q; sections: %s", *flagOnly, strings.Join(sectionKeys(), ", "))
	}
	dir := "scale"
	if *flagWrite != "" {
		dir = filepath.Join(filepath.Dir(*flagWrite), "scale")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	var reps []*report
	for _, s := range sel {
		r := &report{key: s.key, title: s.title, dir: dir, started: time.Now()}
		fmt.Fprintf(os.Stderr, "== %s\n", s.key)
		if err := s.run(ctx, e, r); err != nil {
			fmt.Fprintf(os.Stderr, "section %s failed: %v\n", s.key, err)
			r.printf("\n**Not measured in this run**: %v\n", err)
		}
		text := r.render(e)
		fmt.Print(text)
		reps = append(reps, r)
		if *flagWrite != "" {
			if err := writeSection(*flagWrite, r.key, text); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// render is the section's markdown: heading, how it was measured, body.
func (r *report) render(e *env) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- section:%s -->\n## %s\n\n", r.key, r.title)
	fmt.Fprintf(&b, "Measured %s UTC (%s) on %s; reproduce with `make bench-scale`, or this section alone:\n\n",
		r.started.UTC().Format("2006-01-02 15:04"), time.Since(r.started).Round(time.Second), machine())
	fmt.Fprintf(&b, "    bash scripts/testenv.sh run -- go -C bench run ./cmd/scale -only %s -write ../docs/SCALE.md\n", r.key)
	b.WriteString(r.body.String())
	fmt.Fprintf(&b, "\n<!-- end:%s -->\n", r.key)
	return b.String()
}

// machine describes the machine: cores, GOMAXPROCS, CPU model, Go.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.IndexByte(l, ':'); i >= 0 {
					model = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), GOMAXPROCS %d, %s, shared with other jobs", goruntime.NumCPU(), model, goruntime.GOMAXPROCS(0), goruntime.Version())
}

const docHead = `# Scale curves

How taskgen's cost grows with the work: worker processes, a backlog of a
million tasks, countdowns, many queues, payload sizes, result round trips,
quorum queues and Sentinel — next to hibiken/asynq, the raw clients and
Python Celery where the comparison makes sense. Every section is written
by ` + "`bench/cmd/scale`" + ` (` + "`make bench-scale`" + `, about 15 minutes) against the
throw-away Redis and RabbitMQ of ` + "`scripts/testenv.sh`" + ` on loopback; the plots
are in [scale/](scale/). The machine is small and shared, so absolute
figures are noisy: compare rows of one section (measured side by side in one
run), and read the ranges. Worker processes are children of the program;
taskgen workers run as users run them (events on, default prefetch).

`

// writeSection replaces (or appends) one section of the report file.
func writeSection(file, key, text string) error {
	old, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(old, []byte("# Scale curves")) {
		old = []byte(docHead)
	}
	begin, end := []byte("<!-- section:"+key+" -->"), []byte("<!-- end:"+key+" -->\n")
	i, j := bytes.Index(old, begin), bytes.Index(old, end)
	var out []byte
	if i >= 0 && j > i {
		out = append(append(append(out, old[:i]...), text...), old[j+len(end):]...)
	} else {
		// Keep the sections in order: insert before the first later one.
		at := len(old)
		keys := sectionKeys()
		for _, k := range keys[slices.Index(keys, key)+1:] {
			if p := bytes.Index(old, []byte("<!-- section:"+k+" -->")); p >= 0 && p < at {
				at = p
			}
		}
		out = append(append(append(out, old[:at]...), []byte(text+"\n")...), old[at:]...)
	}
	return os.WriteFile(file, out, 0o644)
}

// percentiles returns p50 and p99 of ns samples, in ms.
func percentiles(v []int64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	at := func(q float64) float64 { return float64(v[int(q*float64(len(v)-1))]) / 1e6 }
	return at(0.50), at(0.99)
}

// stats is the median and range of runs.
type stats struct{ med, lo, hi float64 }

func statsOf(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med, s[0], s[len(s)-1]}
}

// rateCell formats a rate's median and range.
func (s stats) rateCell() string {
	if s.lo == s.hi {
		return fmtRate(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtRate(s.med), fmtRate(s.lo), fmtRate(s.hi))
}

func (s stats) cell(prec int) string {
	f := "%." + strconv.Itoa(prec) + "f"
	if s.lo == s.hi {
		return fmt.Sprintf(f, s.med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", s.med, s.lo, s.hi)
}

func now() string { return strconv.FormatInt(time.Now().UnixNano(), 10) }
