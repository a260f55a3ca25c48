package all_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// uStrArgs is what taskgen generates for func f(ctx, s string).
type uStrArgs struct{ s string }

func (*uStrArgs) ArgNames() codegen.ArgNames             { return uArgNames }
func (a *uStrArgs) EncodeArgs(w codegen.ArgWriter) error { w.String(a.s); return nil }
func (a *uStrArgs) DecodeArg(_ int, r codegen.ArgReader) (err error) {
	a.s, err = r.String()
	return err
}

// TestUnique_ReleasedOnDeadLetter: on Redis, and on RabbitMQ with the lock
// in a Redis backend, a unique task dead-lettered by a Go worker (not
// registered there; arguments the worker's codec rejects) releases its
// lock when it is set aside, not after its ttl (an hour here).
func TestUnique_ReleasedOnDeadLetter(t *testing.T) {
	for _, bk := range []struct {
		name            string
		broker, backend func(t *testing.T) string
	}{
		{"redis", func(t *testing.T) string { return testenv.RedisURL(t) + "?global_keyprefix=u" + randHex(4) + ":" }, nil},
		{"amqp", func(t *testing.T) string { return testenv.AMQPURL(t) }, func(t *testing.T) string {
			return testenv.RedisURL(t) + "?global_keyprefix=u" + randHex(4) + ":"
		}},
	} {
		for _, why := range []string{"unregistered", "undecodable arguments"} {
			t.Run(bk.name+"/"+why, func(t *testing.T) {
				broker := bk.broker(t)
				backend := broker
				if bk.backend != nil {
					backend = bk.backend(t)
				}
				app := uniqueApp(t, broker, backend)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				q := "unique-dl-" + randHex(4)
				// The producer's tests.unique takes a string.
				producer := &codegen.TaskDef{Name: "tests.unique", Queue: q, Unique: time.Hour, Retry: codegen.DefaultRetryPolicy(),
					NewArgs: func() codegen.Args { return new(uStrArgs) }}
				worker := uniqueDef(q, time.Hour, nil) // tests.unique(x int)
				if why == "unregistered" {
					worker.Name = "tests.other"
				}
				stub := runtime.NewStub[int64](producer).With(runtime.WithApp(app))
				first, err := stub.Send(ctx, &uStrArgs{"a"})
				require.NoError(t, err)
				_, err = stub.Send(ctx, &uStrArgs{"a"})
				require.Equal(t, first.ID(), duplicateOf(t, err), "held while pending")
				startUniqueWorker(t, app, worker)

				store := app.Broker().(driver.DeadLetterStore)
				var dls []driver.DeadLetter
				require.Eventually(t, func() bool {
					dls, err = store.ListDeadLetters(ctx, q, 0)
					return err == nil && len(dls) == 1
				}, 20*time.Second, 20*time.Millisecond)
				require.Equal(t, first.ID(), dls[0].ID)
				if why == "unregistered" {
					require.Contains(t, dls[0].Reason, `unregistered task "tests.unique"`)
				} else {
					require.Contains(t, dls[0].Reason, "cannot decode arguments")
				}
				require.Eventually(t, func() bool {
					_, err := stub.Send(ctx, &uStrArgs{"a"})
					return err == nil
				}, 10*time.Second, 10*time.Millisecond, "released on dead letter")
			})
		}
	}
}
