package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskgen/taskgen/bench/tasks"
)

type env struct {
	redisAddr string
	amqpURL   string
	python    string
}

func loadEnv() *env {
	e := &env{redisAddr: os.Getenv("TASKGEN_REDIS_ADDR"), amqpURL: os.Getenv("TASKGEN_AMQP_URL"), python: os.Getenv("TASKGEN_PYTHON")}
	if e.redisAddr == "" || e.amqpURL == "" {
		fmt.Fprintln(os.Stderr, "compare: TASKGEN_REDIS_ADDR and TASKGEN_AMQP_URL are not set: run under `bash scripts/testenv.sh run -- …` or source the env file of `scripts/testenv.sh start`")
		os.Exit(2)
	}
	if e.python == "" {
		e.python = "/usr/bin/python3"
	}
	return e
}

// sysDesc names a system and how to run it once.
type sysDesc struct {
	name   string
	broker string // "Redis" or "RabbitMQ"
	run    func(ctx context.Context, e *env, run int, r *Result) error
}

// goSystem is what the generic phases need from a Go system.
type goSystem interface {
	// sender returns a send function for one producer goroutine (it may
	// hold a channel of its own) and its release.
	sender(ctx context.Context) (send func(ctx context.Context, ts string) error, release func(), err error)
	// purge empties the benchmark queue.
	purge(ctx context.Context) error
	// startWorker starts consuming with the given concurrency; every task
	// body calls tasks.Record.
	startWorker(ctx context.Context, conc int) (stop func(), err error)
	// settled reports whether the broker holds no un-acknowledged
	// bookkeeping any more (kombu's unacked hash, asynq's active list).
	settled(ctx context.Context) bool
	close(ctx context.Context)
}

func systems() []sysDesc {
	return []sysDesc{
		{"taskgen", "Redis", goRun(newTaskgenRedis(false, false))},
		{"taskgen acks_late", "Redis", goRun(newTaskgenRedis(true, false))},
		{"taskgen events off", "Redis", goRun(newTaskgenRedis(false, true))},
		{"raw LPUSH/BRPOP", "Redis", goRun(newRawRedis(false))},
		{"raw BLMOVE+LREM", "Redis", goRun(newRawRedis(true))},
		{"asynq", "Redis", goRun(newAsynq())},
		{"celery", "Redis", celeryRun("redis")},
		{"taskgen", "RabbitMQ", goRun(newTaskgenAMQP(false, false))},
		{"taskgen acks_late", "RabbitMQ", goRun(newTaskgenAMQP(true, false))},
		{"taskgen events off", "RabbitMQ", goRun(newTaskgenAMQP(false, true))},
		{"raw confirm+ack", "RabbitMQ", goRun(newRawAMQP(false))},
		{"raw multiple-ack", "RabbitMQ", goRun(newRawAMQP(true))},
		{"celery", "RabbitMQ", celeryRun("amqp")},
	}
}

// key identifies a system in the table and for -only.
func (s sysDesc) key() string { return s.name + "@" + s.broker }

func now() string { return strconv.FormatInt(time.Now().UnixNano(), 10) }

