package interop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
)

// TestInterop_Canvas runs workflows across languages on every broker and
// serializer: built in Python and run by Go workers, built in Go and run by
// Python workers, and mixed (steps alternating between them).
func TestInterop_Canvas(t *testing.T) {
	for _, c := range matrix(t) {
		t.Run(c.name, func(t *testing.T) {
			app := startGoWorker(t, c)
			startPyWorker(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			goq, pyq := runtime.Queue(c.goQueue), runtime.Queue(c.pyQueue)
			on := runtime.WithApp(app)

			t.Run("python chain of go tasks", func(t *testing.T) {
				out := pyClient(t, c, "workflow", "chain", c.goQueue, c.pyQueue)
				require.EqualValues(t, 26, out["result"], out)
			})
			t.Run("python group of go tasks, restored in go", func(t *testing.T) {
				out := pyClient(t, c, "workflow", "group", c.goQueue, c.pyQueue)
				require.Equal(t, []any{0.0, 1.0, 4.0, 9.0, 16.0}, out["result"], out)
				g, err := runtime.RestoreGroup[int64](ctx, app, out["id"].(string))
				require.NoError(t, err)
				got, err := g.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, []int64{0, 1, 4, 9, 16}, got)
			})
			t.Run("python chord of go tasks, go body", func(t *testing.T) {
				out := pyClient(t, c, "workflow", "chord", c.goQueue, c.pyQueue, "go.tsum")
				require.EqualValues(t, 55, out["result"], out)
			})
			t.Run("python chord, go header, python body", func(t *testing.T) {
				out := pyClient(t, c, "workflow", "chord", c.goQueue, c.pyQueue, "py.tsum")
				require.EqualValues(t, 55, out["result"], out)
			})
			t.Run("python chord whose go member fails", func(t *testing.T) {
				out := pyClient(t, c, "workflow", "chord_fail", c.goQueue, c.pyQueue)
				require.NotNil(t, out["error"], out)
				e := out["error"].(map[string]any)
				require.Equal(t, "FAILURE", out["state"], out)
				require.Equal(t, "ChordError", e["class"], out)
				require.Contains(t, e["args"].([]any)[0], "ValueError('member down')")
			})
			t.Run("python chain alternating go and python", func(t *testing.T) {
				out := pyClient(t, c, "workflow", "mixed_chain", c.goQueue, c.pyQueue)
				require.EqualValues(t, 10, out["result"], out)
			})

			t.Run("go chain of python tasks", func(t *testing.T) {
				res, err := runtime.Chain(gotasks.PyAdd.Sig(2, 2).With(pyq), gotasks.PyMul.Partial(4).With(pyq)).With(on).Delay(ctx)
				require.NoError(t, err)
				got, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(16), got)
			})
			t.Run("go group of python tasks, restored in python", func(t *testing.T) {
				sigs := make([]runtime.Signature[int64], 5)
				for i := range sigs {
					sigs[i] = gotasks.PyMul.Sig(int64(i), int64(i)).With(pyq)
				}
				g, err := runtime.Group(sigs...).With(on).Delay(ctx)
				require.NoError(t, err)
				got, err := g.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, []int64{0, 1, 4, 9, 16}, got)
				out := pyClient(t, c, "restore", g.ID())
				require.Equal(t, []any{0.0, 1.0, 4.0, 9.0, 16.0}, out["result"], out)
			})
			t.Run("go chord of python tasks", func(t *testing.T) {
				res, err := runtime.Chord(addOnes(10, func(i int64) runtime.Signature[int64] { return gotasks.PyAdd.Sig(i, 1).With(pyq) }),
					gotasks.PyTsum.Partial().With(pyq)).With(on).Delay(ctx)
				require.NoError(t, err)
				got, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(55), got)
			})
			t.Run("go chord, go header, python body", func(t *testing.T) {
				res, err := runtime.Chord(addOnes(10, func(i int64) runtime.Signature[int64] { return gotasks.AddNumbers.Sig(i, 1).With(goq) }),
					gotasks.PyTsum.Partial().With(pyq)).With(on).Delay(ctx)
				require.NoError(t, err)
				got, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(55), got)
			})
			t.Run("go chord, python header, go body", func(t *testing.T) {
				res, err := runtime.Chord(addOnes(10, func(i int64) runtime.Signature[int64] { return gotasks.PyAdd.Sig(i, 1).With(pyq) }),
					gotasks.Total.Partial().With(goq)).With(on).Delay(ctx)
				require.NoError(t, err)
				got, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(55), got)
			})
			t.Run("go chain alternating go and python", func(t *testing.T) {
				c1 := runtime.Chain(gotasks.AddNumbers.Sig(1, 1).With(goq), gotasks.PyMul.Partial(3).With(pyq))
				res, err := runtime.Chain(c1, gotasks.AddNumbers.Partial(4).With(goq)).With(on).Delay(ctx)
				require.NoError(t, err)
				got, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(10), got)
			})
			t.Run("go chord whose python member fails", func(t *testing.T) {
				header := runtime.Group(gotasks.PyAdd.Sig(1, 1).With(pyq), runtime.Named[int64]("py.fail", "member down").With(pyq))
				res, err := runtime.Chord(header, gotasks.Total.Partial().With(goq)).With(on).Delay(ctx)
				require.NoError(t, err)
				_, err = res.Get(ctx)
				var te *runtime.TaskError
				require.True(t, errors.As(err, &te), "%v", err)
				require.Equal(t, "ChordError", te.Exception.Type)
				require.Contains(t, te.Error(), "ValueError('member down')")
			})
		})
	}
}

// addOnes returns the group of n calls sig(i) for i < n.
func addOnes(n int64, sig func(i int64) runtime.Signature[int64]) runtime.GroupSignature[int64] {
	sigs := make([]runtime.Signature[int64], n)
	for i := range n {
		sigs[i] = sig(i)
	}
	return runtime.Group(sigs...)
}
