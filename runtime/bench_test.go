package runtime_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// BenchmarkMemory_DelayRunGet measures one task round trip through memory://:
// Delay (encode, publish), the worker (consume, decode, run, store the
// result) and Get (wait, decode).
func BenchmarkMemory_DelayRunGet(b *testing.B) {
	app, err := runtime.New(runtime.Config{Broker: "memory://bench", Backend: "memory://bench",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	def := &codegen.TaskDef{Name: "bench.echo", Retry: codegen.DefaultRetryPolicy(), IgnoreResult: false,
		NewArgs: func() wire.Args { return new(greetArgs) },
		Run:     func(ctx context.Context, a wire.Args) (any, error) { return a.(*greetArgs).name, nil }}
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4})
	w.Register(def)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stub := runtime.NewStub[string](def).With(runtime.WithApp(app))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := stub.Send(ctx, &greetArgs{name: "ann@example.com"})
		if err != nil {
			b.Fatal(err)
		}
		if v, err := res.Get(ctx); err != nil || v != "ann@example.com" {
			b.Fatal(v, err)
		}
	}
	b.StopTimer()
	cancel()
	<-done
}
