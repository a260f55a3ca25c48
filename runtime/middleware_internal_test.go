package runtime

import (
	"context"
	"testing"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// BenchmarkHandlerChain measures what the middleware chain adds to a task's
// execution: the bare task function (no middleware: the worker calls
// runTask directly), then one and three no-op middlewares, and the Hooks'
// Prerun/Postrun.
func BenchmarkHandlerChain(b *testing.B) {
	def := &codegen.TaskDef{Name: "bench.noop", Run: func(context.Context, wire.Args) (any, error) { return nil, nil }}
	noop := func(next Handler) Handler {
		return func(ctx context.Context, t *TaskInfo) (any, error) { return next(ctx, t) }
	}
	hooks := &Hooks{Prerun: func(context.Context, *TaskInfo) {}, Postrun: func(context.Context, *TaskInfo, any, error) {}}
	wrap := func(mws ...Middleware) Handler { h, _ := chain(Handler(runTask), mws...); return h }
	for _, c := range []struct {
		name string
		h    Handler
	}{
		{"none", runTask},
		{"one", wrap(noop)},
		{"three", wrap(noop, noop, noop)},
		{"hooks", wrap(hooks.middleware())},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			info := &TaskInfo{def: def}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.h(ctx, info); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
