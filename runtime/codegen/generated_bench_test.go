package codegen_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	_ "github.com/taskgen/taskgen/runtime/memory"
)

// BenchmarkGenerated_DelayRunGet measures one round trip of a generated
// stub (exampletasks.Report, one string parameter) through memory://: the
// generated Delay and codec, the worker's decode through TaskDef.NewArgs and
// the generated Run.
func BenchmarkGenerated_DelayRunGet(b *testing.B) {
	app, err := runtime.New(runtime.Config{Broker: "memory://codegen-bench", Backend: "memory://codegen-bench",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4})
	exampletasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stub := exampletasks.Report.With(runtime.WithApp(app))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := stub.Delay(ctx, "monday")
		if err != nil {
			b.Fatal(err)
		}
		if v, err := res.Get(ctx); err != nil || v != "report for monday" {
			b.Fatal(v, err)
		}
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkGenerated_Decode measures the worker's decode path of a
// generated task: a fresh argument struct from TaskDef.NewArgs, filled by
// the generated codec from positional or keyword arguments.
func BenchmarkGenerated_Decode(b *testing.B) {
	def := exampletasks.Resize.Def()
	args := def.NewArgs()
	if _, err := codegen.DecodeBody("application/json", "", []byte(`[["https://x/y.png", 640], {}, null]`), args); err != nil {
		b.Fatal(err)
	}
	mp, err := codegen.AppendBody(nil, "msgpack", args, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, contentType string
		body              []byte
	}{
		{"msgpack", "application/x-msgpack", mp},
		{"json", "application/json", []byte(`[["https://x/y.png", 640], {}, null]`)},
		{"json-kwargs", "application/json", []byte(`[[], {"url": "https://x/y.png", "width": 640}, null]`)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := codegen.DecodeBody(c.contentType, "", c.body, def.NewArgs()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
