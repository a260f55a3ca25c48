package runtime

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// The pool goroutines receive deliveries themselves (no dispatcher goroutine
// in between); these tests pin what the hand-off must keep: the concurrency
// bound, held ETA tasks, and a shutdown that settles every message exactly
// once (ran and acked, or requeued).

type noArgs struct{}

func (noArgs) ArgNames() wire.ArgNames             { return nil }
func (noArgs) EncodeArgs(wire.ArgWriter) error     { return nil }
func (noArgs) DecodeArg(int, wire.ArgReader) error { return nil }

// scriptedBroker hands the worker the deliveries a test puts into in.
type scriptedBroker struct {
	in chan *scriptedDelivery
	// direct, when set, is the deliveries channel itself (no forwarding
	// goroutine): the latency benchmark sends on it.
	direct chan driver.Delivery
}

func (b *scriptedBroker) Publish(context.Context, string, *driver.Message) error { return nil }
func (b *scriptedBroker) Close() error                                           { return nil }

// Consume forwards in until ctx ends (then requeues what it holds) or in is
// closed (a transport that stopped).
func (b *scriptedBroker) Consume(ctx context.Context, _ []string, _ int) (<-chan driver.Delivery, error) {
	if b.direct != nil {
		return b.direct, nil
	}
	out := make(chan driver.Delivery, 4)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case d, ok := <-b.in:
				if !ok {
					return
				}
				select {
				case out <- d:
				case <-ctx.Done():
					_ = d.Requeue()
					return
				}
			}
		}
	}()
	return out, nil
}

type scriptedDelivery struct {
	m       *driver.Message
	settled atomic.Int32 // 1 acked, 2 requeued, 3 rejected
	times   atomic.Int32 // how many settlements (must end at 1)
}

func (d *scriptedDelivery) Message() *driver.Message { return d.m }
func (d *scriptedDelivery) Raw() []byte              { return nil }
func (d *scriptedDelivery) DecodeError() error       { return nil }
func (d *scriptedDelivery) set(v int32) error {
	d.times.Add(1)
	d.settled.Store(v)
	return nil
}
func (d *scriptedDelivery) Ack() error          { return d.set(1) }
func (d *scriptedDelivery) Requeue() error      { return d.set(2) }
func (d *scriptedDelivery) Reject(string) error { return d.set(3) }

