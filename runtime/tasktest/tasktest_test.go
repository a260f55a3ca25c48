package tasktest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

func TestCalls_TypedArguments(t *testing.T) {
	for _, ser := range []string{"msgpack", "json"} {
		t.Run(ser, func(t *testing.T) {
			kit := tasktest.NewWith(t, []tasktest.Option{tasktest.RecordOnly(), tasktest.Serializer(ser), tasktest.WithoutDefault()},
				exampletasks.RegisterTasks)
			ctx := context.Background()
			stub := exampletasks.Resize.With(runtime.WithApp(kit.App))
			_, err := stub.Delay(ctx, "https://example.com/a.png", 320)
			require.NoError(t, err)
			_, err = stub.With(runtime.Queue("thumbs")).Delay(ctx, "https://example.com/b.png", 64)
			require.NoError(t, err)
			_, err = exampletasks.Charge.With(runtime.WithApp(kit.App)).Delay(ctx, 100)
			require.NoError(t, err)

			calls := tasktest.Calls(kit, exampletasks.Resize)
			require.Len(t, calls, 2, "only the task's own calls")
			require.Equal(t, exampletasks.ResizeArgs{Url: "https://example.com/a.png", Width: 320}, calls[0].Args)
			require.Equal(t, exampletasks.ResizeArgs{Url: "https://example.com/b.png", Width: 64}, calls[1].Args)
			require.Equal(t, []any{"https://example.com/b.png", int64(64)}, calls[1].Call.Args, "the generic form stays reachable")
			require.Equal(t, "thumbs", calls[1].Queue)

			charges := tasktest.Calls(kit, exampletasks.Charge)
			require.Len(t, charges, 1)
			require.Equal(t, 100, charges[0].Args.Cents)
			require.Empty(t, tasktest.Calls(kit, exampletasks.Poll))
		})
	}
}

// fatalRecorder records Fatalf and stops the caller with a panic.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestCalls_FailsTheTestOnArgumentsTheCodecRejects(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	kit := tasktest.NewWith(rec, []tasktest.Option{tasktest.RecordOnly(), tasktest.WithoutDefault()}, exampletasks.RegisterTasks)
	// A body any decoder reads, with a number where Resize takes a string.
	msg := &driver.Message{
		ContentType:     driver.ContentTypeJSON,
		ContentEncoding: driver.ContentEncodingUTF8,
		Headers:         driver.TaskHeaders{Task: exampletasks.Resize.Name(), ID: "bad-1"},
		Body:            []byte(`[[7, 320], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
	}
	require.NoError(t, kit.App.Broker().Publish(context.Background(), "images", msg))
	require.Equal(t, []any{int64(7), int64(320)}, kit.Enqueued(exampletasks.Resize.Name())[0].Args)

	func() {
		defer func() { require.Equal(t, any(rec), recover()) }()
		tasktest.Calls(kit, exampletasks.Resize)
	}()
	require.Contains(t, rec.msg, "enqueued images.resize (id bad-1): decoding its arguments")
	require.Contains(t, rec.msg, `"url"`)
}
