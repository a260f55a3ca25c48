package runtime_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/internal/canvastasks"
)

// canvasApp returns a memory app whose worker runs the canvas tasks.
func canvasApp(t *testing.T, ser string) (*runtime.App, context.Context) {
	t.Helper()
	app := newApp(t, ser)
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 4, ShutdownTimeout: 2 * time.Second})
	canvastasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(tcancel)
	return app, tctx
}

func forEachSerializer(t *testing.T, f func(t *testing.T, app *runtime.App, ctx context.Context)) {
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			app, ctx := canvasApp(t, ser)
			f(t, app, ctx)
		})
	}
}

func TestCanvas_Chain(t *testing.T) {
	t.Parallel()
	forEachSerializer(t, func(t *testing.T, app *runtime.App, ctx context.Context) {
		// (2 + 2) * 4 + 10 = 26
		c := runtime.Chain(runtime.Chain(canvastasks.Add.Sig(2, 2), canvastasks.Mul.Partial(4)), canvastasks.Add.Partial(10))
		res, err := c.With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		got, err := res.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(26), got)
		// The same signature sent again is a new workflow.
		res2, err := c.With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		require.NotEqual(t, res.ID(), res2.ID())
		got, err = res2.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(26), got)
	})
}

func TestCanvas_Group(t *testing.T) {
	t.Parallel()
	forEachSerializer(t, func(t *testing.T, app *runtime.App, ctx context.Context) {
		sigs := make([]runtime.Signature[int64], 5)
		for i := range sigs {
			sigs[i] = canvastasks.Mul.Sig(int64(i), int64(i))
		}
		g, err := runtime.Group(sigs...).With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		got, err := g.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, []int64{0, 1, 4, 9, 16}, got)
		n, err := g.Completed(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		ready, err := g.Ready(ctx)
		require.NoError(t, err)
		require.True(t, ready)
		require.Len(t, g.Results(), 5)
		// The group was saved: it can be restored by id, as Python's
		// GroupResult.restore does.
		r, err := runtime.RestoreGroup[int64](ctx, app, g.ID())
		require.NoError(t, err)
		got, err = r.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, []int64{0, 1, 4, 9, 16}, got)
	})
}

func TestCanvas_Chord(t *testing.T) {
	t.Parallel()
	forEachSerializer(t, func(t *testing.T, app *runtime.App, ctx context.Context) {
		sigs := make([]runtime.Signature[int64], 20)
		var want int64
		for i := range sigs {
			sigs[i] = canvastasks.Add.Sig(int64(i), 1)
			want += int64(i) + 1
		}
		res, err := runtime.Chord(runtime.Group(sigs...), canvastasks.Tsum.Partial()).With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		got, err := res.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, want, got)

		// A chord first in a chain: the chain continues after the body.
		c := runtime.Chain(runtime.Chord(runtime.Group(sigs[:3]...), canvastasks.Tsum.Partial()), canvastasks.Mul.Partial(10))
		res, err = c.With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		got, err = res.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64((1+2+3)*10), got)

		// An empty header runs the body with no results.
		res, err = runtime.Chord(runtime.Group[int64](), canvastasks.Tsum.Partial()).With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		got, err = res.Get(ctx)
		require.NoError(t, err)
		require.Zero(t, got)
	})
}

func TestCanvas_ChordMemberFails(t *testing.T) {
	t.Parallel()
	forEachSerializer(t, func(t *testing.T, app *runtime.App, ctx context.Context) {
		header := runtime.Group(canvastasks.Add.Sig(1, 1), canvastasks.Boom.Sig(2), canvastasks.Add.Sig(3, 3))
		body := canvastasks.Tsum.Partial()
		res, err := runtime.Chord(header, body).OnError(canvastasks.OnError.Partial()).With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		_, err = res.Get(ctx)
		var te *runtime.TaskError
		require.True(t, errors.As(err, &te), "%v", err)
		require.Equal(t, runtime.StateFailure, te.State)
		require.Equal(t, "ChordError", te.Exception.Type)
		require.Contains(t, te.Error(), "raised Exception('boom')")
		require.Eventually(t, func() bool { return slices.Contains(canvastasks.HandledIDs(), res.ID()) }, 10*time.Second, 10*time.Millisecond,
			"the body's errback is called with the body's id")
	})
}

