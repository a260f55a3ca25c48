package taskvet

import (
	"go/ast"
	"go/token"
	"path/filepath"
	"strings"

	"golang.org/x/tools/go/analysis"

	"github.com/taskgen/taskgen/generator"
)

// Analyzer reports the errors taskgen would report for the //task:
// directives and task declarations of a package. It reports nothing for a
// package without directives.
var Analyzer = &analysis.Analyzer{
	Name: "taskvet",
	Doc: `check //task: directives and task signatures as taskgen does

taskvet reports every error taskgen would report in a package's //task:
directives (unknown, duplicated, malformed, misplaced or spaced directives)
and in its tasks (names, signatures, parameter and result types that cannot
be serialized, autoretry_for elements that do not resolve to an error type
or value, schedules whose crontab expression is wrong or whose task takes
arguments, generated identifiers and schedule entry names that would
collide), with taskgen's messages. The generated file (tasks_gen.go) and _test.go files are not
checked, as taskgen does not read them.`,
	URL: "https://pkg.go.dev/github.com/taskgen/taskgen/taskvet",
	Run: run,
}

func run(pass *analysis.Pass) (any, error) {
	var files []*ast.File
	output := ""
	tokFiles := map[string]*token.File{}
	dirs := map[string]bool{}
	for _, f := range pass.Files {
		tf := pass.Fset.File(f.FileStart)
		if tf == nil {
			continue
		}
		base := filepath.Base(tf.Name())
		switch {
		case strings.HasSuffix(base, "_test.go"):
			continue
		case base == generator.DefaultOutput || isGenerated(pass.Fset, f):
			if output == "" {
				output = base
			}
			continue
		}
		files = append(files, f)
		tokFiles[tf.Name()] = tf
		dirs[filepath.Dir(tf.Name())] = true
	}
	if len(files) == 0 {
		return nil, nil
	}
	errs := generator.Check(&generator.Package{
		Fset:   pass.Fset,
		Files:  files,
		Types:  pass.Pkg,
		Info:   pass.TypesInfo,
		Output: output,
	})
	for _, e := range errs {
		pass.Report(analysis.Diagnostic{
			Pos:     pos(e.Pos, tokFiles, files[0]),
			Message: message(e, dirs),
		})
	}
	return nil, nil
}

// isGenerated reports whether f starts with taskgen's header: a generated
// file written under another name (taskgen -o).
func isGenerated(fset *token.FileSet, f *ast.File) bool {
	if len(f.Comments) == 0 || len(f.Comments[0].List) == 0 {
		return false
	}
	c := f.Comments[0].List[0]
	return c.Text == generator.Header && fset.Position(c.Slash).Line == 1
}

// pos converts a position of an error back to a token.Pos; an error without
// a usable position is reported at the package clause of first.
func pos(p token.Position, files map[string]*token.File, first *ast.File) token.Pos {
	tf := files[p.Filename]
	if tf == nil || p.Line < 1 || p.Line > tf.LineCount() {
		return first.Package
	}
	start := tf.LineStart(p.Line)
	col := max(p.Column, 1)
	if off := tf.Offset(start) + col - 1; off <= tf.Size() {
		return tf.Pos(off)
	}
	return start
}

// message is the error as taskgen prints it, without its position, and with
// the positions it names ("previous at x.go:3:1") written relative to the
// package's directory, so they read the same in go vet's output and in an
// editor.
func message(e *generator.Error, dirs map[string]bool) string {
	msg := (&generator.Error{Task: e.Task, Msg: e.Msg}).Error()
	for dir := range dirs {
		msg = strings.ReplaceAll(msg, dir+string(filepath.Separator), "")
	}
	return msg
}
