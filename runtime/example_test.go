package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/exampletasks"
	_ "github.com/taskgen/taskgen/runtime/memory"
)

// seen records what the worker received, for examples about message fields.
type seen struct {
	runtime.Observer
	mu   sync.Mutex
	msgs map[string]*driver.Message
}

func (s *seen) TaskReceived(m *driver.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *m
	s.msgs[m.Headers.ID] = &c
}

func (s *seen) get(id string) *driver.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[id]
}

type nop struct{}

func (nop) TaskReceived(*driver.Message)                               {}
func (nop) TaskStarted(*driver.Message)                                {}
func (nop) TaskSucceeded(*driver.Message, any, time.Duration)          {}
func (nop) TaskFailed(*driver.Message, *driver.ExceptionInfo, string)  {}
func (nop) TaskRetried(*driver.Message, *driver.ExceptionInfo, string) {}
func (nop) TaskRejected(*driver.Message, string)                       {}
func (nop) TaskRevoked(*driver.Message, bool, bool)                    {}

// startExampleWorker makes an in-process app the default, runs a worker for
// the example tasks, and returns what it saw and a stop function.
func startExampleWorker() (*runtime.App, *seen, func()) {
	name := "example-" + driver.NewID()
	app, err := runtime.New(runtime.Config{Broker: "memory://" + name, Backend: "memory://" + name,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	runtime.SetDefault(app)
	obs := &seen{Observer: nop{}, msgs: map[string]*driver.Message{}}
	w := app.NewWorker(runtime.WorkerOptions{Queues: []string{"celery", "images", "thumbnails"}, Concurrency: 2, Observer: obs})
	exampletasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	return app, obs, func() { cancel(); <-done; app.Close(); runtime.SetDefault(nil) }
}

// The queue directive routes a task; runtime.Queue overrides it per call.
func ExampleQueue() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Resize.Delay(ctx, "cat.png", 128) // //task:queue images
	fmt.Println(res.Get(ctx))
	res, _ = exampletasks.Resize.With(runtime.Queue("thumbnails")).Delay(ctx, "cat.png", 64)
	fmt.Println(res.Get(ctx))
	// Output:
	// cat.png resized to 128px on queue images <nil>
	// cat.png resized to 64px on queue thumbnails <nil>
}

// Countdown delays a call; the task runs once it is due.
func ExampleCountdown() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	start := time.Now()
	res, _ := exampletasks.Resize.With(runtime.Countdown(50*time.Millisecond)).Delay(ctx, "dog.png", 32)
	v, err := res.Get(ctx)
	fmt.Println(v, err, time.Since(start) >= 50*time.Millisecond)
	// Output: dog.png resized to 32px on queue images <nil> true
}

// ETA runs a call no earlier than a given time.
func ExampleETA() {
	_, obs, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	eta := time.Now().Add(30 * time.Millisecond)
	res, _ := exampletasks.Resize.With(runtime.ETA(eta)).Delay(ctx, "owl.png", 16)
	v, _ := res.Get(ctx)
	fmt.Println(v)
	d := obs.get(res.ID()).Headers.ETA.Sub(eta) // microsecond precision on the wire
	fmt.Println(d > -time.Microsecond && d < time.Microsecond)
	// Output:
	// owl.png resized to 16px on queue images
	// true
}

// Expires revokes a call that starts too late instead of running it; the
// //task:expires directive sets a default for every call.
func ExampleExpires() {
	_, obs, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Report.With(runtime.Expires(time.Now().Add(-time.Second))).Delay(ctx, "monday")
	_, err := res.Get(ctx)
	fmt.Println(err != nil, errors.As(err, new(*runtime.TaskError)))
	st, _ := res.State(ctx)
	fmt.Println(st)

	res, _ = exampletasks.Report.Delay(ctx, "tuesday") // //task:expires 1h
	fmt.Println(res.Get(ctx))
	left := time.Until(obs.get(res.ID()).Headers.Expires)
	fmt.Println(left > 59*time.Minute && left <= time.Hour)
	// Output:
	// true true
	// REVOKED
	// report for tuesday <nil>
	// true
}

// Priority sets the message priority; //task:priority sets the default.
func ExamplePriority() {
	_, obs, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Urgent.Delay(ctx)
	res.Get(ctx)
	fmt.Println(obs.get(res.ID()).Priority)
	res, _ = exampletasks.Urgent.With(runtime.Priority(3)).Delay(ctx)
	res.Get(ctx)
	fmt.Println(obs.get(res.ID()).Priority)
	// Output:
	// 9
	// 3
}

// TaskID chooses the task id instead of a random UUID.
func ExampleTaskID() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Resize.With(runtime.TaskID("resize-cat-42")).Delay(ctx, "cat.png", 42)
	fmt.Println(res.ID())
	// Output: resize-cat-42
}

