package redis_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/redis"
)

// TestProgress_RedisBackend: a Go task on a Go worker stores a custom
// state and then its progress three times, stepped by the test; another
// App (the caller, as a web process would be) reads each intermediate
// state through Info and Progress, the stored document is Celery's
// update_state document, a Get started mid-way waits past PROGRESS, and
// an update from a goroutine the task left running is refused once the
// task returned (the final SUCCESS stays).
func TestProgress_RedisBackend(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			raw := testURL(t, "", "")
			workerApp, caller := newApp(t, raw, ser), newApp(t, raw, ser)
			type phase struct {
				state string
				step  int
			}
			stepped, next := make(chan phase), make(chan struct{})
			late, lateErr := make(chan struct{}), make(chan error, 1)
			def := addDef("tasks.import_rows", func(ctx context.Context, a *addArgs) (any, error) {
				if err := runtime.UpdateState(ctx, "VALIDATING", validating{File: "contacts.csv", Columns: []string{"name", "email"}}); err != nil {
					return nil, err
				}
				stepped <- phase{"VALIDATING", 0}
				<-next
				for i := 1; i <= int(a.x); i++ {
					if err := runtime.Progress(ctx, i, int(a.x), "row"); err != nil {
						return nil, err
					}
					stepped <- phase{"PROGRESS", i}
					<-next
				}
				go func() { <-late; lateErr <- runtime.Progress(ctx, 1, 1, "late") }()
				return a.x, nil
			})
			runWorker(t, workerApp, runtime.WorkerOptions{}, def)
			ctx := ctxT(t, 20*time.Second)
			res, err := runtime.NewStub[int64](def).With(runtime.WithApp(caller)).Send(ctx, &addArgs{x: 3})
			require.NoError(t, err)

			require.Equal(t, phase{"VALIDATING", 0}, <-stepped)
			info, err := res.Info(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.State("VALIDATING"), info.State)
			var meta map[string]any
			require.NoError(t, info.Decode(&meta))
			require.Equal(t, map[string]any{"file": "contacts.csv", "columns": []any{"name", "email"}}, meta)
			var typed validating
			require.NoError(t, info.Decode(&typed))
			require.Equal(t, validating{File: "contacts.csv", Columns: []string{"name", "email"}}, typed)
			p, err := res.Progress(ctx) // a custom state without current/total: no progress, no error
			require.NoError(t, err)
			require.Equal(t, runtime.ProgressInfo{State: "VALIDATING"}, p)
			require.False(t, p.Ready())
			next <- struct{}{}

			got := make(chan error, 1)
			for i := 1; i <= 3; i++ {
				require.Equal(t, phase{"PROGRESS", i}, <-stepped)
				p, err := res.Progress(ctx)
				require.NoError(t, err)
				require.Equal(t, runtime.ProgressInfo{State: runtime.StateProgress, Current: i, Total: 3, Note: "row"}, p)
				require.False(t, p.Ready())
				require.InDelta(t, 100*float64(i)/3, p.Percent(), 1e-9)
				info, err := res.Info(ctx)
				require.NoError(t, err)
				require.Equal(t, runtime.StateProgress, info.State)
				var m map[string]any
				require.NoError(t, info.Decode(&m))
				require.Equal(t, map[string]any{"current": int64(i), "total": int64(3), "note": "row"}, m)
				if i == 1 {
					if ser == "json" {
						// Celery's update_state document, as a Python AsyncResult reads it.
						b := workerApp.Backend().(*redis.Backend)
						doc, err := b.Client().Get(ctx, prefixOf(t, raw)+"celery-task-meta-"+res.ID()).Bytes()
						require.NoError(t, err)
						var d map[string]any
						require.NoError(t, json.Unmarshal(doc, &d))
						require.Equal(t, map[string]any{"status": "PROGRESS", "result": map[string]any{"current": 1.0, "total": 3.0, "note": "row"},
							"traceback": nil, "children": []any{}, "date_done": nil, "task_id": res.ID()}, without(d, "parent_id", "group_id"))
					}
					// A Get started while PROGRESS is stored waits past it
					// (each Progress PUBLISHes to its subscription).
					go func() {
						v, err := res.Get(ctx)
						if err == nil && v != 3 {
							err = context.Canceled
						}
						got <- err
					}()
				}
				next <- struct{}{}
			}
			require.NoError(t, <-got)
			p, err = res.Progress(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.ProgressInfo{State: runtime.StateSuccess}, p)
			require.True(t, p.Ready())
			require.Equal(t, 100.0, p.Percent())

			close(late)
			require.ErrorIs(t, <-lateErr, runtime.ErrTaskFinished)
			v, err := res.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(3), v)
		})
	}
}

// validating is a custom state's meta: a struct, stored by its json tags
// with either serializer.
type validating struct {
	File    string   `json:"file"`
	Columns []string `json:"columns"`
}

// without returns m less the keys (fields whose value is not the point).
func without(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		delete(m, k)
	}
	return m
}
