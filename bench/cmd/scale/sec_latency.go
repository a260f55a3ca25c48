package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
)

// brokerCase is taskgen on one broker, on a queue of its own.
type brokerCase struct{ name, url string }

func brokerCases(e *env, db int) []brokerCase {
	return []brokerCase{{"Redis", e.redisURL(db)}, {"RabbitMQ", e.amqpURL}}
}

func secCountdown(ctx context.Context, e *env, r *report) error {
	n, spanD := *flagETA, *flagSpan
	const lead = 5 * time.Second
	type row struct {
		broker     string
		enq        time.Duration
		p50, p99   float64
		latN       int
		sentLate   int
		runSeconds float64
	}
	var rows []row
	for _, b := range brokerCases(e, dbCountdown) {
		flushDB(ctx, e.redisAddr, dbCountdown)
		q := fmt.Sprintf("scale.countdown.%d", os.Getpid())
		w, err := startWorker(workerSpec{system: "taskgen", broker: b.url, queues: []string{q}, conc: 8, lat: n, poll: 10 * time.Millisecond})
		if err != nil {
			return err
		}
		w.start()
		app, err := runtime.New(runtime.Config{Broker: b.url, Logger: logger()})
		if err != nil {
			w.stop()
			return err
		}
		time.Sleep(500 * time.Millisecond)
		t0 := time.Now().Add(lead)
		var late atomic.Int64
		el, err := produce(n, 64, func(i int) error {
			due := t0.Add(time.Duration(float64(spanD) * float64(i) / float64(n)))
			if time.Now().After(due) {
				late.Add(1)
			}
			_, err := tasks.Noop.With(runtime.WithApp(app), runtime.Queue(q), runtime.ETA(due)).Delay(ctx, strconv.FormatInt(due.UnixNano(), 10))
			return err
		})
		app.Close()
		fmt.Fprintf(os.Stderr, "countdown %s: enqueued %d in %s\n", b.name, n, el)
		if err == nil {
			err = waitTotal([]*worker{w}, int64(n), lead+spanD+2*time.Minute)
		}
		res := w.stop()
		deleteAMQPQueues(e.amqpURL, q)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		if res.Err != "" {
			return fmt.Errorf("%s worker: %s", b.name, res.Err)
		}
		rows = append(rows, row{broker: b.name, enq: el, p50: res.P50, p99: res.P99, latN: res.LatN, sentLate: int(late.Load())})
	}
	flushDB(ctx, e.redisAddr, dbCountdown)
	r.printf("\n%d no-op tasks sent with `runtime.ETA` (64 producers) due uniformly over %s, starting %s after the first send; "+
		"each task's argument is its due time and the task records its start − due (one worker process, concurrency 8, waiting before the first send). "+
		"Due times are ordered like the sends, so no task is sent after it is due unless the enqueue falls behind (column \"sent late\"). One run.\n\n",
		n, spanD, lead)
	r.printf("| broker | enqueue of %d | lateness p50 | lateness p99 | samples | sent late |\n|---|---|---|---|---|---|\n", n)
	var p50s, p99s []float64
	var cats []string
	for _, x := range rows {
		r.printf("| %s | %s | %.2f ms | %.2f ms | %d | %d |\n", x.broker, x.enq.Round(10*time.Millisecond), x.p50, x.p99, x.latN, x.sentLate)
		cats = append(cats, "taskgen "+x.broker)
		p50s, p99s = append(p50s, x.p50), append(p99s, x.p99)
	}
	file, link := r.plot("countdown.png")
	if err := plotDots(file, fmt.Sprintf("Lateness of %d countdowns over %s (start − due)", n, spanD), "ms (log)", cats,
		[]series{{name: "p50", y: p50s}, {name: "p99", y: p99s}}, true); err != nil {
		return err
	}
	r.printf("\n![countdown lateness](%s)\n", link)
	return nil
}

