// Taskvet reports mistakes in taskgen's //task: directives and task
// declarations: the errors taskgen would report, with the same messages, at
// the same positions, from go vet or on its own. It is
// [github.com/taskgen/taskgen/taskvet.Analyzer] as a command.
//
// Usage:
//
//	go vet -vettool=$(which taskvet) [packages]
//	taskvet [flags] [packages]
//
// Install it, then run it through go vet (which type-checks each package
// once and caches the result):
//
//	go install github.com/taskgen/taskgen/cmd/taskvet
//	go vet -vettool=$(which taskvet) ./...
//
// Run on its own, taskvet loads the packages itself; taskvet -help lists
// the flags common to analysis drivers (for example -json).
//
// For example:
//
//	$ go vet -vettool=$(which taskvet) ./...
//	signup/tasks.go:12:8: task sendWelcomeEmail: unknown option "retry_backof" (did you mean retry_backoff?)
//	signup/tasks.go:13:1: task sendWelcomeEmail: duplicate option "queue" (previous at tasks.go:11:1)
//	signup/tasks.go:20:1: //task: directive is not attached to a function declaration (remove the blank line between the directive and func send)
//	signup/tasks.go:24:36: task notify: parameter done has type chan struct{}: channels cannot be sent to another process
//
// A position inside a message ("previous at tasks.go:11:1") is relative to
// the package's directory.
//
// # What it checks
//
// Everything taskgen checks in one type-checked package: unknown,
// duplicated, malformed, misplaced and spaced directives; task names and
// signatures; parameter and result types that cannot be serialized;
// autoretry_for and dont_autoretry_for elements that do not resolve to an
// error type or value; options that mean nothing on a remote task; two
// tasks of the package with one Celery name; generated identifiers that
// would collide with the package's declarations. The package doc of
// [github.com/taskgen/taskgen/taskvet] lists the diagnostics, and
// github.com/taskgen/taskgen/cmd/taskgen documents the directives.
//
// taskvet does not read the generated file (tasks_gen.go) nor _test.go
// files. Whether the generated file is up to date is for taskgen -check;
// task names shared across packages, seen only when taskgen loads them
// together, are reported by taskgen alone.
//
// # Exit status
//
// Through go vet: 1 when there are diagnostics (or the packages do not
// build), 0 otherwise. On its own: 3 when there are diagnostics, 1 when the
// packages cannot be loaded, 0 otherwise.
package main
