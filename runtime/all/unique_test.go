package all_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// uArgs is what taskgen generates for func f(ctx, x int) int.
type uArgs struct{ x int64 }

var uArgNames = codegen.ArgNames{{"x"}}

func (*uArgs) ArgNames() codegen.ArgNames             { return uArgNames }
func (a *uArgs) EncodeArgs(w codegen.ArgWriter) error { w.Int(a.x); return nil }
func (a *uArgs) DecodeArg(_ int, r codegen.ArgReader) (err error) {
	a.x, err = r.Int(64)
	return err
}

// uniqueDef is a task declared //task:unique ttl, run by run.
func uniqueDef(queue string, ttl time.Duration, run func(ctx context.Context, x int64) (any, error)) *codegen.TaskDef {
	if run == nil {
		run = func(_ context.Context, x int64) (any, error) { return x * 2, nil }
	}
	retry := codegen.DefaultRetryPolicy()
	retry.MaxRetries = 1
	return &codegen.TaskDef{Name: "tests.unique", Queue: queue, Unique: ttl, Retry: retry,
		NewArgs: func() codegen.Args { return new(uArgs) },
		Run:     func(ctx context.Context, a codegen.Args) (any, error) { return run(ctx, a.(*uArgs).x) }}
}

func uniqueApp(t *testing.T, brokerURL, backendURL string) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: brokerURL, Backend: backendURL, Serializer: "json", Logger: testLogger})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

func startUniqueWorker(t *testing.T, app *runtime.App, def *codegen.TaskDef) {
	t.Helper()
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{def.Queue}, Concurrency: 2, ShutdownTimeout: 2 * time.Second})
	w.Register(def)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func duplicateOf(t *testing.T, err error) string {
	t.Helper()
	require.ErrorIs(t, err, runtime.ErrDuplicate)
	var dup *runtime.DuplicateError
	require.ErrorAs(t, err, &dup)
	return dup.ID
}

// TestUnique_Child is the body of the processes TestUnique_Processes
// starts (the test binary run again); without its environment it does
// nothing.
func TestUnique_Child(t *testing.T) {
	if os.Getenv("TASKGEN_UNIQUE_CHILD") != "1" {
		return
	}
	app, err := runtime.New(runtime.Config{Broker: os.Getenv("TASKGEN_UNIQUE_BROKER"), Backend: os.Getenv("TASKGEN_UNIQUE_BACKEND"),
		Serializer: "json", Logger: testLogger})
	require.NoError(t, err)
	defer app.Close()
	fmt.Println("READY")
	// Every child sends at the same moment: when the parent writes a line.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	def := uniqueDef(os.Getenv("TASKGEN_UNIQUE_QUEUE"), 10*time.Minute, nil)
	res, err := runtime.NewStub[int64](def).With(runtime.WithApp(app)).Send(context.Background(), &uArgs{7})
	var dup *runtime.DuplicateError
	switch {
	case err == nil:
		fmt.Println("RESULT OK " + res.ID())
	case errors.As(err, &dup) && errors.Is(err, runtime.ErrDuplicate):
		fmt.Println("RESULT DUP " + dup.ID)
	default:
		fmt.Println("RESULT ERR " + err.Error())
	}
}

// TestUnique_Processes: six processes send the same unique call at once
// against one Redis: exactly one is enqueued, the others get ErrDuplicate
// with its id; once the task ran, a new call is accepted.
func TestUnique_Processes(t *testing.T) {
	redisURL := testenv.RedisURL(t) + "?global_keyprefix=u" + randHex(4) + ":"
	queue := "unique-" + randHex(4)
	const n = 6
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	children := make([]child, n)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnique_Child$", "-test.count=1")
		cmd.Env = append(os.Environ(), "TASKGEN_UNIQUE_CHILD=1", "TASKGEN_UNIQUE_BROKER="+redisURL,
			"TASKGEN_UNIQUE_BACKEND="+redisURL, "TASKGEN_UNIQUE_QUEUE="+queue)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		children[i] = child{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	}
	for _, c := range children {
		for c.out.Scan() && c.out.Text() != "READY" {
		}
	}
	for _, c := range children {
		_, _ = io.WriteString(c.stdin, "go\n")
	}
	var ok, dups []string
	for _, c := range children {
		line := ""
		for c.out.Scan() {
			if strings.HasPrefix(c.out.Text(), "RESULT ") {
				line = strings.TrimPrefix(c.out.Text(), "RESULT ")
				break
			}
		}
		switch kind, id, _ := strings.Cut(line, " "); kind {
		case "OK":
			ok = append(ok, id)
		case "DUP":
			dups = append(dups, id)
		default:
			t.Fatalf("child: %q", line)
		}
	}
	require.Len(t, ok, 1, "exactly one process enqueued")
	require.Len(t, dups, n-1)
	for _, id := range dups {
		require.Equal(t, ok[0], id, "each duplicate names the enqueued task")
	}

	app := uniqueApp(t, redisURL, redisURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	length, err := app.Broker().(driver.QueueInspector).QueueLength(ctx, queue)
	require.NoError(t, err)
	require.Equal(t, int64(1), length)

	def := uniqueDef(queue, 10*time.Minute, nil)
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
	_, err = stub.Send(ctx, &uArgs{7})
	require.Equal(t, ok[0], duplicateOf(t, err))
	// Other arguments: another lock.
	_, err = stub.Send(ctx, &uArgs{8})
	require.NoError(t, err)

	startUniqueWorker(t, app, def)
	v, err := runtime.NewAsyncResult[int64](app, ok[0]).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(14), v)
	res, err := stub.Send(ctx, &uArgs{7})
	require.NoError(t, err, "the lock is released when the task ended")
	require.NotEqual(t, ok[0], res.ID())
}

