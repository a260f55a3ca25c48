// Package names has tasks whose generated identifiers or Celery names
// collide, and remote tasks with options only a worker uses.
package names

import "context"

// SendTask takes the name of send's stub type.
type SendTask struct{}

var sendArgs = 1

//task:name names.send
func send(ctx context.Context) error { return nil } // want `^task send: the generated argument struct sendArgs collides with var sendArgs declared at names.go:10:5: rename one of them$` `^task send: the generated stub type SendTask collides with type SendTask declared at names.go:8:6`

//task:name names.x
func fooTask(ctx context.Context) error { return nil }

//task:name names.y
func foo(ctx context.Context) error { return nil } // want `the generated stub type FooTask is also generated for task fooTask \(at names.go:16:6\): rename one of the tasks`

// RegisterTasks is written by hand.
func RegisterTasks() {} // want `^func RegisterTasks is declared here, but taskgen generates RegisterTasks in tasks_gen.go: rename this declaration$`

func new() {} // want `^func new hides the predeclared new, which the code generated in tasks_gen.go uses: rename it$`

//task:name names.same
func one(ctx context.Context) error { return nil }

//task:name names.same
func two(ctx context.Context) error { return nil } // want `^task two: task name "names.same" is already the name of task one \(at names.go:27:6\): set a distinct //task:name$`

//task:queue q
type remoteNoName func(ctx context.Context) error // want `^task remoteNoName: a remote task needs //task:name: the name its implementing worker registers it under$`

// want +4 `^task remoteOptions: autoretry_for has no effect on a remote task: the worker that implements it decides that; remove the directive$`
// want +4 `max_retries has no effect on a remote task`
//
//task:name names.remote_options
//task:autoretry_for error
//task:max_retries 2
//task:queue fine
type remoteOptions func(ctx context.Context) error