func secQueues(ctx context.Context, e *env, r *report) error {
	const sends = 500
	type row struct {
		broker, label string
		nq            int
		idle          float64 // % of one core
		p50, p99      float64
	}
	var rows []row
	for _, b := range brokerCases(e, dbQueues) {
		for _, nq := range []int{1, *flagNQ} {
			flushDB(ctx, e.redisAddr, dbQueues)
			qs := make([]string, nq)
			for i := range qs {
				qs[i] = fmt.Sprintf("scale.q%d.%d.%d", nq, os.Getpid(), i)
			}
			w, err := startWorker(workerSpec{system: "taskgen", broker: b.url, queues: qs, conc: 8, lat: sends, poll: 100 * time.Millisecond})
			if err != nil {
				return err
			}
			w.start()
			app, err := runtime.New(runtime.Config{Broker: b.url, Logger: logger()})
			if err != nil {
				w.stop()
				return err
			}
			stubs := make([]tasks.NoopTask, nq)
			for i, q := range qs {
				stubs[i] = tasks.Noop.With(runtime.WithApp(app), runtime.Queue(q))
			}
			time.Sleep(3 * time.Second) // consuming every queue
			c0, t0 := procCPU(w.pid()), time.Now()
			time.Sleep(*flagIdle)
			idle := (procCPU(w.pid()) - c0) / time.Since(t0).Seconds() * 100
			rnd := rand.New(rand.NewPCG(1, 2))
			for range sends {
				if _, err = stubs[rnd.IntN(nq)].Delay(ctx, now()); err != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err == nil {
				err = waitTotal([]*worker{w}, sends, time.Minute)
			}
			app.Close()
			res := w.stop()
			deleteAMQPQueues(e.amqpURL, qs...)
			if err != nil {
				return fmt.Errorf("%s, %d queues: %w", b.name, nq, err)
			}
			if res.Err != "" {
				return fmt.Errorf("%s, %d queues, worker: %s", b.name, nq, res.Err)
			}
			fmt.Fprintf(os.Stderr, "queues %s %d: idle %.2f%%, p50 %.2f p99 %.2f ms\n", b.name, nq, idle, res.P50, res.P99)
			rows = append(rows, row{broker: b.name, nq: nq, idle: idle, p50: res.P50, p99: res.P99})
		}
	}
	flushDB(ctx, e.redisAddr, dbQueues)
	r.printf("\nOne worker process (concurrency 8, events on) consuming 1 or %d queues. Idle CPU: the worker's utime+stime from /proc/<pid>/stat "+
		"over %s with nothing queued (after 3 s of settling), in %% of one core (it includes the worker's 2 s heartbeat events and the child's 100 ms progress report). "+
		"Start latency: %d tasks sent one at a time (20 ms apart) to random queues, enqueue → start. One run.\n\n", *flagNQ, *flagIdle, sends)
	r.printf("| broker | queues | idle CPU | start p50 | start p99 |\n|---|---|---|---|---|\n")
	var cats []string
	var p50s, p99s, idles []float64
	for _, x := range rows {
		r.printf("| taskgen %s | %d | %.2f %% | %.3f ms | %.3f ms |\n", x.broker, x.nq, x.idle, x.p50, x.p99)
		cats = append(cats, fmt.Sprintf("%s, %d q", x.broker, x.nq))
		p50s, p99s = append(p50s, x.p50), append(p99s, x.p99)
		idles = append(idles, x.idle)
	}
	file, link := r.plot("queues-latency.png")
	if err := plotDots(file, "Start latency, one worker consuming 1 vs many queues", "enqueue → start, ms (log)", cats,
		[]series{{name: "p50", y: p50s}, {name: "p99", y: p99s}}, true); err != nil {
		return err
	}
	file2, link2 := r.plot("queues-idle.png")
	if err := plotBars(file2, "Idle CPU of one worker consuming 1 vs many queues", "% of one core", cats,
		[]series{{name: "idle worker CPU", y: idles}}); err != nil {
		return err
	}
	r.printf("\n![start latency with many queues](%s)\n![idle CPU with many queues](%s)\n", link, link2)
	return nil
}
