// Package interop_test proves taskgen's wire compatibility with real Python
// Celery (Debian's python3-celery 5.2.6) on one broker: Python producers
// calling Go tasks, Go producers calling Python tasks, retries and result
// states read across languages, for {redis, amqp} × {json, msgpack}.
package interop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/amqp"
	"github.com/taskgen/taskgen/runtime/driver"
	_ "github.com/taskgen/taskgen/runtime/redis"
)

// cell is one point of the matrix.
type cell struct {
	name       string
	broker     string // both languages use it
	backend    string // Redis result backend shared by both
	serializer string
	goQueue    string // consumed by the Go worker
	pyQueue    string // consumed by the Python worker
}

func matrix(t *testing.T) []cell {
	redisURL := testenv.RedisURL(t)
	amqpURL := testenv.AMQPURL(t)
	testenv.Python(t)
	var cells []cell
	db := 8
	for _, b := range []struct{ name, url string }{{"redis", testenv.RedisDB(redisURL, 7)}, {"amqp", amqpURL}} {
		for _, ser := range []string{"json", "msgpack"} {
			id := driver.NewID()[:8]
			cells = append(cells, cell{
				name: b.name + "/" + ser, broker: b.url, backend: testenv.RedisDB(redisURL, db), serializer: ser,
				goQueue: "go-" + id, pyQueue: "py-" + id,
			})
			db++
		}
	}
	return cells
}

func pyEnv(c cell) []string {
	return append(os.Environ(),
		"INTEROP_BROKER="+c.broker, "INTEROP_BACKEND="+c.backend, "INTEROP_SERIALIZER="+c.serializer,
		"PYTHONDONTWRITEBYTECODE=1")
}

func pyDir(t *testing.T) string {
	dir, err := filepath.Abs("py")
	require.NoError(t, err)
	return dir
}

// pyClient runs client.py and decodes its JSON line.
func pyClient(t *testing.T, c cell, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Python(t), append([]string{"client.py"}, args...)...)
	cmd.Dir = pyDir(t)
	cmd.Env = pyEnv(c)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "client.py %v: %s", args, stderr.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m), "client.py output %q", out)
	return m
}

// startPyWorker runs a Celery worker consuming c.pyQueue until the test ends.
func startPyWorker(t *testing.T, c cell) { startPyWorkerCmd(t, c) }

// startPyWorkerCmd is startPyWorker returning the process.
func startPyWorkerCmd(t *testing.T, c cell) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testenv.Python(t), "-m", "celery", "-A", "pytasks", "worker", "-P", "solo",
		"-Q", c.pyQueue, "-n", "py-"+c.pyQueue+"@localhost", "--without-mingle", "--without-gossip", "-l", "info")
	cmd.Dir = pyDir(t)
	cmd.Env = append(pyEnv(c), "INTEROP_VISIBILITY="+os.Getenv("INTEROP_VISIBILITY"))
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	ready := make(chan struct{})
	var logMu sync.Mutex
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if strings.Contains(sc.Text(), "ready.") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("python worker log:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("python worker not ready after 60s:\n%s", logs.String())
	}
	return cmd
}

func startGoWorker(t *testing.T, c cell) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Serializer: c.serializer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{c.goQueue}, Concurrency: 4, Hostname: "go-" + c.goQueue + "@localhost"})
	gotasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		app.Close()
	})
	return app
}

func TestInterop(t *testing.T) {
	for _, c := range matrix(t) {
		t.Run(c.name, func(t *testing.T) {
			app := startGoWorker(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			t.Run("python calls go positionally", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.add", "[2, 3]", "{}", c.goQueue)
				require.Equal(t, "SUCCESS", out["state"], out)
				require.EqualValues(t, 5, out["result"])
			})
			t.Run("python calls go with kwargs", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.greet", `["ann"]`, `{"punctuation": "!", "times": 2}`, c.goQueue)
				require.Equal(t, "hello ann!hello ann!", out["result"], out)
			})
			t.Run("go error reaches python as its exception", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.fail", `["no such user"]`, "{}", c.goQueue)
				require.Equal(t, "FAILURE", out["state"], out)
				e := out["error"].(map[string]any)
				require.Equal(t, "ValueError", e["class"])
				require.Equal(t, []any{"no such user"}, e["args"])
			})
			t.Run("go retries a python-sent task with backoff", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.flaky", "[2]", "{}", c.goQueue)
				require.Equal(t, "SUCCESS", out["state"], out)
				require.EqualValues(t, 2, out["result"], "succeeded on its second retry")
			})
			t.Run("python reads RETRY and FAILURE written by go", func(t *testing.T) {
				res, err := gotasks.Later.With(runtime.WithApp(app), runtime.Queue(c.goQueue)).Delay(ctx, "k1")
				require.NoError(t, err)
				require.Eventually(t, func() bool { s, _ := res.State(ctx); return s == runtime.StateRetry }, 30*time.Second, 50*time.Millisecond)
				out := pyClient(t, c, "state", res.ID())
				require.Equal(t, "RETRY", out["state"], out)
				require.Contains(t, out["error"].(map[string]any)["args"], "not yet: k1")

				fres, err := gotasks.FailWith.With(runtime.WithApp(app), runtime.Queue(c.goQueue)).Delay(ctx, "broken")
				require.NoError(t, err)
				_, err = fres.Get(ctx)
				require.Error(t, err)
				out = pyClient(t, c, "state", fres.ID())
				require.Equal(t, "FAILURE", out["state"], out)
				require.Equal(t, "ValueError", out["error"].(map[string]any)["class"])
			})
			t.Run("go calls python", func(t *testing.T) {
				startPyWorker(t, c)
				res, err := gotasks.ResizeImage.With(runtime.WithApp(app), runtime.Queue(c.pyQueue)).Delay(ctx, "https://img.example/cat.png", 320, 0)
				require.NoError(t, err)
				info, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, gotasks.ImageInfo{URL: "https://img.example/cat.png", Width: 320, Height: 320, Format: "png"}, info)

				fres, err := gotasks.PyFail.With(runtime.WithApp(app), runtime.Queue(c.pyQueue)).Delay(ctx, "bad input")
				require.NoError(t, err)
				_, err = fres.Get(ctx)
				var te *runtime.TaskError
				require.True(t, errors.As(err, &te), "%v", err)
				require.Equal(t, "ValueError", te.Exception.Type)
				require.Equal(t, "builtins", te.Exception.Module)
				require.Equal(t, []any{"bad input"}, te.Exception.Message)

				// A Go app whose result serializer is not the Python
				// worker's still reads its results (Celery would not: it
				// decodes with its own serializer).
				other := map[string]string{"json": "msgpack", "msgpack": "json"}[c.serializer]
				oapp, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Serializer: c.serializer, ResultSerializer: other,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(t, err)
				defer oapp.Close()
				ores, err := gotasks.ResizeImage.With(runtime.WithApp(oapp), runtime.Queue(c.pyQueue)).Delay(ctx, "https://img.example/dog.png", 64, 0)
				require.NoError(t, err)
				oinfo, err := ores.Get(ctx)
				require.NoError(t, err, "result serializer %s reading python's %s", other, c.serializer)
				require.Equal(t, gotasks.ImageInfo{URL: "https://img.example/dog.png", Width: 64, Height: 64, Format: "png"}, oinfo)
			})
		})
	}
}
