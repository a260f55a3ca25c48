package prom_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	"github.com/taskgen/taskgen/runtime/prom"
)

// BenchmarkMemory_DelayRunGet is one Delay, run and Get on memory://,
// without and with Instrument (the observer's counters, the runtime
// histogram's middleware and OnSettled).
func BenchmarkMemory_DelayRunGet(b *testing.B) {
	for _, instrumented := range []bool{false, true} {
		name := "plain"
		if instrumented {
			name = "instrumented"
		}
		b.Run(name, func(b *testing.B) {
			url := "memory://prom-bench-" + driver.NewID()
			app, err := runtime.New(runtime.Config{Broker: url, Backend: url, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			if instrumented {
				prom.Instrument(app, prom.WithRegisterer(prometheus.NewRegistry()))
			}
			w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"images"}, Concurrency: 1, WithoutEvents: true})
			exampletasks.RegisterTasks(w)
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- w.Run(ctx) }()
			defer func() { stop(); <-done }()
			resize := exampletasks.Resize.With(runtime.WithApp(app))
			b.ReportAllocs()
			for b.Loop() {
				res, err := resize.Delay(ctx, "a.png", 1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := res.Get(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
