package interop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestInteropProgress: Celery's update_state both ways, on the Redis
// result backend (Redis and RabbitMQ brokers) and on rpc:// (RabbitMQ).
// A Python caller sends go.import_rows, whose Go worker calls
// runtime.Progress, and reads AsyncResult.state == "PROGRESS" and .info ==
// {"current", "total", "note"} at every step; a Go caller sends
// py.import_rows, whose Python worker calls self.update_state, and reads
// each step with AsyncResult.Progress and Info. Both tasks wait for a gate
// file per row, which the test creates once it has read that row's state.
func TestInteropProgress(t *testing.T) {
	cells := matrix(t)
	amqpURL := testenv.AMQPURL(t)
	for _, ser := range []string{"json", "msgpack"} {
		id := driver.NewID()[:8]
		cells = append(cells, cell{name: "amqp-rpc/" + ser, broker: amqpURL, backend: "rpc://", serializer: ser,
			goQueue: "go-rpc-" + id, pyQueue: "py-rpc-" + id})
	}
	const rows = 3
	for _, c := range cells {
		t.Run(c.name, func(t *testing.T) {
			app := startGoWorker(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			t.Run("python reads go progress", func(t *testing.T) {
				gate := t.TempDir()
				py := startPyProgress(t, c, "go.import_rows", []any{rows, gate}, c.goQueue)
				for i := 1; i <= rows; i++ {
					out := py.call(t, "await "+strconv.Itoa(i))
					require.Equal(t, map[string]any{"state": "PROGRESS",
						"info": map[string]any{"current": float64(i), "total": float64(rows), "note": "row"}}, out)
					openGate(t, gate, i)
				}
				require.Equal(t, map[string]any{"state": "SUCCESS", "result": float64(rows)}, py.call(t, "get"))
			})

			t.Run("go reads python progress", func(t *testing.T) {
				startPyWorker(t, c)
				gate := t.TempDir()
				res, err := gotasks.PyImportRows.With(runtime.WithApp(app), runtime.Queue(c.pyQueue)).Delay(ctx, rows, gate)
				require.NoError(t, err)
				got := make(chan error, 1)
				for i := 1; i <= rows; i++ {
					want := runtime.ProgressInfo{State: runtime.StateProgress, Current: i, Total: rows, Note: "row"}
					p := awaitProgress(t, ctx, res, want)
					require.Equal(t, want, p)
					info, err := res.Info(ctx)
					require.NoError(t, err)
					require.Equal(t, runtime.StateProgress, info.State)
					var m map[string]any
					require.NoError(t, info.Decode(&m))
					require.Equal(t, map[string]any{"current": int64(i), "total": int64(rows), "note": "row"}, m)
					if i == 1 { // Get waits past Python's PROGRESS
						go func() {
							v, err := res.Get(ctx)
							if err == nil && v != rows {
								err = context.Canceled
							}
							got <- err
						}()
					}
					openGate(t, gate, i)
				}
				require.NoError(t, <-got)
				p, err := res.Progress(ctx)
				require.NoError(t, err)
				require.Equal(t, runtime.ProgressInfo{State: runtime.StateSuccess}, p)
			})
		})
	}
}

// awaitProgress polls res.Progress until it returns want (the other
// language's worker stores each state on its own time; on rpc:// it is a
// message yet to arrive) and returns the last value read: want, or the
// final state the task reached instead, or what was stored when ctx ended.
func awaitProgress[R any](t *testing.T, ctx context.Context, res *runtime.AsyncResult[R], want runtime.ProgressInfo) runtime.ProgressInfo {
	t.Helper()
	for {
		p, err := res.Progress(ctx)
		require.NoError(t, err)
		if p == want || (p.Ready() && !want.Ready()) {
			return p
		}
		select {
		case <-ctx.Done():
			return p
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func openGate(t *testing.T, dir string, row int) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, strconv.Itoa(row)), nil, 0o644))
}

// pyProgress is a running `client.py progress`: the Python caller of one
// task, driven line by line.
type pyProgress struct {
	in  io.WriteCloser
	out *bufio.Scanner
	id  string
}

func startPyProgress(t *testing.T, c cell, task string, args []any, queue string) *pyProgress {
	t.Helper()
	a, err := json.Marshal(args)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, testenv.Python(t), "client.py", "progress", task, string(a), queue)
	cmd.Dir = pyDir(t)
	cmd.Env = pyEnv(c)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		in.Close()
		err := cmd.Wait()
		cancel()
		if t.Failed() || err != nil {
			t.Logf("client.py progress: %v\n%s", err, stderr.String())
		}
	})
	p := &pyProgress{in: in, out: bufio.NewScanner(out)}
	first := p.read(t)
	p.id, _ = first["id"].(string)
	require.NotEmpty(t, p.id, "client.py progress: %v", first)
	return p
}

func (p *pyProgress) read(t *testing.T) map[string]any {
	t.Helper()
	require.True(t, p.out.Scan(), "client.py progress ended early: %v", p.out.Err())
	var m map[string]any
	require.NoError(t, json.Unmarshal(p.out.Bytes(), &m), "client.py output %q", p.out.Text())
	return m
}

// call sends one command line and returns the JSON line it answers.
func (p *pyProgress) call(t *testing.T, line string) map[string]any {
	t.Helper()
	_, err := io.WriteString(p.in, line+"\n")
	require.NoError(t, err)
	return p.read(t)
}
