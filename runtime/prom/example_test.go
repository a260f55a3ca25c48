package prom_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	_ "github.com/taskgen/taskgen/runtime/memory"
	"github.com/taskgen/taskgen/runtime/prom"
)

// Instrument an app, watch its worker, and read the metrics a scrape of
// Handler(reg) would serve.
func ExampleInstrument() {
	name := "memory://prom-example-" + driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: name, Backend: name, Hostname: "worker@example",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	defer app.Close()
	reg := prometheus.NewRegistry()
	m := prom.Instrument(app, prom.WithRegisterer(reg))
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"images"}, Concurrency: 2, WithoutEvents: true})
	exampletasks.RegisterTasks(w)
	m.Watch(w)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	res, _ := exampletasks.Resize.With(runtime.WithApp(app)).Delay(ctx, "cat.png", 64)
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := res.Get(gctx); err != nil {
		panic(err)
	}
	stop()
	<-done

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "taskgen_worker_tasks_total":
			fmt.Println("task series:", len(mf.Metric))
			for _, s := range mf.Metric {
				if v := s.GetCounter().GetValue(); v > 0 {
					fmt.Println(s.Label[1].GetValue(), s.Label[0].GetValue(), v)
				}
			}
		case "taskgen_worker_tasks_active":
			fmt.Println("active:", mf.Metric[0].GetGauge().GetValue())
		}
	}
	// Output:
	// active: 0
	// task series: 7
	// images.resize received 1
	// images.resize started 1
	// images.resize succeeded 1
}
