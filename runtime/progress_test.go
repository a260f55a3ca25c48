package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
)

func TestProgress_MemoryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			app := newApp(t, ser)
			stepped, next := make(chan int), make(chan struct{})
			def := &codegen.TaskDef{Name: "test.import", Retry: codegen.DefaultRetryPolicy(),
				NewArgs: func() codegen.Args { return new(greetArgs) },
				Run: func(ctx context.Context, a codegen.Args) (any, error) {
					for i := 1; i <= 3; i++ {
						if err := runtime.Progress(ctx, i, 3, "row"); err != nil {
							return nil, err
						}
						stepped <- i
						<-next
					}
					if err := runtime.UpdateState(ctx, "SUCCESS", nil); err == nil {
						return nil, context.Canceled // reserved states must be refused
					}
					return "done", nil
				}}
			runWorker(t, app, def)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.ErrorIs(t, runtime.Progress(ctx, 1, 2, ""), runtime.ErrNotInTask)
			res, err := runtime.NewStub[string](def).With(runtime.WithApp(app)).Send(ctx, &greetArgs{name: "x"})
			require.NoError(t, err)
			got := make(chan error, 1)
			for i := 1; i <= 3; i++ {
				require.Equal(t, i, <-stepped)
				p, err := res.Progress(ctx)
				require.NoError(t, err)
				require.Equal(t, runtime.ProgressInfo{State: runtime.StateProgress, Current: i, Total: 3, Note: "row"}, p)
				info, err := res.Info(ctx)
				require.NoError(t, err)
				var m map[string]any
				require.NoError(t, info.Decode(&m))
				require.Equal(t, map[string]any{"current": int64(i), "total": int64(3), "note": "row"}, m)
				if i == 1 { // Get started while PROGRESS is stored must wait past it
					go func() {
						v, err := res.Get(ctx)
						if err == nil && v != "done" {
							err = context.Canceled
						}
						got <- err
					}()
				}
				next <- struct{}{}
			}
			require.NoError(t, <-got)
			p, err := res.Progress(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.StateSuccess, p.State)
			require.Equal(t, 100.0, p.Percent())
		})
	}
}
