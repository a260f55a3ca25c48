package redis_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/redis"
)

const helperEnv = "TASKGEN_REDIS_HELPER_WORKER"

func TestMain(m *testing.M) {
	if u := os.Getenv(helperEnv); u != "" {
		helperWorker(u)
		return
	}
	os.Exit(m.Run())
}

// helperWorker is the worker process that TestSIGKILLedWorker kills: it runs
// tasks.hang with acks_late, records that it started, and never finishes.
func helperWorker(raw string) {
	app, err := runtime.New(runtime.Config{Broker: raw, Backend: raw})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	b := app.Broker().(*redis.Broker)
	def := addDef("tasks.hang", func(ctx context.Context, a *addArgs) (any, error) {
		b.Client().Set(ctx, b.Options().GlobalKeyPrefix+"helper.started", os.Getpid(), 0)
		select {}
	})
	def.AcksLate = true
	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 1})
	w.Register(def)
	_ = w.Run(context.Background())
	os.Exit(1)
}

// TestSIGKILLedWorkerTaskRunsAgain: a worker process SIGKILLed while running
// an acks_late task; after the (short) visibility timeout the task runs on
// another worker.
func TestSIGKILLedWorkerTaskRunsAgain(t *testing.T) {
	t.Parallel()
	raw := testURL(t, "", "visibility_timeout=1&restore_interval=200ms")
	app := newApp(t, raw, "msgpack")
	b := app.Broker().(*redis.Broker)
	p := b.Options().GlobalKeyPrefix
	ctx := ctxT(t, 60*time.Second)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+raw)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	def := addDef("tasks.hang", func(ctx context.Context, a *addArgs) (any, error) {
		info, _ := runtime.TaskFromContext(ctx)
		if !info.Redelivered {
			return nil, fmt.Errorf("expected a redelivered message")
		}
		return a.x * a.y, nil
	})
	def.AcksLate = true
	res, err := runtime.NewStub[int64](def).With(runtime.WithApp(app)).Send(ctx, &addArgs{x: 6, y: 7})
	require.NoError(t, err)
	var pid string
	require.Eventually(t, func() bool {
		pid, _ = b.Client().Get(ctx, p+"helper.started").Result()
		return pid != ""
	}, 30*time.Second, 20*time.Millisecond, "the helper worker never started the task")
	require.Equal(t, strconv.Itoa(cmd.Process.Pid), pid)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed := time.Now()
	require.EqualValues(t, 1, b.Client().HLen(ctx, p+"unacked").Val())

	runWorker(t, app, runtime.WorkerOptions{}, def)
	got, err := res.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(42), got)
	require.GreaterOrEqual(t, time.Since(killed), 500*time.Millisecond)
}
