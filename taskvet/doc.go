// Package taskvet is a [golang.org/x/tools/go/analysis] analyzer for
// taskgen's //task: directives and task declarations: it runs the
// generator's own checks ([generator.Check]) on each package go vet, gopls
// or another analysis driver has type-checked, so a mistake shows in the
// editor and in go vet, before go generate runs.
//
// The command [github.com/taskgen/taskgen/cmd/taskvet] runs [Analyzer]:
//
//	go install github.com/taskgen/taskgen/cmd/taskvet
//	go vet -vettool=$(which taskvet) ./...
//
// # Diagnostics
//
// Every error taskgen reports for one type-checked package is a diagnostic,
// at the same position, with the same message ("task NAME: " included when
// the error concerns one task):
//
//   - directives: unknown options (with the nearest valid one), duplicated
//     options, malformed values, directives with a space after "//",
//     directives that are not in the doc comment of a function or func type
//     (on a method, a var, a struct type, the package doc, in a function
//     body, separated from the func by a blank line, at the end of a line);
//   - tasks: exported or misnamed task functions, signatures other than
//     func(ctx context.Context, ...) (R, error) or error, unnamed or blank
//     parameters, parameters answering to the same keyword, parameter and
//     result types that cannot be serialized (channels, functions,
//     interfaces with methods, unexported fields, ... at any depth);
//   - options: autoretry_for and dont_autoretry_for elements that do not
//     name an error type or value in scope of the function's file, options
//     that mean nothing on a remote task, a remote task without //task:name,
//     two tasks of the package with the same Celery name;
//   - generated identifiers (stub, stub type, definition, argument struct,
//     RegisterTasks) colliding with a declaration of the package, and
//     package-level declarations hiding a predeclared identifier the
//     generated code uses.
//
// # What taskvet does not check
//
// The generated file (tasks_gen.go, or any file starting with taskgen's
// header) is ignored, as taskgen ignores it when loading: whether it is up
// to date is for taskgen -check, and a stale one that no longer compiles
// fails go vet with the compiler's errors. Directives in _test.go files are
// not read, by taskgen or taskvet. Task names shared by tasks of different
// packages are reported by taskgen only, which sees all the packages of a
// run at once; so is a tasks_gen.go that taskgen did not generate.
package taskvet
