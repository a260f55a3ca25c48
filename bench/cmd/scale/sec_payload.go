package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
)

func secPayload(ctx context.Context, e *env, r *report) error {
	sizes := []struct {
		label string
		bytes int
		n     int
	}{{"100 B", 100, 20000}, {"10 KiB", 10 << 10, 10000}, {"1 MiB", 1 << 20, 300}}
	q := fmt.Sprintf("scale.payload.%d", os.Getpid())
	tgR, err := newTG(e.redisURL(dbPayload), q)
	if err != nil {
		return err
	}
	defer tgR.close()
	tgA, err := newTG(e.amqpURL, q)
	if err != nil {
		return err
	}
	defer tgA.close()
	aopt, _ := asynqOpt(e.redisURL(dbPayloadA))
	ac := asynq.NewClient(aopt)
	defer ac.Close()
	defer deleteAMQPQueues(e.amqpURL, q)
	flushDB(ctx, e.redisAddr, dbPayload)
	flushDB(ctx, e.redisAddr, dbPayloadA)
	type sys struct {
		name string
		spec workerSpec
		fill func(n, p int, arg func(int) string) error
	}
	ss := []sys{
		{"taskgen Redis", workerSpec{system: "taskgen", broker: e.redisURL(dbPayload), queues: []string{q}, conc: 8},
			func(n, p int, arg func(int) string) error { _, err := tgR.fill(ctx, n, p, arg); return err }},
		{"asynq Redis", workerSpec{system: "asynq", broker: e.redisURL(dbPayloadA), queues: []string{"scalepayload"}, conc: 8},
			func(n, p int, arg func(int) string) error {
				_, err := asynqFill(ctx, ac, "scalepayload", n, p, arg)
				return err
			}},
		{"taskgen RabbitMQ", workerSpec{system: "taskgen", broker: e.amqpURL, queues: []string{q}, conc: 8},
			func(n, p int, arg func(int) string) error { _, err := tgA.fill(ctx, n, p, arg); return err }},
	}
	rates := map[string][][]float64{}
	allocs := map[string][][]float64{}
	enq := map[string][][]float64{}
	for _, s := range ss {
		rates[s.name] = make([][]float64, len(sizes))
		allocs[s.name] = make([][]float64, len(sizes))
		enq[s.name] = make([][]float64, len(sizes))
	}
	for run := range *flagRuns {
		for i, sz := range sizes {
			payload := strings.Repeat("x", sz.bytes)
			arg := func(int) string { return payload }
			prods := 64
			if sz.bytes >= 1<<20 {
				prods = 8
			}
			for _, s := range ss {
				var el time.Duration
				rate, rs, err := drainRun(1, sz.n, s.spec, func(n int) error {
					t := time.Now()
					err := s.fill(n, prods, arg)
					el = time.Since(t)
					return err
				})
				if err != nil {
					return fmt.Errorf("%s, %s: %w", s.name, sz.label, err)
				}
				a := float64(rs[0].Mallocs) / float64(rs[0].Done)
				fmt.Fprintf(os.Stderr, "payload run %d: %s %s: %.0f/s, %.1f allocs/task\n", run, s.name, sz.label, rate, a)
				rates[s.name][i] = append(rates[s.name][i], rate)
				allocs[s.name][i] = append(allocs[s.name][i], a)
				enq[s.name][i] = append(enq[s.name][i], float64(sz.n)/el.Seconds())
			}
		}
	}
	flushDB(ctx, e.redisAddr, dbPayload)
	flushDB(ctx, e.redisAddr, dbPayloadA)
	r.printf("\nNo-op tasks whose one string argument is the payload: N tasks queued (64 producers; 8 for 1 MiB), then drained by one worker process "+
		"of concurrency 8. Allocations per task: `runtime.MemStats.Mallocs` of the worker process over the drain divided by the tasks "+
		"(it includes the worker's own events and heartbeats). N = %d, %d, %d; median of %d runs, range in brackets.\n\n",
		sizes[0].n, sizes[1].n, sizes[2].n, *flagRuns)
	r.printf("| system | payload | enqueue tasks/s | drain tasks/s | drain MB/s | allocations per task (worker) |\n|---|---|---|---|---|---|\n")
	var rs, as []series
	for _, s := range ss {
		var xs, ry, ay []float64
		for i, sz := range sizes {
			st, at, et := statsOf(rates[s.name][i]), statsOf(allocs[s.name][i]), statsOf(enq[s.name][i])
			r.printf("| %s | %s | %s | %s | %.1f | %s |\n", s.name, sz.label, et.rateCell(), st.rateCell(), st.med*float64(sz.bytes)/1e6, at.cell(1))
			xs, ry, ay = append(xs, float64(sz.bytes)), append(ry, st.med), append(ay, at.med)
		}
		rs = append(rs, series{name: s.name, x: xs, y: ry})
		as = append(as, series{name: s.name, x: xs, y: ay})
	}
	file, link := r.plot("payload-rate.png")
	if err := plotLines(file, "Drain rate by payload size (one worker, concurrency 8)", "payload, bytes (log)", "tasks/s (log, median)", rs, true, true); err != nil {
		return err
	}
	file2, link2 := r.plot("payload-allocs.png")
	if err := plotLines(file2, "Worker allocations per task by payload size", "payload, bytes (log)", "mallocs per task (log, median)", as, true, true); err != nil {
		return err
	}
	r.printf("\n![drain rate by payload](%s)\n![allocations per task by payload](%s)\n", link, link2)
	return nil
}

