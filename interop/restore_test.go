package interop_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// buildGoWorker compiles interop/internal/goworker into the test's temp dir.
func buildGoWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "goworker")
	out, err := exec.Command("go", "build", "-o", bin, "./internal/goworker").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

func startGoWorkerProcess(t *testing.T, bin string, c cell, queue string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(pyEnv(c), "INTEROP_QUEUES="+queue, "INTEROP_HOSTNAME=goproc-"+driver.NewID()[:6]+"@localhost")
	var logs strings.Builder
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("go worker log:\n%s", logs.String())
		}
	})
	return cmd
}

func waitForLine(t *testing.T, path, line string, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), line+"\n")
	}, timeout, 50*time.Millisecond, "marker %s never got %q", path, line)
}

// TestInterop_RedisRestoreAcrossLanguages kills a worker of one language in
// the middle of an acks_late task and checks that a worker of the other
// language restores the unacknowledged message from kombu's unacked hash
// after the visibility timeout, and runs it.
func TestInterop_RedisRestoreAcrossLanguages(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	testenv.Python(t)
	bin := buildGoWorker(t)
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			id := driver.NewID()[:8]
			queue := "shared-" + id
			db := map[string]int{"json": 12, "msgpack": 13}[ser]
			c := cell{name: "redis/" + ser, serializer: ser,
				broker:  testenv.RedisDB(redisURL, db) + "?visibility_timeout=3s&restore_interval=500ms",
				backend: testenv.RedisDB(redisURL, db+2)}
			pyCell := c
			pyCell.broker = testenv.RedisDB(redisURL, db)
			app, err := runtime.New(runtime.Config{Broker: c.broker, Backend: c.backend, Serializer: ser})
			require.NoError(t, err)
			defer app.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			t.Run("python restores a killed go worker's task", func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "marker")
				goproc := startGoWorkerProcess(t, bin, c, queue)
				res, err := gotasks.SharedSlow.With(runtime.WithApp(app), runtime.Queue(queue)).Delay(ctx, 8, marker)
				require.NoError(t, err)
				waitForLine(t, marker, "go-start", 30*time.Second)
				require.NoError(t, goproc.Process.Signal(syscall.SIGKILL))
				goproc.Wait()

				// kombu 5.2 restores at worker start-up, then only every 10th
				// call of a 10 s timer (~100 s): start the Python worker once
				// the entry is older than its 3 s visibility timeout.
				time.Sleep(4 * time.Second)
				py := pyCell
				py.pyQueue = queue
				t.Setenv("INTEROP_VISIBILITY", "3")
				startPyWorker(t, py)
				waitForLine(t, marker, "py-done", 90*time.Second)
				v, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, "py", v)
			})

			t.Run("go restores a killed python worker's task", func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "marker")
				py := pyCell
				py.pyQueue = queue
				cmd := startPyWorkerCmd(t, py)
				res, err := gotasks.SharedSlow.With(runtime.WithApp(app), runtime.Queue(queue)).Delay(ctx, 8, marker)
				require.NoError(t, err)
				waitForLine(t, marker, "py-start", 60*time.Second)
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				cmd.Wait()

				startGoWorkerProcess(t, bin, c, queue)
				// The go run sleeps 8 s too: wait for its start, then its result.
				waitForLine(t, marker, "go-start", 60*time.Second)
				v, err := res.Get(ctx)
				require.NoError(t, err)
				require.Equal(t, "go", v)
			})
		})
	}
}
