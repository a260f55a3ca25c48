// Package generator is taskgen's engine: it loads Go packages, finds the
// functions carrying //task: directives, checks them and emits the typed task
// stubs. cmd/taskgen is a thin command around it; the manual is there.
//
// # Pipeline
//
// A run has hard boundaries between its steps:
//
//  1. Load: go/packages lists the packages, then loads them with syntax and
//     types. The existing generated file of each package is replaced, for
//     the type checker, by its package clause (a go/packages overlay), so a
//     stale file never blocks its own regeneration.
//  2. Find: [annotations.ParseFile] reads the directives of every file.
//  3. Check: signatures, parameter and result types, autoretry_for names
//     (resolved in the function's file scope), schedules (crontab
//     expressions with the runtime's parser, entry names unique in the
//     run), and every identifier the generated code declares, with go/types.
//  4. Model: a plain [model.Package] per package with tasks; the import and
//     local names of the generated code are chosen here, against the
//     package's own identifiers.
//  5. Emit: [Emit] renders a model with jennifer; it is a pure function of
//     the model.
//
// [Generate] runs the pipeline and returns the files without writing them;
// [Write] writes them, skipping unchanged ones, and [Diff] compares them with
// the disk for check modes. [Load] stops at the model. [Check] runs steps 2
// and 3 on one package that another driver has type-checked: it is how the
// taskvet analyzer (go vet -vettool) reports the same errors as taskgen.
//
// # Errors
//
// Every error of a run is returned, sorted by position, as an [*Error]
// printing as "path:line:col: task sendWelcomeEmail: message". A package with
// errors gets no file.
package generator
