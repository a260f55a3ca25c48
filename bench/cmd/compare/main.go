// Command compare runs taskgen side by side with the raw broker clients,
// hibiken/asynq and Python Celery, against the servers described by
// scripts/testenv.sh (TASKGEN_REDIS_ADDR, TASKGEN_AMQP_URL, TASKGEN_PYTHON),
// and prints one markdown table of medians with ratios to the raw loop on
// the same broker.
//
//	bash scripts/testenv.sh run -- go -C bench run ./cmd/compare -runs 3 -write ../docs/BENCHMARKS.md
//
// Each (system, run) executes in a child process of its own (the same
// binary with -child), so worker RSS and GC state are not shared between
// systems.
//
// The workflow phase (-phases workflow, or -only workflows; in the default
// phases) times chords and a chain on taskgen and Celery side by side in
// one more child (workflow.go) and writes the "## Workflows" section; a
// run of that phase alone rewrites only that section of the -write file.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

var (
	flagN        = flag.Int("n", 50000, "tasks per phase for the Go systems (20 000-task drains last under a second on RabbitMQ, where worker start-up and the queue's state swing the ratios)")
	flagNCelery  = flag.Int("n-celery", 2000, "tasks per phase for Python Celery")
	flagRuns     = flag.Int("runs", 3, "runs per system; the table shows medians")
	flagRate     = flag.Int("rate", 1000, "tasks/s of the latency phase")
	flagLatDur   = flag.Duration("lat-dur", 3*time.Second, "duration of the latency phase")
	flagOnly     = flag.String("only", "", "comma-separated systems to run (default all, and the workflow phase); -list shows them ("+wfKey+": the workflow phase)")
	flagList     = flag.Bool("list", false, "list the systems and exit")
	flagWrite    = flag.String("write", "", "also write the report to this markdown file (e.g. ../docs/BENCHMARKS.md)")
	flagChild    = flag.String("child", "", "internal: run one system once and print its JSON result")
	flagRun      = flag.Int("run", 0, "internal: run number of a child")
	flagProfile  = flag.String("cpuprofile", "", "with -only of one system: write a CPU profile of each child to FILE.<run>")
	flagPhases   = flag.String("phases", "enqueue,drain,latency,workflow", "phases to run (workflow: the chord and chain rows, taskgen and Celery on Redis)")
	flagMemProf  = flag.String("memprofile", "", "with -only: write an allocation profile of each child to FILE.<run>")
	flagDrainOut = flag.Bool("v", false, "print the stderr of every child (always printed when a child fails)")
)

// handWritten starts the section of the report file that -write keeps.
const handWritten = "## What bounds the missed targets"

// Result is one (system, run) measurement.
type Result struct {
	System  string
	Broker  string
	Enq8    float64 // tasks/s with 8 producers
	Enq64   float64 // tasks/s with 64 producers (RabbitMQ only)
	Drain8  float64 // tasks/s, worker concurrency 8
	Drain32 float64 // tasks/s, worker concurrency 32
	P50     float64 // ms, enqueue→start at a steady rate
	P99     float64
	LatN    int // samples
	// The start latency's split (Go systems): p50 of enqueue→received in
	// ms, and p50 of received→start (the worker's own dispatch) in µs;
	// systems that run a task where they receive it have 0 there.
	RecvP50, DispatchP50 float64
	RSS                  float64 // MiB, worker process, end of the c=32 drain
	// CPU µs per task during the drains: the worker's process and the broker.
	CPU8, CPU32, BrokerCPU8, BrokerCPU32 float64
	Err                                  string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("compare: ")
	flag.Parse()
	if *flagList {
		for _, s := range systems() {
			fmt.Println(s.key())
		}
		fmt.Println(wfKey)
		return
	}
	if *flagChild == wfKey {
		workflowChild(loadEnv())
		return
	}
	if *flagChild != "" {
		child(*flagChild)
		return
	}
	parent()
}

func phase(p string) bool { return strings.Contains(*flagPhases, p) }

