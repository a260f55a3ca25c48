package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
)

const (
	baseRedisEnq   = "raw LPUSH/BRPOP@Redis"
	baseRedisDrain = "raw BLMOVE+LREM@Redis"
	baseAMQP       = "raw confirm+ack@RabbitMQ"
	// multipleAMQP is the second raw RabbitMQ reference: acks with
	// multiple up to the contiguous finished tag, prefetch 512.
	multipleAMQP = "raw multiple-ack@RabbitMQ"
)

// machineNotes describes the machine and servers, read at start.
func machineNotes(e *env) []string {
	var notes []string
	load, _ := os.ReadFile("/proc/loadavg")
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-sr").Output()
	notes = append(notes,
		fmt.Sprintf("date: %s", time.Now().UTC().Format("2006-01-02 15:04 MST")),
		fmt.Sprintf("CPUs: %d (nproc; GOMAXPROCS %d), %s; %s", goruntime.NumCPU(), goruntime.GOMAXPROCS(0), cpu, strings.TrimSpace(string(kernel))),
		fmt.Sprintf("load average at start (1/5/15 min): %s", strings.Join(strings.Fields(string(load))[:3], " ")),
		fmt.Sprintf("Go: %s", goruntime.Version()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := goredis.NewClient(&goredis.Options{Addr: e.redisAddr})
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
				notes = append(notes, "Redis: "+v)
			}
		}
	}
	rdb.Close()
	if c, err := amqp.Dial(e.amqpURL); err == nil {
		notes = append(notes, fmt.Sprintf("RabbitMQ: %v (Erlang/OTP %s)", c.Properties["version"], otp()))
		c.Close()
	}
	if out, err := exec.Command(e.python, "-c", "import sys, celery, kombu, redis, amqp; print(sys.version.split()[0], celery.__version__, kombu.__version__, redis.__version__, amqp.__version__)").Output(); err == nil {
		f := strings.Fields(string(out))
		if len(f) == 5 {
			notes = append(notes, fmt.Sprintf("Python %s, Celery %s, kombu %s, redis-py %s, py-amqp %s (%s)", f[0], f[1], f[2], f[3], f[4], e.python))
		}
	}
	return notes
}

func otp() string {
	b, err := exec.Command("erl", "-noshell", "-eval", `io:format("~s", [erlang:system_info(otp_release)]), halt().`).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// median of the non-zero values.
func median(rs []Result, f func(Result) float64) float64 {
	var v []float64
	for _, r := range rs {
		if x := f(r); x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

type row struct {
	key, system, broker                         string
	enq8, enq64, drain8, drain32, p50, p99, rss float64
	recv50, disp50                              float64 // the start latency's split (Result.RecvP50, DispatchP50)
	runs, errs                                  int
	firstErr                                    string
}

func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(" ")
		}
		b.WriteRune(c)
	}
	return b.String()
}

