package interop_test

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/beat"
	"github.com/taskgen/taskgen/runtime/driver"
)

// succeeded counts the tasks a worker finished, by name, with their results.
type succeeded struct {
	mu      sync.Mutex
	results map[string][]any
}

func (s *succeeded) TaskReceived(*driver.Message) {}
func (s *succeeded) TaskStarted(*driver.Message)  {}
func (s *succeeded) TaskSucceeded(m *driver.Message, result any, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results[m.Headers.Task] = append(s.results[m.Headers.Task], result)
}
func (s *succeeded) TaskFailed(*driver.Message, *driver.ExceptionInfo, string)  {}
func (s *succeeded) TaskRetried(*driver.Message, *driver.ExceptionInfo, string) {}
func (s *succeeded) TaskRejected(*driver.Message, string)                       {}
func (s *succeeded) TaskRevoked(*driver.Message, bool, bool)                    {}

func (s *succeeded) of(task string) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]any(nil), s.results[task]...)
}

// TestBeat_PythonBeatSchedulesGoTasks: Python's `celery beat` sends go.add
// every second (plain protocol-v2 messages); a Go worker runs them.
func TestBeat_PythonBeatSchedulesGoTasks(t *testing.T) {
	for _, c := range matrix(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			obs := &succeeded{results: map[string][]any{}}
			app, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Serializer: c.serializer,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, err)
			defer app.Close()
			w := app.NewWorker(runtime.WorkerOptions{Queues: []string{c.goQueue}, Concurrency: 2, Observer: obs, WithoutEvents: true})
			gotasks.RegisterTasks(w)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() { cancel(); require.NoError(t, <-done) }()

			dir := t.TempDir()
			cmd := exec.Command(testenv.Python(t), "-m", "celery", "-A", "beatapp", "beat", "-s", filepath.Join(dir, "schedule"),
				"--max-interval", "1", "-l", "info")
			cmd.Dir = pyDir(t)
			cmd.Env = append(pyEnv(c), "INTEROP_BEAT_QUEUE="+c.goQueue)
			var logs strings.Builder
			var logMu sync.Mutex
			cmd.Stderr = lockedWriter{&logMu, &logs}
			require.NoError(t, cmd.Start())
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

			deadline := time.Now().Add(60 * time.Second)
			for len(obs.of("go.add")) < 3 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			got := obs.of("go.add")
			logMu.Lock()
			defer logMu.Unlock()
			require.GreaterOrEqual(t, len(got), 3, "Go worker ran %d of Python beat's go.add; beat log:\n%s", len(got), logs.String())
			for _, r := range got {
				assert.EqualValues(t, 5, r)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestBeat_GoScheduleOfPythonTasks: a taskgen schedule holds the Python
// task py.resize_image through its Go stub; a Python worker runs each
// slot's message and Go reads the typed result by the slot's task id.
func TestBeat_GoScheduleOfPythonTasks(t *testing.T) {
	for _, c := range matrix(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			startPyWorker(t, c)
			app, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Serializer: c.serializer,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, err)
			defer app.Close()
			sent := make(chan string, 16)
			s := beat.New(app, beat.Every("resize", 500*time.Millisecond, gotasks.ResizeImage.Sig("https://img/x.png", 64, 0),
				beat.Options(runtime.Queue(c.pyQueue))))
			s.Key = "interop-" + driver.NewID()[:8]
			s.OnSend = func(entry string, slot, _ time.Time) { sent <- beat.SlotID(s.Key, entry, slot) }
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(runCtx) }()
			for range 3 {
				var id string
				select {
				case id = <-sent:
				case <-ctx.Done():
					t.Fatal("the schedule sent nothing")
				}
				info, err := runtime.NewAsyncResult[gotasks.ImageInfo](app, id).Get(ctx)
				require.NoError(t, err, "slot %s", id)
				assert.Equal(t, gotasks.ImageInfo{URL: "https://img/x.png", Width: 64, Height: 64, Format: "png"}, info)
			}
			stop()
			require.NoError(t, <-done)
		})
	}
}
