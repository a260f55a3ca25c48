// Package runtime is the API of taskgen for application code: the [App] and its
// [Config], the typed task stubs that cmd/taskgen generates ([Stub]: Delay,
// With, Call), [AsyncResult] to wait for a result, the [Worker] that runs
// tasks, and what a running task can ask for ([TaskFromContext], [Retry]).
//
// # Quick start
//
//	app, err := runtime.New(runtime.Config{Broker: "redis://127.0.0.1:6379/0", Backend: "redis://127.0.0.1:6379/1"})
//	runtime.SetDefault(app)                          // the app generated stubs use
//	res, err := signup.SendWelcomeEmail.Delay(ctx, email) // enqueue; returns once the broker has it
//	msg, err := res.Get(ctx)                          // wait for the typed result
//
//	w := app.NewWorker(runtime.WorkerOptions{Concurrency: 8})
//	signup.RegisterTasks(w)
//	err = w.Run(ctx)                                  // until ctx is cancelled
//
// # Transports
//
// This package imports no broker client library. Transports and result
// backends plug in by URL scheme, the way database/sql drivers do: import the
// transport's package for its side effect and name it in [Config]:
//
//	import _ "github.com/taskgen/taskgen/runtime/redis" // redis://, rediss://
//	import _ "github.com/taskgen/taskgen/runtime/amqp"  // amqp://, amqps://
//	import _ "github.com/taskgen/taskgen/runtime/memory" // memory://, in-process
//	import _ "github.com/taskgen/taskgen/runtime/all"   // all of them
//
// A program links only the transports it imports. Writing a transport is
// described in package runtime/driver; what generated code calls lives in
// package runtime/codegen.
//
// # Delivery
//
// Delivery is at least once: a task whose worker dies before acknowledging runs
// again. A message that cannot be decoded or names no registered task is set
// aside (dead-lettered) with its reason, never lost and never crashing the worker.
//
// # Remote control
//
// A running [Worker] answers Celery's remote-control commands, from Celery's
// CLI, Flower, taskctl or [App.Inspect] and [App.Control]: ping, stats,
// registered, active_queues, active, revoked, enable_events, disable_events,
// heartbeat, revoke, rate_limit (a task's rate limit changed until the worker
// stops, with Celery's replies) and shutdown (the warm shutdown of
// [Worker.Shutdown]: [Worker.Run] returns nil, and nothing is replied, as
// from Celery).
package runtime