func child(name string) {
	e := loadEnv()
	var sd *sysDesc
	for _, s := range systems() {
		if s.key() == name {
			sd = &s
			break
		}
	}
	if sd == nil {
		log.Fatalf("unknown system %q", name)
	}
	if *flagProfile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", *flagProfile, *flagRun))
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *flagMemProf != "" {
		goruntime.MemProfileRate = 4096
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res := Result{System: sd.name, Broker: sd.broker}
	probeRabbit = *flagDrainOut && sd.broker == "RabbitMQ"
	if err := sd.run(ctx, e, *flagRun, &res); err != nil {
		res.Err = err.Error()
	}
	if *flagMemProf != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", *flagMemProf, *flagRun))
		if err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	pprof.StopCPUProfile()
	json.NewEncoder(os.Stdout).Encode(res)
}

func parent() {
	e := loadEnv()
	start := time.Now()
	var sel []sysDesc
	only := strings.Split(*flagOnly, ",")
	mainPhases := phase("enqueue") || phase("drain") || phase("latency")
	if mainPhases {
		for _, s := range systems() {
			if *flagOnly == "" || slices.Contains(only, s.key()) {
				sel = append(sel, s)
			}
		}
	}
	wf := phase("workflow") && (*flagOnly == "" || slices.Contains(only, wfKey))
	if len(sel) == 0 && !wf {
		log.Fatalf("nothing to run: no system matches -only %q (-list) with -phases %q", *flagOnly, *flagPhases)
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	var rep string
	if len(sel) > 0 {
		rep = runSystems(e, self, sel, start)
		fmt.Print(rep)
	}
	var wfRep string
	if wf {
		t0 := time.Now()
		notes := machineNotes(e)
		r := runWorkflowChild(self)
		wfRep = workflowReport(r, notes, time.Since(t0))
		fmt.Print("\n" + wfRep)
	}
	if *flagWrite != "" {
		if err := writeReport(*flagWrite, rep, wfRep); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *flagWrite)
	}
}

// writeReport writes the report file: the main part (up to "## Workflows"),
// the Workflows section, and the hand-written analysis, which always
// survives; a part this run did not measure ("") keeps its old text.
func writeReport(file, main, wf string) error {
	old, _ := os.ReadFile(file)
	hand := len(old)
	if i := bytes.Index(old, []byte(handWritten)); i >= 0 {
		hand = i
	}
	wfAt := hand
	if i := bytes.Index(old[:hand], []byte("\n"+wfHeading)); i >= 0 {
		wfAt = i + 1
	}
	if main == "" {
		main = string(old[:wfAt])
	}
	if wf == "" {
		wf = string(old[wfAt:hand])
	}
	var parts []string
	for _, p := range []string{main, wf, string(old[hand:])} {
		if p = strings.TrimRight(p, "\n"); p != "" {
			parts = append(parts, p)
		}
	}
	return os.WriteFile(file, []byte(strings.Join(parts, "\n\n")+"\n"), 0o644)
}

// runSystems runs the enqueue, drain and latency phases of the systems
// sel, each (system, run) in a child process, and returns the report.
func runSystems(e *env, self string, sel []sysDesc, start time.Time) string {
	notes := machineNotes(e)
	all := map[string][]Result{}
	// Runs are interleaved (run 1 of every system, then run 2, …) so that
	// a noisy period of the shared machine does not hit one system only.
	for run := 1; run <= *flagRuns; run++ {
		for _, s := range sel {
			args := []string{"-child", s.key(), "-run", fmt.Sprint(run),
				"-n", fmt.Sprint(*flagN), "-n-celery", fmt.Sprint(*flagNCelery),
				"-rate", fmt.Sprint(*flagRate), "-lat-dur", flagLatDur.String(), "-phases", *flagPhases, "-celery-pool", *flagCeleryPool, "-taskgen-opts", *flagTaskgenOpts, "-prefetch", fmt.Sprint(*flagPrefetch)}
			if *flagProfile != "" {
				args = append(args, "-cpuprofile", *flagProfile)
			}
			if *flagMemProf != "" {
				args = append(args, "-memprofile", *flagMemProf)
			}
			if *flagDrainOut {
				args = append(args, "-v")
			}
			t0 := time.Now()
			cmd := exec.Command(self, args...)
			var out bytes.Buffer
			cmd.Stdout = &out
			var eb bytes.Buffer
			cmd.Stderr = &eb
			err := cmd.Run()
			var r Result
			if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
				r = Result{System: s.name, Broker: s.broker, Err: fmt.Sprintf("child: %v %v", err, jerr)}
			}
			fmt.Fprintf(os.Stderr, "run %d %-30s %5.1fs  enq8 %7.0f enq64 %7.0f drain8 %7.0f drain32 %7.0f p50 %.3fms (recv %.3f + %.1fµs) p99 %.3fms rss %.1fMiB cpu-µs/task c=8 %.1f+%.1f c=32 %.1f+%.1f %s\n",
				run, s.key(), time.Since(t0).Seconds(), r.Enq8, r.Enq64, r.Drain8, r.Drain32, r.P50, r.RecvP50, r.DispatchP50, r.P99, r.RSS, r.CPU8, r.BrokerCPU8, r.CPU32, r.BrokerCPU32, r.Err)
			if *flagDrainOut || r.Err != "" {
				os.Stderr.Write(eb.Bytes())
			}
			all[s.key()] = append(all[s.key()], r)
		}
	}
	return report(sel, all, notes, time.Since(start))
}
