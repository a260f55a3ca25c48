package generator_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/generator"
	"github.com/taskgen/taskgen/generator/internal/testmodule"
)

// TestWorkflowTypes_mistakesDoNotCompile: workflows whose steps do not fit
// together are compile errors at the line of the mistake: a chain whose
// next step takes another type than the previous step returns, a chord
// whose body does not take []T, a callback (OnSuccess) of the wrong type.
// The same steps fitted together compile.
func TestWorkflowTypes_mistakesDoNotCompile(t *testing.T) {
	t.Parallel()
	tasks := `package flow

import "context"

//task:name flow.count
func count(ctx context.Context, s string) (int64, error) { return int64(len(s)), nil }

//task:name flow.shout
func shout(ctx context.Context, s string, times int) (string, error) { return s, nil }

//task:name flow.sum
func sum(ctx context.Context, xs []int64) (int64, error) { return 0, nil }

//task:name flow.double
func double(ctx context.Context, x int64) (int64, error) { return 2 * x, nil }
`
	good := `package flow

import "github.com/taskgen/taskgen/runtime"

var (
	_ = runtime.Chain(Shout.Sig("a", 2), Count.Partial())
	_ = runtime.Chain(runtime.Chain(Count.Sig("abc"), Double.Partial()), Double.Partial())
	_ = runtime.Chord(runtime.Group(Count.Sig("a"), Count.Sig("bb")), Sum.Partial())
	_ = Count.Sig("a").OnSuccess(Double.Partial())
)
`
	bad := `package flow

import "github.com/taskgen/taskgen/runtime"

var (
	chainMismatch = runtime.Chain(Count.Sig("abc"), Shout.Partial(2))
	chordMismatch = runtime.Chord(runtime.Group(Shout.Sig("a", 1)), Sum.Partial())
	linkMismatch  = Count.Sig("a").OnSuccess(Shout.Partial(1))
)
`
	for _, c := range []struct {
		name   string
		files  map[string][]byte
		errors []string // file:line: and a fragment of the compiler's message
	}{
		{"fits", map[string][]byte{"flow/tasks.go": []byte(tasks), "flow/use.go": []byte(good)}, nil},
		{"mistakes", map[string][]byte{"flow/tasks.go": []byte(tasks), "flow/use.go": []byte(bad)}, []string{
			`use\.go:6:\d+: .*(Partial\[string, string\]|in call to runtime\.Chain)`,
			`use\.go:7:\d+: .*(Partial\[\[\]int64, int64\]|in call to runtime\.Chord)`,
			`use\.go:8:\d+: .*Callback\[int64\]`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Generate from the tasks alone: the mistakes are in code that
			// uses the stubs, which the generator does not need to load.
			dir := testmodule.New(t, "flow"+c.name, map[string][]byte{"flow/tasks.go": c.files["flow/tasks.go"]})
			files, errs := generator.Generate(generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()})
			require.Empty(t, errs)
			_, err := generator.Write(files)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "flow", "use.go"), c.files["flow/use.go"], 0o644))
			out, err := testmodule.Go(dir, "build", "./...")
			if c.errors == nil {
				require.NoError(t, err, "%s", out)
				return
			}
			require.Error(t, err, "the mistakes compiled:\n%s", out)
			t.Logf("compiler output:\n%s", out)
			for _, want := range c.errors {
				require.Regexp(t, regexp.MustCompile(want), out)
			}
			require.Equal(t, len(c.errors), strings.Count(out, "use.go:"), "one error per mistake:\n%s", out)
		})
	}
}