func report(sel []sysDesc, all map[string][]Result, notes []string, took time.Duration) string {
	rows := map[string]row{}
	var order []string
	for _, s := range sel {
		rs := all[s.key()]
		r := row{key: s.key(), system: s.name, broker: s.broker, runs: len(rs),
			enq8:    median(rs, func(r Result) float64 { return r.Enq8 }),
			enq64:   median(rs, func(r Result) float64 { return r.Enq64 }),
			drain8:  median(rs, func(r Result) float64 { return r.Drain8 }),
			drain32: median(rs, func(r Result) float64 { return r.Drain32 }),
			p50:     median(rs, func(r Result) float64 { return r.P50 }),
			p99:     median(rs, func(r Result) float64 { return r.P99 }),
			rss:     median(rs, func(r Result) float64 { return r.RSS }),
			recv50:  median(rs, func(r Result) float64 { return r.RecvP50 }),
			disp50:  median(rs, func(r Result) float64 { return r.DispatchP50 })}
		for _, x := range rs {
			if x.Err != "" {
				r.errs++
				if r.firstErr == "" {
					r.firstErr = x.Err
				}
			}
		}
		rows[s.key()] = r
		order = append(order, s.key())
	}
	base := func(r row, redis, amqp string) (row, bool) {
		k := redis
		if r.broker == "RabbitMQ" {
			k = amqp
		}
		b, ok := rows[k]
		return b, ok
	}
	rate := func(x, b float64, ok bool) string {
		if x == 0 {
			return "–"
		}
		if !ok || b == 0 {
			return thousands(x)
		}
		return fmt.Sprintf("%s (%.2f×)", thousands(x), x/b)
	}
	ms := func(x, b float64, ok bool) string {
		if x == 0 {
			return "–"
		}
		if !ok || b == 0 {
			return fmt.Sprintf("%.3f", x)
		}
		return fmt.Sprintf("%.3f (%.2f×)", x, x/b)
	}
	var w strings.Builder
	fmt.Fprintf(&w, "| System | Broker | Enqueue/s, 8 producers | Enqueue/s, 64 producers | Drain/s, c=8 | Drain/s, c=32 | Start p50 ms | Start p99 ms | Worker RSS MiB |\n")
	fmt.Fprintf(&w, "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range order {
		r := rows[k]
		be, okE := base(r, baseRedisEnq, baseAMQP)
		bd, okD := base(r, baseRedisDrain, baseAMQP)
		name := r.system
		if r.errs > 0 {
			name += fmt.Sprintf(" (%d of %d runs failed)", r.errs, r.runs)
		}
		rss := "–"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.1f", r.rss)
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, r.broker,
			rate(r.enq8, be.enq8, okE), rate(r.enq64, be.enq64, okE),
			rate(r.drain8, bd.drain8, okD), rate(r.drain32, bd.drain32, okD),
			ms(r.p50, bd.p50, okD), ms(r.p99, bd.p99, okD), rss)
	}
	table := w.String()

	// The start latency's split, for the systems that report it.
	var sp strings.Builder
	fmt.Fprintf(&sp, "| System | Broker | Start p50 ms | enqueue→received p50 ms | received→start p50 µs |\n|---|---|---:|---:|---:|\n")
	split := 0
	for _, k := range order {
		r := rows[k]
		if r.recv50 == 0 || !(strings.HasPrefix(r.system, "taskgen") || strings.HasPrefix(r.system, "raw")) {
			continue
		}
		split++
		fmt.Fprintf(&sp, "| %s | %s | %.3f | %.3f | %.1f |\n", r.system, r.broker, r.p50, r.recv50, r.disp50)
	}

	// Targets of issue 10.
	var t strings.Builder
	fmt.Fprintf(&t, "| Target | Measured | Met |\n|---|---|---|\n")
	check := func(what string, got float64, cmp string, want float64, unit string) {
		if got == 0 {
			fmt.Fprintf(&t, "| %s %s %g%s | not measured | – |\n", what, cmp, want, unit)
			return
		}
		ok := (cmp == "≥" && got >= want) || (cmp == "<" && got < want)
		mark := "**missed**"
		if ok {
			mark = "met"
		}
		prec := "%.2f"
		if unit == " ms" {
			prec = "%.3f"
		}
		fmt.Fprintf(&t, "| %s %s %g%s | "+prec+"%s | %s |\n", what, cmp, want, unit, got, unit, mark)
	}
	ratio := func(a, b string, f func(row) float64) float64 {
		ra, oka := rows[a]
		rb, okb := rows[b]
		if !oka || !okb || f(rb) == 0 {
			return 0
		}
		return f(ra) / f(rb)
	}
	d8 := func(r row) float64 { return r.drain8 }
	d32 := func(r row) float64 { return r.drain32 }
	e8 := func(r row) float64 { return r.enq8 }
	e64 := func(r row) float64 { return r.enq64 }
	for _, tg := range []string{"taskgen", "taskgen acks_late"} {
		k := tg + "@Redis"
		check(tg+" Redis drain c=8 / raw BLMOVE+LREM", ratio(k, baseRedisDrain, d8), "≥", 1.8, "×")
		check(tg+" Redis drain c=32 / raw BLMOVE+LREM", ratio(k, baseRedisDrain, d32), "≥", 1.8, "×")
	}
	check("taskgen Redis enqueue (8) / raw LPUSH", ratio("taskgen@Redis", baseRedisEnq, e8), "≥", 1.0, "×")
	// Issue 19: events (on by default) cost at most 10 % of drain throughput.
	for _, br := range []string{"Redis", "RabbitMQ"} {
		check("taskgen@"+br+" drain c=8, events on / events off", ratio("taskgen@"+br, "taskgen events off@"+br, d8), "≥", 0.9, "×")
		check("taskgen@"+br+" drain c=32, events on / events off", ratio("taskgen@"+br, "taskgen events off@"+br, d32), "≥", 0.9, "×")
	}
	for _, tg := range []string{"taskgen", "taskgen acks_late"} {
		k := tg + "@RabbitMQ"
		check(tg+" RabbitMQ drain c=8 / raw consume+ack", ratio(k, baseAMQP, d8), "≥", 1.5, "×")
		check(tg+" RabbitMQ drain c=32 / raw consume+ack", ratio(k, baseAMQP, d32), "≥", 1.5, "×")
		check(tg+" RabbitMQ drain c=8 / raw multiple-ack", ratio(k, multipleAMQP, d8), "≥", 0.9, "×")
		check(tg+" RabbitMQ drain c=32 / raw multiple-ack", ratio(k, multipleAMQP, d32), "≥", 0.9, "×")
	}
	check("taskgen RabbitMQ confirmed enqueue (8) / raw confirm loop (8)", ratio("taskgen@RabbitMQ", baseAMQP, e8), "≥", 1.0, "×")
	check("taskgen RabbitMQ confirmed enqueue (64) / raw confirm loop (64)", ratio("taskgen@RabbitMQ", baseAMQP, e64), "≥", 2.0, "×")
	peers := []struct {
		peer, tg string
		want     float64
	}{{"asynq@Redis", "taskgen@Redis", 5}, {"celery@Redis", "taskgen@Redis", 30}, {"celery@RabbitMQ", "taskgen@RabbitMQ", 5}}
	for _, p := range peers {
		check(fmt.Sprintf("%s enqueue (8) / %s", p.tg, p.peer), ratio(p.tg, p.peer, e8), "≥", p.want, "×")
		check(fmt.Sprintf("%s drain c=8 / %s", p.tg, p.peer), ratio(p.tg, p.peer, d8), "≥", p.want, "×")
		check(fmt.Sprintf("%s drain c=32 / %s", p.tg, p.peer), ratio(p.tg, p.peer, d32), "≥", p.want, "×")
	}
	for _, k := range []string{"taskgen@Redis", "taskgen acks_late@Redis", "taskgen@RabbitMQ", "taskgen acks_late@RabbitMQ"} {
		if r, ok := rows[k]; ok {
			check(k+" start p50", r.p50, "<", 0.3, " ms")
			check(k+" start p99", r.p99, "<", 2, " ms")
		}
	}

	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("taskgen side by side with the raw broker clients, hibiken/asynq and Python Celery, on the\n")
	b.WriteString("same servers, in one run (issue 10); chords and a chain against Celery in [Workflows](#workflows)\n")
	b.WriteString("(issue 15, its own command there). Generated by `bench/cmd/compare`; re-run with\n\n")
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", commandLine())
	b.WriteString("## Machine\n\n")
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	fmt.Fprintf(&b, "- whole run: %s; %d run(s) per system, medians shown; N = %d tasks per phase for the Go systems, %d for Celery\n",
		took.Round(time.Second), *flagRuns, *flagN, *flagNCelery)
	b.WriteString("- broker, workers and producers share the same cores: the figures are relative (see the ratios), not absolute\n\n")
	b.WriteString("## Results\n\n")
	b.WriteString("Tasks/s (higher is better) and enqueue→start latency in ms (lower is better). In parentheses: the ratio to\n")
	b.WriteString("the raw loop on the same broker — on Redis raw `LPUSH` for enqueue and the reliable `BLMOVE`+`LREM` loop for\n")
	b.WriteString("drain and latency; on RabbitMQ raw amqp091-go (publish + wait for the confirm per producer; consume with a\n")
	b.WriteString("per-message ack, prefetch 4×c). The taskgen rows run the worker as users get it, task events on\n")
	b.WriteString("(its default); \"taskgen events off\" runs it `WithoutEvents`.\n\n")
	b.WriteString(table)
	b.WriteString("\n")
	if split > 0 {
		b.WriteString("### Start latency, split\n\n")
		b.WriteString("Where the start p50 goes: enqueue→received is from just before the send until the worker took the\n")
		b.WriteString("message from its transport (taskgen: `TaskInfo.Received`; the raw loops run the task in the goroutine\n")
		b.WriteString("that received it, so all of their latency is there), received→start is the worker's own dispatch\n")
		b.WriteString("(decode, task-received and task-started events, middleware, arguments). Medians over the runs of each\n")
		b.WriteString("system's per-run p50s; the two parts' p50s need not add up to the whole's.\n\n")
		b.WriteString(sp.String())
		b.WriteString("\n")
	}
	b.WriteString(methodology)
	b.WriteString("\n## Targets (issues 10 and 19)\n\n")
	b.WriteString(t.String())
	for _, k := range order {
		if r := rows[k]; r.firstErr != "" {
			fmt.Fprintf(&b, "\nError of %s: %s\n", k, r.firstErr)
		}
	}
	return b.String()
}

