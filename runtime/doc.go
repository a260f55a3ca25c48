// Package runtime is what taskgen's generated code and workers link against: the
// App and its Config, typed task stubs ([Stub]), [AsyncResult], the [Worker], the
// retry policy, the argument codecs and Celery's message protocol v2.
//
// # Transports
//
// The core package imports no broker client library. Transports and result
// backends plug in by URL scheme, the way database/sql drivers do: import the
// transport's package for its side effect and name it in [Config]:
//
//	import _ "github.com/taskgen/taskgen/runtime/memory" // memory://
//
// A program links only the transports it imports.
//
// # Tasks
//
// A task is a plain Go function annotated with //task: directives; cmd/taskgen
// generates its typed stub. Generated code builds a [TaskDef] per task and
// wraps it in a [Stub]; RegisterTasks registers the definitions on a [Worker].
//
// # Delivery
//
// Delivery is at least once: a task whose worker dies before acknowledging runs
// again. A message that cannot be decoded or names no registered task is set
// aside (dead-lettered) with its reason, never lost and never crashing the worker.
package runtime
