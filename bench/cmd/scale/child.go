package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
)

// childResult is what a worker child prints on its last stdout line.
type childResult struct {
	Done        int64
	First, Last int64   // Unix ns: when the first task had run, when the last had
	Mallocs     uint64  // runtime.MemStats.Mallocs delta since "go"
	P50, P99    float64 // ms, the latencies tasks.Record noted (-lat)
	LatN        int
	Err         string
}

// workerChild is the -child worker process: it builds a worker (taskgen or
// asynq) on -broker, prints "ready", starts consuming when its stdin says
// "go", prints "done N" whenever its count of run tasks changes (polled
// every -poll) and stops, printing a JSON childResult, when stdin says
// "stop" or closes.
func workerChild() {
	in := bufio.NewScanner(os.Stdin)
	queues := strings.Split(*flagQueues, ",")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var run func() error
	switch *flagSystem {
	case "taskgen":
		app, err := runtime.New(runtime.Config{Broker: *flagBroker, Backend: *flagBackend, Logger: logger()})
		if err != nil {
			fatalChild(err)
		}
		defer app.Close()
		w := app.NewWorker(runtime.WorkerOptions{Queues: queues, Concurrency: *flagConc, ShutdownTimeout: 10 * time.Second})
		tasks.RegisterTasks(w)
		run = func() error { return w.Run(ctx) }
	case "asynq":
		opt, err := asynqOpt(*flagBroker)
		if err != nil {
			fatalChild(err)
		}
		qs := map[string]int{}
		for _, q := range queues {
			qs[q] = 1
		}
		srv := asynq.NewServer(opt, asynq.Config{Concurrency: *flagConc, Queues: qs, LogLevel: asynq.WarnLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc("bench.noop", func(ctx context.Context, t *asynq.Task) error {
			tasks.Record(string(t.Payload()))
			return nil
		})
		run = func() error {
			if err := srv.Start(mux); err != nil {
				return err
			}
			<-ctx.Done()
			srv.Shutdown()
			return nil
		}
	case "raw-redis", "raw-amqp":
		mk := rawRedisWorker
		if *flagSystem == "raw-amqp" {
			mk = rawAMQPWorker
		}
		var err error
		if run, err = mk(ctx, *flagBroker, queues[0], *flagConc); err != nil {
			fatalChild(err)
		}
	default:
		fatalChild(fmt.Errorf("unknown -system %q", *flagSystem))
	}
	if *flagLat > 0 {
		tasks.RecordLatency(*flagLat)
	}
	fmt.Println("ready")
	if !in.Scan() || in.Text() != "go" {
		return
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	m0 := ms.Mallocs
	done := make(chan error, 1)
	go func() { done <- run() }()
	var res childResult
	stopped := make(chan struct{})
	go func() {
		for in.Scan() && in.Text() != "stop" {
		}
		close(stopped)
	}()
	tick := time.NewTicker(*flagPoll)
	defer tick.Stop()
	var last int64
loop:
	for {
		select {
		case <-stopped:
			break loop
		case err := <-done:
			if err != nil {
				res.Err = err.Error()
			}
			done = nil
		case <-tick.C:
			n := tasks.Done.Load()
			if n != last {
				t := time.Now().UnixNano()
				if last == 0 {
					res.First = t
				}
				res.Last, last = t, n
				fmt.Printf("done %d\n", n)
			}
		}
	}
	goruntime.ReadMemStats(&ms)
	res.Mallocs = ms.Mallocs - m0
	res.Done = tasks.Done.Load()
	if *flagLat > 0 {
		lat := tasks.Latencies()
		res.LatN = len(lat)
		res.P50, res.P99 = percentiles(lat)
	}
	cancel()
	if done != nil {
		if err := <-done; err != nil && res.Err == "" && ctx.Err() == nil {
			res.Err = err.Error()
		}
	}
	b, _ := json.Marshal(res)
	fmt.Printf("result %s\n", b)
}

func fatalChild(err error) {
	b, _ := json.Marshal(childResult{Err: err.Error()})
	fmt.Printf("result %s\n", b)
	os.Exit(1)
}