// produce sends n tasks from p goroutines and returns the elapsed time.
func produce(ctx context.Context, s goSystem, n, p int) (time.Duration, error) {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	sends := make([]func(context.Context, string) error, p)
	for i := range p {
		send, release, err := s.sender(ctx)
		if err != nil {
			return 0, err
		}
		defer release()
		sends[i] = send
	}
	start := time.Now()
	for i := range p {
		send := sends[i]
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := send(ctx, now()); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// waitDone waits until tasks.Done reaches n and the system settled.
func waitDone(ctx context.Context, s goSystem, n int64) error {
	for tasks.Done.Load() < n {
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d tasks ran: %w", tasks.Done.Load(), n, ctx.Err())
		}
		time.Sleep(100 * time.Microsecond)
	}
	for !s.settled(ctx) {
		if ctx.Err() != nil {
			return fmt.Errorf("not settled: %w", ctx.Err())
		}
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

// drain pre-fills n tasks, starts a worker of concurrency conc and times
// until every task ran and the broker's bookkeeping settled. It returns the
// rate and the process's RSS at that moment (worker still running).
func drain(ctx context.Context, s goSystem, n, conc int) (float64, float64, error) {
	rate, rss, _, err := drainCPU(ctx, s, n, conc)
	return rate, rss, err
}

// drainCPU is drain, also returning the CPU µs per task used during the
// drain by this process (worker) and by each server of cpuTimes.
func drainCPU(ctx context.Context, s goSystem, n, conc int) (float64, float64, []float64, error) {
	if _, err := produce(ctx, s, n, 64); err != nil {
		return 0, 0, nil, fmt.Errorf("fill: %w", err)
	}
	tasks.Done.Store(0)
	if probeRabbit {
		probeQueues(conc)
	}
	dctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cpu0 := cpuTimes()
	start := time.Now()
	stop, err := s.startWorker(dctx, conc)
	if err != nil {
		return 0, 0, nil, err
	}
	err = waitDone(dctx, s, int64(n))
	el := time.Since(start)
	cpu1 := reportCPU(fmt.Sprintf("drain c=%d", conc), cpu0, el)
	per := make([]float64, len(cpu1))
	for i := range cpu1 {
		per[i] = (cpu1[i] - cpu0[i]) * 1e6 / float64(n)
	}
	rss := selfRSS()
	stop()
	if err != nil {
		return 0, 0, nil, err
	}
	return float64(n) / el.Seconds(), rss, per, nil
}

// latency runs a worker of concurrency 8 and sends rate tasks/s for dur
// from 4 paced producers; each task carries its enqueue time.
func latency(ctx context.Context, s goSystem, rate int, dur time.Duration) (lat, recv []int64, err error) {
	total := int(float64(rate) * dur.Seconds())
	tasks.Done.Store(0)
	stop, err := s.startWorker(ctx, 8)
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	time.Sleep(200 * time.Millisecond) // worker idle and blocked, as in production
	tasks.RecordLatency(total)
	if err := pace(ctx, s, rate, total, 4); err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitDone(lctx, s, int64(total)); err != nil {
		return nil, nil, err
	}
	lat, recv = tasks.Split()
	return lat, recv, nil
}

// pace sends total tasks at rate/s: task i is due at start + i/rate; p
// producers take the slots round robin.
func pace(ctx context.Context, s goSystem, rate, total, p int) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now().Add(10 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, p)
	for k := range p {
		send, release, err := s.sender(ctx)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer release()
			for i := k; i < total; i += p {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				if err := send(ctx, now()); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// percentiles returns p50 and p99 of ns samples, in ms.
func percentiles(v []int64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	at := func(q float64) float64 {
		i := int(q * float64(len(v)-1))
		return float64(v[i]) / 1e6
	}
	return at(0.50), at(0.99)
}

// goRun is the run of a Go system: enqueue (8 producers; 64 on RabbitMQ),
// drain (c=8, c=32), latency, RSS.
func goRun(mk func(ctx context.Context, e *env, run int) (goSystem, error)) func(context.Context, *env, int, *Result) error {
	return func(ctx context.Context, e *env, run int, r *Result) error {
		s, err := mk(ctx, e, run)
		if err != nil {
			return err
		}
		defer s.close(context.Background())
		n := *flagN
		if phase("enqueue") {
			prods := []int{8}
			if r.Broker == "RabbitMQ" {
				prods = append(prods, 64)
			}
			for _, p := range prods {
				cpu0 := cpuTimes()
				el, err := produce(ctx, s, n, p)
				reportCPU(fmt.Sprintf("enqueue %d producers", p), cpu0, el)
				if err != nil {
					return fmt.Errorf("enqueue %d: %w", p, err)
				}
				rate := float64(n) / el.Seconds()
				if p == 8 {
					r.Enq8 = rate
				} else {
					r.Enq64 = rate
				}
				if err := s.purge(ctx); err != nil {
					return err
				}
			}
		}
		if phase("drain") {
			for _, c := range []int{8, 32} {
				rate, rss, cpu, err := drainCPU(ctx, s, n, c)
				if err != nil {
					return fmt.Errorf("drain c=%d: %w", c, err)
				}
				// cpu: this process, then Redis and RabbitMQ (serverPids).
				var broker float64
				if k := map[string]int{"Redis": 1, "RabbitMQ": 2}[r.Broker]; k < len(cpu) {
					broker = cpu[k]
				}
				if c == 8 {
					r.Drain8, r.CPU8, r.BrokerCPU8 = rate, cpu[0], broker
				} else {
					r.Drain32, r.RSS, r.CPU32, r.BrokerCPU32 = rate, rss, cpu[0], broker
				}
				if err := s.purge(ctx); err != nil {
					return err
				}
			}
		}
		if phase("latency") {
			lat, recv, err := latency(ctx, s, *flagRate, *flagLatDur)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			r.LatN = len(lat)
			dispatch := make([]int64, len(lat))
			for i := range lat {
				dispatch[i] = lat[i] - recv[i]
			}
			r.RecvP50, _ = percentiles(recv)
			d50, _ := percentiles(dispatch)
			r.DispatchP50 = d50 * 1e3
			r.P50, r.P99 = percentiles(lat)
		}
		return s.purge(ctx)
	}
}

// selfRSS is VmRSS of this process in MiB.
func selfRSS() float64 { return pidRSS(os.Getpid()) }

// pidRSS is VmRSS of a process in MiB (0 when unknown).
func pidRSS(pid int) float64 { return procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// pidPSS is the proportional set size of a process in MiB.
func pidPSS(pid int) float64 { return procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") }

func procField(file, name string) float64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// cpuTimes returns the CPU seconds used so far by this process and by the
// servers listed in BENCH_SERVER_PIDS (comma-separated), to tell which side
// bounds a phase (-v shows it).
func cpuTimes() []float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	v := []float64{float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9}
	for _, p := range serverPids() {
		if p == "" {
			continue
		}
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			v = append(v, 0)
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		v = append(v, (u+st)/100)
	}
	return v
}

// serverPids is BENCH_SERVER_PIDS (comma-separated), by default the Redis
// and RabbitMQ pids of scripts/testenv.sh (TASKGEN_TESTENV_DIR), in that order.
func serverPids() []string {
	if v := os.Getenv("BENCH_SERVER_PIDS"); v != "" {
		return strings.Split(v, ",")
	}
	dir := os.Getenv("TASKGEN_TESTENV_DIR")
	if dir == "" {
		return nil
	}
	var pids []string
	for _, f := range []string{"redis/redis.pid", "rabbitmq/rabbitmq.pid"} {
		b, _ := os.ReadFile(dir + "/" + f)
		pids = append(pids, strings.TrimSpace(string(b)))
	}
	return pids
}

// reportCPU prints (with -v) the CPU seconds used since before and returns
// the current cpuTimes.
func reportCPU(what string, before []float64, wall time.Duration) []float64 {
	after := cpuTimes()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: wall %.2fs; cpu: this process %.2fs", what, wall.Seconds(), after[0]-before[0])
	for i := 1; i < len(after); i++ {
		fmt.Fprintf(&b, ", server %d %.2fs", i, after[i]-before[i])
	}
	fmt.Fprintln(os.Stderr, b.String())
	return after
}

// probeRabbit: this child runs a RabbitMQ system with -v, so its drains
// call probeQueues first.
var probeRabbit bool

// probeQueues prints (before a timed drain) what RabbitMQ's rabbitmqctl says
// of the pre-filled queues: messages, messages in RAM, their bytes and the
// queue process's memory. On a classic queue the drain rate follows that
// process's heap (how often it is garbage collected), which the fill leaves
// at one of a few sizes: the ratios of one run compare the consumers only
// when their queues start alike (docs/BENCHMARKS.md).
func probeQueues(conc int) {
	ctl := os.Getenv("TASKGEN_RABBITMQCTL")
	if ctl == "" {
		return
	}
	out, err := exec.Command(ctl, "list_queues", "-q", "-p", "taskgen", "name", "messages", "messages_ram", "message_bytes_ram", "memory").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe: rabbitmqctl: %v\n", err)
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "bench.") && !strings.Contains(line, "celeryev") {
			b.WriteString("  " + line + "\n")
		}
	}
	fmt.Fprintf(os.Stderr, "queues before drain c=%d (name messages messages_ram message_bytes_ram memory):\n%s", conc, b.String())
	time.Sleep(300 * time.Millisecond) // let the rabbitmqctl VM's exit settle out of the timing
}