func newScriptedWorker(t testing.TB, conc int, def *codegen.TaskDef) (*Worker, *scriptedBroker) {
	t.Helper()
	app, err := New(Config{Broker: "memory://" + driver.NewID(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	b := &scriptedBroker{in: make(chan *scriptedDelivery, 64)}
	app.broker = b
	w := app.NewWorker(WorkerOptions{Concurrency: conc, ShutdownTimeout: time.Minute, WithoutEvents: true})
	w.Register(def)
	return w, b
}

func scriptedMessage(t testing.TB, app *App, def *codegen.TaskDef, co *callOptions) *scriptedDelivery {
	t.Helper()
	m, err := app.newMessage(def, co, noArgs{})
	require.NoError(t, err)
	return &scriptedDelivery{m: m}
}

func TestWorker_ConcurrencyBoundAndShutdownSettleEveryMessageOnce(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 16)
	var running, peak atomic.Int32
	def := &codegen.TaskDef{Name: "t.block", NewArgs: func() wire.Args { return noArgs{} }, IgnoreResult: true,
		Run: func(ctx context.Context, _ wire.Args) (any, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			started <- struct{}{}
			<-release
			running.Add(-1)
			return nil, nil
		}}
	w, b := newScriptedWorker(t, 3, def)
	var ds []*scriptedDelivery
	for range 12 {
		d := scriptedMessage(t, w.app, def, &callOptions{})
		ds = append(ds, d)
		b.in <- d
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for range 3 {
		<-started
	}
	cancel() // three tasks run; the other nine must go back, none start
	close(release)
	require.NoError(t, <-done)
	// Whatever the scripted transport still buffered after Run is its own.
	close(b.in)
	for d := range b.in {
		_ = d.Requeue()
	}

	require.Equal(t, int32(3), peak.Load(), "concurrency bound")
	var acked, requeued int
	for i, d := range ds {
		require.Equal(t, int32(1), d.times.Load(), "delivery %d settled once", i)
		switch d.settled.Load() {
		case 1:
			acked++
		case 2:
			requeued++
		}
	}
	require.Equal(t, 3, acked)
	require.Equal(t, 9, requeued)
	require.Equal(t, int64(3), w.Stats().Succeeded)
}

func TestWorker_TransportStopEndsRunAfterRunningTasks(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	def := &codegen.TaskDef{Name: "t.one", NewArgs: func() wire.Args { return noArgs{} }, IgnoreResult: true,
		Run: func(ctx context.Context, _ wire.Args) (any, error) {
			started <- struct{}{}
			<-release
			return "ok", nil
		}}
	w, b := newScriptedWorker(t, 4, def)
	d := scriptedMessage(t, w.app, def, &callOptions{})
	b.in <- d
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	<-started
	close(b.in) // the transport gives up while the task runs
	close(release)
	err := <-done
	require.ErrorContains(t, err, "transport stopped delivering")
	require.Equal(t, int32(1), d.settled.Load())
	require.Equal(t, int32(1), d.times.Load())
	require.Equal(t, int64(1), w.Stats().Succeeded)
}

func TestWorker_HeldTasksRunWhenDueAndGoBackAtShutdown(t *testing.T) {
	ran := make(chan string, 4)
	def := &codegen.TaskDef{Name: "t.eta", NewArgs: func() wire.Args { return noArgs{} }, IgnoreResult: true,
		Run: func(ctx context.Context, _ wire.Args) (any, error) {
			info, _ := TaskFromContext(ctx)
			ran <- info.ID
			return nil, nil
		}}
	w, b := newScriptedWorker(t, 2, def)
	soon := scriptedMessage(t, w.app, def, &callOptions{countdown: 20 * time.Millisecond})
	// Within DelayHorizon, and the scripted broker is no Delayer: held in memory.
	later := scriptedMessage(t, w.app, def, &callOptions{countdown: time.Hour})
	now := scriptedMessage(t, w.app, def, &callOptions{})
	b.in <- later
	b.in <- soon
	b.in <- now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	got := map[string]bool{<-ran: true, <-ran: true}
	require.True(t, got[now.m.Headers.ID] && got[soon.m.Headers.ID], "ran %v", got)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, int32(2), later.settled.Load(), "held task requeued at shutdown")
	for _, d := range []*scriptedDelivery{soon, now, later} {
		require.Equal(t, int32(1), d.times.Load())
	}
	require.Empty(t, ran)
}

// TaskInfo.Received is when the worker took the delivery, before any hold:
// a countdown task's Received precedes its ETA, which precedes its start.
func TestWorker_ReceivedIsTheDispatchTimeBeforeAnyHold(t *testing.T) {
	type run struct {
		id                       string
		received, started, start time.Time
	}
	ran := make(chan run, 2)
	def := &codegen.TaskDef{Name: "t.received", NewArgs: func() wire.Args { return noArgs{} }, IgnoreResult: true,
		Run: func(ctx context.Context, _ wire.Args) (any, error) {
			start := time.Now()
			info, _ := TaskFromContext(ctx)
			ran <- run{info.ID, info.Received, info.Started, start}
			return nil, nil
		}}
	w, b := newScriptedWorker(t, 2, def)
	held := scriptedMessage(t, w.app, def, &callOptions{countdown: 150 * time.Millisecond})
	now := scriptedMessage(t, w.app, def, &callOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	sent := time.Now()
	b.in <- held
	b.in <- now
	got := map[string]run{}
	for range 2 {
		r := <-ran
		got[r.id] = r
	}
	cancel()
	require.NoError(t, <-done)
	for _, d := range []*scriptedDelivery{now, held} {
		r := got[d.m.Headers.ID]
		require.False(t, r.received.Before(sent), "received before it was sent")
		require.False(t, r.start.Before(r.received), "started before it was received")
		// Started: the worker's start of the run, after the dispatch and
		// before the task's function.
		require.False(t, r.started.Before(r.received), "Started before Received")
		require.False(t, r.start.Before(r.started), "the function ran before Started")
	}
	h := got[held.m.Headers.ID]
	eta := held.m.Headers.ETA
	require.True(t, h.received.Before(eta), "received %v is after the ETA %v: taken after the hold", h.received, eta)
	require.False(t, h.start.Before(eta), "started before its ETA")
	require.False(t, h.started.Before(eta), "Started before its ETA")
}

// BenchmarkWorker_StartLatency measures the worker's own share of the start
// latency: from the transport's send on the deliveries channel to the
// task's first instruction, paced at 1 000 tasks/s into an idle worker of
// concurrency 8 (as bench/cmd/compare's latency phase). It reports the
// median and p99 in µs; ns/op is not meaningful.
func BenchmarkWorker_StartLatency(b *testing.B) {
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	ran := make(chan struct{}, 1)
	def := &codegen.TaskDef{Name: "t.lat", NewArgs: func() wire.Args { return noArgs{} }, IgnoreResult: true,
		Run: func(ctx context.Context, _ wire.Args) (any, error) {
			now := time.Now()
			info, _ := TaskFromContext(ctx)
			mu.Lock()
			lat = append(lat, now.Sub(sent[info.ID]))
			mu.Unlock()
			ran <- struct{}{}
			return nil, nil
		}}
	w, br := newScriptedWorker(b, 8, def)
	br.direct = make(chan driver.Delivery, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	ds := make([]*scriptedDelivery, b.N)
	for i := range ds {
		ds[i] = scriptedMessage(b, w.app, def, &callOptions{})
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for _, d := range ds {
		<-tick.C
		mu.Lock()
		sent[d.m.Headers.ID] = time.Now()
		mu.Unlock()
		br.direct <- d
		<-ran
	}
	b.StopTimer()
	cancel()
	close(br.direct)
	<-done
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
