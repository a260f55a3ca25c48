package taskvet_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/taskgen/taskgen/taskvet"
)

// TestAnalyzer checks the diagnostics of each testdata/src package against
// its // want comments: good and renamed report nothing, the others one
// category of error each. The packages are loaded together: analysistest
// type-checks their dependencies from source, once.
func TestAnalyzer(t *testing.T) {
	t.Parallel()
	analysistest.Run(t, analysistest.TestData(), taskvet.Analyzer,
		"good",         // correct tasks and remote stubs; the generated file and _test.go files are ignored
		"renamed",      // a generated file under another name (taskgen -o), found by its header
		"directives",   // unknown, duplicate, malformed and spaced directives
		"misplaced",    // directives taskgen does not read: methods, vars, types, blank lines, bodies
		"signatures",   // task functions and func types that cannot be tasks
		"serializable", // parameters and results that cannot travel in a message
		"autoretry",    // autoretry_for elements that resolve to no error type or value
		"names",        // generated identifiers and Celery names that collide; remote options
		"schedule",     // schedules: crontab errors at their field, arguments, entry names used twice
	)
}
