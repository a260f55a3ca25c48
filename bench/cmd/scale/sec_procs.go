package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hibiken/asynq"
)

// drainSys is one system of a drain harness: how to fill its queue and
// the worker child that drains it.
type drainSys struct {
	name  string
	spec  workerSpec
	fill  func(n int) error
	clean func()
}

// drainSystems are taskgen on both brokers, asynq and the raw loops, each
// on its own queue.
func drainSystems(ctx context.Context, e *env, conc int) ([]drainSys, func(), error) {
	qR := fmt.Sprintf("scale.procs.%d", os.Getpid())
	tgR, err := newTG(e.redisURL(dbProcs), qR)
	if err != nil {
		return nil, nil, err
	}
	tgA, err := newTG(e.amqpURL, qR)
	if err != nil {
		return nil, nil, err
	}
	aopt, _ := asynqOpt(e.redisURL(dbProcsA))
	ac := asynq.NewClient(aopt)
	flushDB(ctx, e.redisAddr, dbProcs)
	flushDB(ctx, e.redisAddr, dbProcsA)
	flushDB(ctx, e.redisAddr, dbProcsRaw)
	ss := []drainSys{
		{name: "taskgen Redis", spec: workerSpec{system: "taskgen", broker: e.redisURL(dbProcs), queues: []string{qR}, conc: conc},
			fill: func(n int) error { _, err := tgR.fill(ctx, n, 64, tsArg); return err }},
		{name: "asynq Redis", spec: workerSpec{system: "asynq", broker: e.redisURL(dbProcsA), queues: []string{"scaleprocs"}, conc: conc},
			fill: func(n int) error { _, err := asynqFill(ctx, ac, "scaleprocs", n, 64, tsArg); return err }},
		{name: "raw BLMOVE+LREM Redis", spec: workerSpec{system: "raw-redis", broker: e.redisURL(dbProcsRaw), queues: []string{"scale.raw"}, conc: conc},
			fill: func(n int) error { return rawRedisFill(ctx, e.redisURL(dbProcsRaw), "scale.raw", n) }},
		{name: "raw consume+ack RabbitMQ", spec: workerSpec{system: "raw-amqp", broker: e.amqpURL, queues: []string{qR + ".raw"}, conc: conc},
			fill: func(n int) error { return rawAMQPFill(ctx, e.amqpURL, qR+".raw", n) }},
		{name: "taskgen RabbitMQ", spec: workerSpec{system: "taskgen", broker: e.amqpURL, queues: []string{qR}, conc: conc},
			fill: func(n int) error { _, err := tgA.fill(ctx, n, 64, tsArg); return err }},
	}
	return ss, func() {
		tgR.close()
		tgA.close()
		ac.Close()
		flushDB(ctx, e.redisAddr, dbProcs)
		flushDB(ctx, e.redisAddr, dbProcsA)
		flushDB(ctx, e.redisAddr, dbProcsRaw)
		deleteAMQPQueues(e.amqpURL, qR, qR+".raw")
	}, nil
}

func secProcs(ctx context.Context, e *env, r *report) error {
	ss, cleanup, err := drainSystems(ctx, e, 8)
	if err != nil {
		return err
	}
	defer cleanup()
	ks := []int{1, 2, 4}
	rates := map[string]map[int][]float64{}
	for _, s := range ss {
		rates[s.name] = map[int][]float64{}
	}
	for run := range *flagRuns {
		for _, k := range ks {
			for _, s := range ss {
				rate, _, err := drainRun(k, *flagN, s.spec, s.fill)
				if err != nil {
					return fmt.Errorf("%s, %d processes: %w", s.name, k, err)
				}
				fmt.Fprintf(os.Stderr, "procs run %d: %s k=%d %.0f/s\n", run, s.name, k, rate)
				rates[s.name][k] = append(rates[s.name][k], rate)
			}
		}
	}
	r.printf("\n%d no-op tasks queued first (64 producers), then drained by k worker processes of concurrency 8 each "+
		"(tasks/s from the first task run to the last; median of %d runs, range in brackets). "+
		"The raw rows are minimal go-redis and amqp091 consumers in the same child processes (%d-byte messages; the Redis one is reliable: BLMOVE to a processing list, LREM after the task). "+
		"The processes share the machine's cores with the broker, so the curve shows where the broker or the cores stop the scaling, not a per-process speed-up.\n\n",
		*flagN, *flagRuns, rawSize)
	r.printf("| system | 1 process | 2 processes | 4 processes | 4 vs 1 |\n|---|---|---|---|---|\n")
	var plots []series
	for _, s := range ss {
		row := []string{s.name}
		var ys, xs []float64
		for _, k := range ks {
			st := statsOf(rates[s.name][k])
			row = append(row, st.rateCell())
			xs, ys = append(xs, float64(k)), append(ys, st.med)
		}
		row = append(row, fmt.Sprintf("%.2f×", ys[2]/ys[0]))
		r.printf("| %s |\n", strings.Join(row, " | "))
		plots = append(plots, series{name: s.name, x: xs, y: ys})
	}
	file, link := r.plot("procs.png")
	if err := plotLines(file, "Drain rate by worker processes (concurrency 8 each)", "worker processes", "tasks/s (median)", plots, false, false); err != nil {
		return err
	}
	r.printf("\n![drain rate by worker processes](%s)\n", link)
	return nil
}