func commandLine() string {
	args := []string{"bash scripts/testenv.sh run -- go -C bench run ./cmd/compare"}
	flagSet := map[string]bool{}
	for _, a := range os.Args[1:] {
		flagSet[a] = true
	}
	args = append(args, os.Args[1:]...)
	return strings.Join(args, " ")
}

const methodology = `
How each figure is taken (bench/cmd/compare; every system and run in a child process of its own):

- **Enqueue**: N tasks with one string argument (the enqueue time) sent by 8 goroutines (and 64 on
  RabbitMQ), timed from the first send to the last return. taskgen: the generated stub's ` + "`Delay`" + `
  (msgpack, kombu envelope on Redis; publisher confirms on RabbitMQ). Raw Redis: ` + "`LPUSH`" + ` of a
  message as large as taskgen's envelope. Raw RabbitMQ: one confirm channel per producer, publish the
  same headers and body size persistently, wait for the confirm. asynq: ` + "`Client.Enqueue`" + `. Celery:
  ` + "`apply_async`" + ` from 8 Python threads (JSON; on RabbitMQ without publisher confirms, Celery's default).
- taskgen's worker runs on an App of its own (its own broker connections), as a worker process apart
  from the producers does; the raw RabbitMQ loops likewise consume on a connection of their own.
- **Drain**: the queue is pre-filled with N tasks, then a worker of concurrency 8 or 32 starts; timed
  until every task ran and the broker holds no bookkeeping any more (kombu's ` + "`unacked`" + ` hash for
  taskgen, the processing list for the reliable loop, asynq's active list). taskgen's prefetch is
  its default (4×c); ` + "`BRPOP`" + ` and ` + "`BLMOVE`" + ` loops run c goroutines; raw RabbitMQ consumes on one channel
  with c goroutines acknowledging each message; raw multiple-ack consumes with prefetch 512, its c
  goroutines hand finished tags to one goroutine that sends ` + "`basic.ack`" + ` multiple=true up to the
  highest contiguous finished tag whenever no other finish is waiting (timed until that ack is sent).
  taskgen's task events go to the ` + "`celeryev`" + ` exchange (RabbitMQ) or ` + "`PUBLISH`" + ` (Redis) with nobody
  subscribed, as on a fleet without a monitor. Celery: ` + "`celery worker -P prefork -c 8|32`" + ` (its default
  pool; ` + "`-celery-pool threads`" + ` to compare), timed from its first task to its last so its start-up is
  not counted; N is smaller for Celery.
- **Start latency**: a worker of concurrency 8 idles, then 4 paced producers send 1 000 tasks/s for
  the latency duration; each task records now − the enqueue time it carries (taken just before the
  send, so the publish is included). The split table's enqueue→received part ends when the worker
  took the message from its transport (taskgen's ` + "`TaskInfo.Received`" + `), so it holds the producer's
  encoding, the broker and the transport's hand-off; received→start is the taskgen worker's own
  dispatch. asynq's figure is dominated by its idle poll (its server sleeps
  ` + "`TaskCheckInterval`" + `, 1 s by default, whenever its queues are empty). Celery drains only ~1 000–2 000
  tasks/s here, so at 1 000 tasks/s (its producer sharing the 2 cores) it falls behind and its figure
  is mostly queueing.
- **Worker RSS**: VmRSS of the process running the worker at the end of the c=32 drain; for Go systems
  this process also ran the producers of the earlier phases; for Celery it is the proportional set
  size (PSS, so pages shared after fork count once) of the worker and its prefork children.
- ` + "`-v`" + ` prints, for each drain and enqueue phase, the CPU seconds used by the benchmark process and by
  the servers whose pids are in ` + "`BENCH_SERVER_PIDS`" + ` (which side bounds a phase); ` + "`-cpuprofile FILE`" + ` with
  ` + "`-only SYSTEM`" + ` writes a pprof CPU profile of each child. Before each timed RabbitMQ drain, ` + "`-v`" + ` also prints the
  queue's messages, messages in RAM and queue-process memory (` + "`rabbitmqctl list_queues`" + `), which the drain rate follows.
- Isolation: each system uses its own Redis database or RabbitMQ queue names, flushed or deleted after.
`