func TestCanvas_LinkAndLinkError(t *testing.T) {
	t.Parallel()
	forEachSerializer(t, func(t *testing.T, app *runtime.App, ctx context.Context) {
		// link: the callback gets the result as its first argument.
		cb := canvastasks.Mul.Partial(3).With(runtime.TaskID("cb-" + app.Config().Serializer + "-" + t.Name()))
		res, err := canvastasks.Add.Sig(2, 3).OnSuccess(cb).With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		got, err := res.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(5), got)
		cbRes := runtime.NewAsyncResult[int64](app, "cb-"+app.Config().Serializer+"-"+t.Name())
		got, err = cbRes.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(15), got)

		// link_error: a Partial gets the failed task's id, a Sig runs as is.
		note := "n-" + app.Config().Serializer
		res, err = canvastasks.Boom.Sig(1).OnError(canvastasks.OnError.Partial()).OnError(canvastasks.Noted.Sig(note)).With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		_, err = res.Get(ctx)
		require.Error(t, err)
		require.Eventually(t, func() bool {
			h := canvastasks.HandledIDs()
			return slices.Contains(h, res.ID()) && slices.Contains(h, "note:"+note)
		}, 10*time.Second, 10*time.Millisecond)

		// A failing step stops the chain: the next step never runs, and the
		// chain's errback is called with the failed step's id.
		c := runtime.Chain(canvastasks.Boom.Sig(7), canvastasks.Add.Partial(1)).OnError(canvastasks.OnError.Partial())
		res, err = c.With(runtime.WithApp(app)).Delay(ctx)
		require.NoError(t, err)
		st, err := res.State(ctx)
		require.NoError(t, err)
		require.Equal(t, runtime.StatePending, st)
	})
}

func TestCanvas_OnErrorNeedsStringParameter(t *testing.T) {
	app, ctx := canvasApp(t, "json")
	_, err := canvastasks.Add.Sig(1, 2).OnError(canvastasks.Mul.Partial(2)).With(runtime.WithApp(app)).Delay(ctx)
	require.ErrorContains(t, err, "must be a string")
}

// TestCanvas_TaskIDOption: TaskID names a workflow's result, as in Celery:
// a chain's last step, a chord's body, a group's id (its members keep ids
// of their own).
func TestCanvas_TaskIDOption(t *testing.T) {
	app, ctx := canvasApp(t, "json")
	on := runtime.WithApp(app)
	id := func(s string) string { return s + "-" + t.Name() }

	res, err := runtime.Chain(canvastasks.Add.Sig(1, 2), canvastasks.Mul.Partial(3)).With(on, runtime.TaskID(id("chain"))).Delay(ctx)
	require.NoError(t, err)
	require.Equal(t, id("chain"), res.ID())
	got, err := runtime.NewAsyncResult[int64](app, id("chain")).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(9), got)

	res, err = runtime.Chord(runtime.Group(canvastasks.Add.Sig(1, 1), canvastasks.Add.Sig(2, 2)), canvastasks.Tsum.Partial()).With(on, runtime.TaskID(id("chord"))).Delay(ctx)
	require.NoError(t, err)
	require.Equal(t, id("chord"), res.ID())
	got, err = res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(6), got)

	g, err := runtime.Group(canvastasks.Add.Sig(1, 1), canvastasks.Add.Sig(2, 2)).With(on, runtime.TaskID(id("group"))).Delay(ctx)
	require.NoError(t, err)
	require.Equal(t, id("group"), g.ID())
	require.NotEqual(t, g.Results()[0].ID(), g.Results()[1].ID())
	vals, err := g.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{2, 4}, vals)
}