func secResult(ctx context.Context, e *env, r *report) error {
	const callers = 64
	cases := []struct{ name, broker, backend string }{
		{"Redis broker + Redis backend", e.redisURL(dbResult), e.redisURL(dbResultB)},
		{"RabbitMQ broker + Redis backend", e.amqpURL, e.redisURL(dbResultB)},
	}
	q := fmt.Sprintf("scale.result.%d", os.Getpid())
	defer deleteAMQPQueues(e.amqpURL, q)
	rates := make([][]float64, len(cases))
	p50s, p99s := make([][]float64, len(cases)), make([][]float64, len(cases))
	for run := range *flagRuns {
		for i, c := range cases {
			flushDB(ctx, e.redisAddr, dbResult)
			flushDB(ctx, e.redisAddr, dbResultB)
			w, err := startWorker(workerSpec{system: "taskgen", broker: c.broker, backend: c.backend, queues: []string{q}, conc: 8})
			if err != nil {
				return err
			}
			w.start()
			app, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Logger: logger()})
			if err != nil {
				w.stop()
				return err
			}
			st := tasks.WfMember.With(runtime.WithApp(app), runtime.Queue(q))
			// Warm up: the worker consumes, the connections are open.
			if res, err := st.Delay(ctx, 1); err == nil {
				gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err = res.Get(gctx)
				cancel()
			}
			if err != nil {
				app.Close()
				w.stop()
				return fmt.Errorf("%s: warm-up: %w", c.name, err)
			}
			lats := make([][]int64, callers)
			errs := make([]error, callers)
			deadline := time.Now().Add(*flagRTDur)
			start := time.Now()
			done := make(chan int, callers)
			for k := range callers {
				go func() {
					defer func() { done <- k }()
					for x := int64(0); time.Now().Before(deadline); x++ {
						t := time.Now()
						res, err := st.Delay(ctx, x)
						if err == nil {
							gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
							var v int64
							v, err = res.Get(gctx)
							cancel()
							if err == nil && v != x {
								err = fmt.Errorf("Get returned %d, want %d", v, x)
							}
						}
						if err != nil {
							errs[k] = err
							return
						}
						lats[k] = append(lats[k], int64(time.Since(t)))
					}
				}()
			}
			for range callers {
				<-done
			}
			el := time.Since(start)
			app.Close()
			res := w.stop()
			var all []int64
			for k := range callers {
				if errs[k] != nil {
					return fmt.Errorf("%s: %w", c.name, errs[k])
				}
				all = append(all, lats[k]...)
			}
			if res.Err != "" {
				return fmt.Errorf("%s worker: %s", c.name, res.Err)
			}
			p50, p99 := percentiles(all)
			rate := float64(len(all)) / el.Seconds()
			fmt.Fprintf(os.Stderr, "result run %d: %s %.0f/s p50 %.2f ms\n", run, c.name, rate, p50)
			rates[i] = append(rates[i], rate)
			p50s[i], p99s[i] = append(p50s[i], p50), append(p99s[i], p99)
		}
	}
	flushDB(ctx, e.redisAddr, dbResult)
	flushDB(ctx, e.redisAddr, dbResultB)
	r.printf("\n%d callers in one process, each looping `Delay` then `Get` (a task returning its int argument, result stored) for %s against one worker process "+
		"of concurrency 8. Median of %d runs, range in brackets.\n\n", callers, *flagRTDur, *flagRuns)
	r.printf("| broker + backend | round trips/s | round trip p50 | round trip p99 |\n|---|---|---|---|\n")
	var cats []string
	var ys []float64
	for i, c := range cases {
		st := statsOf(rates[i])
		r.printf("| taskgen, %s | %s | %s ms | %s ms |\n", c.name, st.rateCell(), statsOf(p50s[i]).cell(2), statsOf(p99s[i]).cell(2))
		cats = append(cats, c.name)
		ys = append(ys, st.med)
	}
	file, link := r.plot("result.png")
	if err := plotBars(file, fmt.Sprintf("Delay + Get round trips per second, %d callers", callers), "round trips/s (median)", cats,
		[]series{{name: "taskgen", y: ys}}); err != nil {
		return err
	}
	r.printf("\n![result round trips](%s)\n", link)
	return nil
}