// Headers adds custom message headers, visible to the task.
func ExampleHeaders() {
	_, obs, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Resize.With(runtime.Headers(map[string]any{"tenant": "acme"})).Delay(ctx, "cat.png", 10)
	res.Get(ctx)
	fmt.Println(obs.get(res.ID()).Headers.Extra["tenant"])
	// Output: acme
}

// WithApp sends through a given app instead of the process default.
func ExampleWithApp() {
	app, _, stop := startExampleWorker()
	defer stop()
	runtime.SetDefault(nil)
	ctx := context.Background()
	_, err := exampletasks.Resize.Delay(ctx, "cat.png", 1)
	fmt.Println(errors.Is(err, runtime.ErrNoApp))
	res, _ := exampletasks.Resize.With(runtime.WithApp(app)).Delay(ctx, "cat.png", 1)
	fmt.Println(res.Get(ctx))
	// Output:
	// true
	// cat.png resized to 1px on queue images <nil>
}

// Retry, returned from a task, retries it with its policy (Celery's
// self.retry); //task:max_retries and //task:default_retry_delay apply.
func ExampleRetry() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Poll.Delay(ctx, 2)
	fmt.Println(res.Get(ctx))
	res, _ = exampletasks.Poll.Delay(ctx, 5) // more than max_retries 2
	_, err := res.Get(ctx)
	var te *runtime.TaskError
	errors.As(err, &te)
	fmt.Println(te.State, te.Exception.Type, te.Exception.Message)
	// Output:
	// 2 <nil>
	// FAILURE Exception [not ready at retry 2]
}

// //task:autoretry_for retries matching errors automatically with
// //task:retry_backoff (here 10ms, 20ms, … capped by retry_backoff_max,
// jitter off); //task:dont_autoretry_for excludes errors that also match.
func ExampleRetryPolicy() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	exampletasks.Attempts.Store(0)
	res, _ := exampletasks.Charge.Delay(ctx, 500)
	fmt.Println(res.Get(ctx))

	exampletasks.Attempts.Store(0)
	res, _ = exampletasks.Charge.Delay(ctx, -1) // blocked card: not retried
	_, err := res.Get(ctx)
	fmt.Println(exampletasks.Attempts.Load(), err != nil)

	p := codegen.RetryPolicy{Backoff: time.Second, BackoffMax: 10 * time.Second}
	for retries := 0; retries < 5; retries++ {
		fmt.Print(p.Countdown(retries, nil), " ")
	}
	fmt.Println()
	// Output:
	// charged 500 cents after 3 attempts <nil>
	// 1 true
	// 1s 2s 4s 8s 10s
}

// //task:soft_time_limit cancels the task's ctx with SoftTimeLimitExceeded so
// it can stop cleanly; //task:time_limit fails a task that ignores its ctx.
func ExampleErrSoftTimeLimitExceeded() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Crunch.Delay(ctx, 1)
	fmt.Println(res.Get(ctx))
	hres, _ := exampletasks.Hang.Delay(ctx)
	_, err := hres.Get(ctx)
	var te *runtime.TaskError
	errors.As(err, &te)
	fmt.Println(te.Exception.Type)
	// Output:
	// stopped early: SoftTimeLimitExceeded <nil>
	// TimeLimitExceeded
}

// //task:rate_limit 20/s spaces the starts of a task on a worker by 50ms.
func ExampleRateLimit() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	start := time.Now()
	var results []*runtime.AsyncResult[int]
	for i := 0; i < 5; i++ {
		res, _ := exampletasks.Ping.Delay(ctx, i)
		results = append(results, res)
	}
	for _, r := range results {
		r.Get(ctx)
	}
	fmt.Println(time.Since(start) >= 200*time.Millisecond)
	// Output: true
}

// //task:acks_late acknowledges the message after the run, so a worker that
// dies mid-task leaves it to be delivered again; //task:ignore_result stores
// no result document.
func ExampleTaskDef() {
	_, obs, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Audit.Delay(ctx, "login")
	fmt.Println(res.Get(ctx))
	fmt.Println(exampletasks.Audit.Def().AcksLate, exampletasks.Notify.Def().IgnoreResult)

	nres, _ := exampletasks.Notify.Delay(ctx, "ann")
	for obs.get(nres.ID()) == nil {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	st, _ := nres.State(ctx)
	fmt.Println(st)
	// Output:
	// audited login <nil>
	// true true
	// PENDING
}

// TaskFromContext gives a running task its id, name, retries and queue.
func ExampleTaskFromContext() {
	_, _, stop := startExampleWorker()
	defer stop()
	ctx := context.Background()
	res, _ := exampletasks.Resize.Delay(ctx, "info.png", 8)
	v, _ := res.Get(ctx)
	fmt.Println(v)
	// Output: info.png resized to 8px on queue images
}