// TestUnique_TTL: a lock taken with runtime.Unique expires after its ttl
// even if the task never runs.
func TestUnique_TTL(t *testing.T) {
	prefix := "u" + randHex(4) + ":"
	redisURL := testenv.RedisURL(t) + "?global_keyprefix=" + prefix
	app := uniqueApp(t, redisURL, redisURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := "report-" + randHex(4)
	stub := runtime.NewStub[int64](uniqueDef("unique-"+randHex(4), 0, nil)).With(runtime.WithApp(app), runtime.Unique(key, 300*time.Millisecond))
	first, err := stub.Send(ctx, &uArgs{1})
	require.NoError(t, err)
	// The key is the option's, whatever the arguments.
	_, err = stub.Send(ctx, &uArgs{2})
	require.Equal(t, first.ID(), duplicateOf(t, err))

	rc := app.Backend().(*redis.Backend).Client()
	lockKey := prefix + driver.UniqueKeyPrefix + key
	holder, err := rc.Get(ctx, lockKey).Result()
	require.NoError(t, err)
	require.Equal(t, first.ID(), holder)
	pttl, err := rc.PTTL(ctx, lockKey).Result()
	require.NoError(t, err)
	require.Greater(t, pttl, time.Duration(0))
	require.LessOrEqual(t, pttl, 300*time.Millisecond)
	for {
		n, err := rc.Exists(ctx, lockKey).Result()
		require.NoError(t, err)
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the lock did not expire")
		case <-time.After(20 * time.Millisecond):
		}
	}
	_, err = stub.Send(ctx, &uArgs{2})
	require.NoError(t, err)
}

// TestUnique_AMQPWithRedisBackend: on RabbitMQ the lock lives in the Redis
// result backend.
func TestUnique_AMQPWithRedisBackend(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	redisURL := testenv.RedisURL(t) + "?global_keyprefix=u" + randHex(4) + ":"
	app := uniqueApp(t, amqpURL, redisURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := make(chan struct{})
	def := uniqueDef("unique-"+randHex(4), time.Minute, func(ctx context.Context, x int64) (any, error) {
		<-release
		return x, nil
	})
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))
	first, err := stub.Send(ctx, &uArgs{3})
	require.NoError(t, err)
	startUniqueWorker(t, app, def)
	_, err = stub.Send(ctx, &uArgs{3})
	require.Equal(t, first.ID(), duplicateOf(t, err))
	close(release)
	_, err = first.Get(ctx)
	require.NoError(t, err)
	_, err = stub.Send(ctx, &uArgs{3})
	require.NoError(t, err)
}

// TestUnique_Memory: held while pending, running and between retries;
// released on success, on failure after the last retry and on revoke.
func TestUnique_Memory(t *testing.T) {
	url := "memory://unique-" + randHex(4)
	app := uniqueApp(t, url, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var attempts atomic.Int32
	second := make(chan struct{})
	release := make(chan struct{})
	def := uniqueDef("unique-"+randHex(4), time.Minute, func(ctx context.Context, x int64) (any, error) {
		switch x {
		case 1: // retried once, then blocks until released
			switch attempts.Add(1) {
			case 1:
				return nil, runtime.Retry(errors.New("again"), runtime.RetryCountdown(time.Millisecond))
			case 2:
				close(second)
				<-release
			}
		case 2:
			return nil, errors.New("boom") // fails for good after its retry
		}
		return x, nil
	})
	stub := runtime.NewStub[int64](def).With(runtime.WithApp(app))

	first, err := stub.Send(ctx, &uArgs{1})
	require.NoError(t, err)
	_, err = stub.Send(ctx, &uArgs{1})
	require.Equal(t, first.ID(), duplicateOf(t, err), "pending")
	startUniqueWorker(t, app, def)
	<-second
	_, err = stub.Send(ctx, &uArgs{1})
	require.Equal(t, first.ID(), duplicateOf(t, err), "still held after a retry")
	close(release)
	_, err = first.Get(ctx)
	require.NoError(t, err)
	_, err = stub.Send(ctx, &uArgs{1})
	require.NoError(t, err, "released on success")

	failing, err := stub.Send(ctx, &uArgs{2})
	require.NoError(t, err)
	_, err = failing.Get(ctx)
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	_, err = stub.Send(ctx, &uArgs{2})
	require.NoError(t, err, "released on failure")

	expired, err := stub.With(runtime.Expires(time.Now().Add(-time.Second))).Send(ctx, &uArgs{5})
	require.NoError(t, err)
	_, err = expired.Get(ctx)
	require.ErrorAs(t, err, &te)
	require.Equal(t, runtime.StateRevoked, te.State)
	_, err = stub.Send(ctx, &uArgs{5})
	require.NoError(t, err, "released on revoke")
}

// TestUnique_Errors: a unique call needs a backend that locks, and
// runtime.Unique a key and a positive ttl.
func TestUnique_Errors(t *testing.T) {
	url := "memory://unique-" + randHex(4)
	app, err := runtime.New(runtime.Config{Broker: url, Logger: testLogger})
	require.NoError(t, err)
	defer app.Close()
	ctx := context.Background()
	def := uniqueDef("q", time.Minute, nil)
	_, err = runtime.NewStub[int64](def).With(runtime.WithApp(app)).Send(ctx, &uArgs{1})
	require.ErrorIs(t, err, runtime.ErrNoLocker)
	require.ErrorContains(t, err, "set Config.Backend")

	withBackend := uniqueApp(t, url, url)
	_, err = runtime.NewStub[int64](uniqueDef("q", 0, nil)).With(runtime.WithApp(withBackend), runtime.Unique("", time.Minute)).Send(ctx, &uArgs{1})
	require.ErrorContains(t, err, "want a non-empty key and a positive ttl")
}
