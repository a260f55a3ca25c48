package interop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestInteropRPC: the rpc:// result backend both ways on RabbitMQ. A
// Python client (backend='rpc://') calls Go tasks and reads their results
// from its reply queue, FAILURE and RETRY included; a Go client with
// rpc:// calls Python tasks (a Python worker with backend='rpc://' sends
// to the reply_to of the Go message).
func TestInteropRPC(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	testenv.Python(t)
	for _, ser := range []string{"json", "msgpack"} {
		id := driver.NewID()[:8]
		c := cell{name: "amqp-rpc/" + ser, broker: amqpURL, backend: "rpc://", serializer: ser,
			goQueue: "go-rpc-" + id, pyQueue: "py-rpc-" + id}
		t.Run(c.name, func(t *testing.T) {
			app := startGoWorker(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			t.Run("python calls go", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.add", "[2, 3]", "{}", c.goQueue)
				require.Equal(t, "SUCCESS", out["state"], out)
				require.EqualValues(t, 5, out["result"])
			})
			t.Run("go error reaches python", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.fail", `["no such user"]`, "{}", c.goQueue)
				require.Equal(t, "FAILURE", out["state"], out)
				e := out["error"].(map[string]any)
				require.Equal(t, "ValueError", e["class"])
				require.Equal(t, []any{"no such user"}, e["args"])
			})
			t.Run("python waits through go's RETRY", func(t *testing.T) {
				out := pyClient(t, c, "send", "go.flaky", "[2]", "{}", c.goQueue)
				require.Equal(t, "SUCCESS", out["state"], out)
				require.EqualValues(t, 2, out["result"])
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
				require.Equal(t, runtime.StateFailure, te.State)
				require.Equal(t, "ValueError", te.Exception.Type)
				require.Equal(t, []any{"bad input"}, te.Exception.Message)
			})
		})
	}
}
