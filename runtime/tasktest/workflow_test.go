package tasktest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/internal/canvastasks"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// TestWorkflow_ChainAndChord: a kit runs workflows eagerly and lists the
// messages each sent, in order, with their arguments as the steps saw them.
func TestWorkflow_ChainAndChord(t *testing.T) {
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			kit := tasktest.NewWith(t, []tasktest.Option{tasktest.Serializer(ser), tasktest.WithoutDefault()}, canvastasks.RegisterTasks)
			ctx := context.Background()
			on := runtime.WithApp(kit.App)

			res, err := runtime.Chain(runtime.Chain(canvastasks.Add.Sig(2, 2), canvastasks.Mul.Partial(4)), canvastasks.Add.Partial(10)).With(on).Delay(ctx)
			require.NoError(t, err)
			got, err := res.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(26), got)
			steps := kit.Workflow(res.ID())
			require.Len(t, steps, 3)
			for i, want := range []struct {
				task string
				args []any
			}{{"tasks.add", []any{int64(2), int64(2)}}, {"tasks.mul", []any{int64(4), int64(4)}}, {"tasks.add", []any{int64(16), int64(10)}}} {
				require.Equal(t, want.task, steps[i].Task, "step %d", i)
				require.Equal(t, want.args, steps[i].Args, "step %d", i)
				require.Equal(t, steps[0].ID, steps[i].RootID)
				if i > 0 {
					require.Equal(t, steps[i-1].ID, steps[i].ParentID, "each step follows the one before")
				}
			}
			require.Equal(t, res.ID(), steps[2].ID)

			cres, err := runtime.Chord(runtime.Group(canvastasks.Add.Sig(1, 1), canvastasks.Add.Sig(2, 2)), canvastasks.Tsum.Partial()).With(on).Delay(ctx)
			require.NoError(t, err)
			sum, err := cres.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(6), sum)
			msgs := kit.Workflow(cres.ID())
			require.Len(t, msgs, 3)
			require.Equal(t, []string{"tasks.add", "tasks.add", "tasks.tsum"}, []string{msgs[0].Task, msgs[1].Task, msgs[2].Task})
			require.Equal(t, msgs[0].GroupID, msgs[1].GroupID)
			require.NotEmpty(t, msgs[0].GroupID)
			require.Equal(t, []int{0, 1, -1}, []int{msgs[0].GroupIndex, msgs[1].GroupIndex, msgs[2].GroupIndex})
			require.Equal(t, []any{[]any{int64(2), int64(4)}}, msgs[2].Args, "the body gets the header's results in order")
			require.Contains(t, []string{msgs[0].ID, msgs[1].ID}, msgs[2].ParentID, "the body's parent is the member that completed the chord, as in Celery")
		})
	}
}
