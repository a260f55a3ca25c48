package amqp_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/amqp"
)

func newRPCApp(t testing.TB, brokerURL, ser string) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: brokerURL, Backend: "rpc://", Serializer: ser, PublishTimeout: 20 * time.Second, Logger: testLogger})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

// TestRPC_GoProducerGoWorker: results (a success, a retry then a success,
// a failure) come back as messages to the producer's reply queue; another
// process sees PENDING.
func TestRPC_GoProducerGoWorker(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			q := queueName(t)
			purgeLater(t, raw, q)
			producer := newRPCApp(t, raw, ser)
			worker := newRPCApp(t, raw, ser)
			var attempts atomic.Int32
			add := addDef(q, func(ctx context.Context, a *addArgs) (any, error) {
				switch a.z {
				case -1:
					return nil, errors.New("boom")
				case -2:
					if attempts.Add(1) == 1 {
						return nil, runtime.Retry(errors.New("again"), runtime.RetryCountdown(time.Millisecond))
					}
				}
				return a.x + a.y + a.z, nil
			})
			runWorker(t, worker, runtime.WorkerOptions{Queues: []string{q}, Concurrency: 2}, add)
			stub := runtime.NewStub[int64](add).With(runtime.WithApp(producer))
			ctx := ctxT(t, 30*time.Second)

			r, err := stub.Send(ctx, &addArgs{1, 2, 3})
			require.NoError(t, err)
			v, err := r.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(6), v)
			st, err := r.State(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.StateSuccess, st)

			r2, err := stub.Send(ctx, &addArgs{1, 2, -2})
			require.NoError(t, err)
			v, err = r2.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(1), v)
			require.Equal(t, int32(2), attempts.Load())

			r3, err := stub.Send(ctx, &addArgs{1, 2, -1})
			require.NoError(t, err)
			_, err = r3.Get(ctx)
			var te *runtime.TaskError
			require.ErrorAs(t, err, &te)
			require.Equal(t, runtime.StateFailure, te.State)
			require.Contains(t, err.Error(), "boom")

			// Readable only by the caller: the worker's app (another
			// reply queue) heard nothing of these tasks.
			st, err = runtime.NewAsyncResult[int64](worker, r.ID()).State(ctx)
			require.NoError(t, err)
			require.Equal(t, runtime.StatePending, st)
		})
	}
}

// TestRPC_Wire: the task message carries reply_to = the reply queue and
// correlation_id = the task id; the queue is declared as Celery declares
// <oid> (not durable, auto-delete, x-expires 86400000); a reply in the
// form a Python worker sends (a captured fixture) is read.
func TestRPC_Wire(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newRPCApp(t, raw, "json")
	ctx := ctxT(t, 30*time.Second)
	r, err := runtime.NewStub[int64](addDef(q, nil)).With(runtime.WithApp(app)).Send(ctx, &addArgs{1, 2, 3})
	require.NoError(t, err)
	oid := app.Backend().(*amqp.RPCBackend).OID()

	_, ch := rawConn(t, raw)
	var got amqp091.Delivery
	for {
		d, ok, err := ch.Get(q, true)
		require.NoError(t, err)
		if ok {
			got = d
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("task message not found")
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.Equal(t, oid, got.ReplyTo)
	require.Equal(t, r.ID(), got.CorrelationId)

	// Same declaration as Celery's: a redeclare with other arguments would
	// close the channel with PRECONDITION_FAILED.
	_, err = ch.QueueDeclare(oid, false, true, false, false, amqp091.Table{"x-expires": int32(86400000)})
	require.NoError(t, err)

	body, err := os.ReadFile("/work/shared/celery/fixtures/amqp_rpc_result_json_2.bin")
	if err != nil {
		body = []byte(`{"task_id": "fc9afb81-ce8d-42c2-b83a-3b0b412e7a77", "status": "SUCCESS", "result": 42, "traceback": null, "children": []}`)
	}
	const pyID = "fc9afb81-ce8d-42c2-b83a-3b0b412e7a77"
	require.NoError(t, ch.Publish("", oid, false, false, amqp091.Publishing{ContentType: "application/json",
		ContentEncoding: "utf-8", DeliveryMode: 1, CorrelationId: pyID, Body: body}))
	v, err := runtime.NewAsyncResult[int64](app, pyID).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(42), v)
}

// TestRPC_NeedsAMQPBroker: rpc:// on another broker fails at New.
func TestRPC_NeedsAMQPBroker(t *testing.T) {
	t.Parallel()
	_, err := runtime.New(runtime.Config{Broker: "memory://" + queueName(t), Backend: "rpc://"})
	require.ErrorIs(t, err, amqp.ErrRPCBroker)
	require.Contains(t, err.Error(), "redis://")
	_, err = runtime.New(runtime.Config{Broker: "memory://" + queueName(t), Backend: "rpc://host:5672/"})
	require.ErrorContains(t, err, "takes no host")
	_, err = runtime.New(runtime.Config{Broker: "memory://" + queueName(t), Backend: "rpc://?expiry=1h"})
	require.ErrorContains(t, err, `option "expiry" unknown`)
}

// TestRPC_NoChords: a chord needs a backend that counts its members.
func TestRPC_NoChords(t *testing.T) {
	t.Parallel()
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	app := newRPCApp(t, raw, "json")
	stub := runtime.NewStub[int64](addDef(q, nil))
	sum := runtime.NamedPartial[[]int64, int64]("tasks.sum")
	_, err := runtime.Chord(runtime.Group(stub.Sig(&addArgs{1, 2, 3}), stub.Sig(&addArgs{4, 5, 6})), sum).With(runtime.WithApp(app)).Delay(ctxT(t, 10*time.Second))
	require.ErrorContains(t, err, "a chord needs a result backend that counts its members")
	require.ErrorContains(t, err, "RPCBackend")
}
