package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

func TestControl_InspectAndRevoke(t *testing.T) {
	t.Parallel()
	app := newApp(t, "json")
	started := make(chan string, 4)
	slow := &codegen.TaskDef{Name: "test.slow", Retry: codegen.DefaultRetryPolicy(), NewArgs: func() wire.Args { return new(greetArgs) },
		Run: func(ctx context.Context, a wire.Args) (any, error) {
			info, _ := runtime.TaskFromContext(ctx)
			started <- info.ID
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}}
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 1, Hostname: "w1@test", ShutdownTimeout: 2 * time.Second})
	w.Register(slow)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); require.NoError(t, <-done) }()

	// ping until the worker's control consumer is up.
	var replies map[string]any
	require.Eventually(t, func() bool {
		var err error
		replies, err = app.Inspect(ctx, "ping", nil, 200*time.Millisecond)
		return err == nil && len(replies) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, map[string]any{"ok": "pong"}, replies["w1@test"])

	replies, err := app.Inspect(ctx, "registered", nil, 300*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, []any{"test.slow"}, replies["w1@test"])

	stub := runtime.NewStub[string](slow).With(runtime.WithApp(app))
	running, err := stub.Send(ctx, &greetArgs{name: "a"})
	require.NoError(t, err)
	require.Equal(t, running.ID(), <-started)
	queued, err := stub.Send(ctx, &greetArgs{name: "b"}) // waits: concurrency 1

	require.NoError(t, err)
	replies, err = app.Inspect(ctx, "active", nil, 300*time.Millisecond)
	require.NoError(t, err)
	active := replies["w1@test"].([]any)
	require.Len(t, active, 1)
	require.Equal(t, running.ID(), active[0].(map[string]any)["id"])

	require.NoError(t, queued.Revoke(ctx))
	require.NoError(t, running.Revoke(ctx, runtime.Terminate()))

	_, err = running.Get(ctx)
	var te *runtime.TaskError
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, runtime.StateRevoked, te.State)
	_, err = queued.Get(ctx)
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, runtime.StateRevoked, te.State)
	select {
	case id := <-started:
		t.Fatalf("revoked task %s ran", id)
	default:
	}

	replies, err = app.Inspect(ctx, "stats", nil, 300*time.Millisecond)
	require.NoError(t, err)
	stats := replies["w1@test"].(map[string]any)
	require.Contains(t, stats, "broker")
	require.EqualValues(t, 1, stats["total"].(map[string]any)["test.slow"])
}
