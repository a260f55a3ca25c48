package generator_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/annotations"
	"github.com/taskgen/taskgen/generator"
	"github.com/taskgen/taskgen/generator/internal/testmodule"
	"github.com/taskgen/taskgen/runtime/codegen"
)

const twoTasks = `package jobs

import "context"

//task:queue q
func first(ctx context.Context, a string) (int, error) { return 0, nil }

//task:name jobs.second
func second(ctx context.Context, b []int) error { return nil }

func notATask(ctx context.Context) error { return nil }
`

func TestGenerate_deterministic(t *testing.T) {
	t.Parallel()
	dir := testmodule.New(t, "det", map[string][]byte{"jobs/jobs.go": []byte(twoTasks)})
	cfg := generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()}
	first, errs := generator.Generate(cfg)
	require.Empty(t, errs)
	require.Len(t, first, 1)
	_, err := generator.Write(first)
	require.NoError(t, err)
	// The second run sees the generated file (hidden while loading): the
	// output must not depend on it.
	second, errs := generator.Generate(cfg)
	require.Empty(t, errs)
	require.Equal(t, first, second)
	require.NotContains(t, string(first[0].Content), dir, "no absolute path in generated code")
}

func TestWrite_skipsUnchangedAndRemoves(t *testing.T) {
	t.Parallel()
	header := generator.Header + "\n\npackage plain\n"
	dir := testmodule.New(t, "write", map[string][]byte{
		"jobs/jobs.go":       []byte(twoTasks),
		"plain/plain.go":     []byte("package plain\n"),
		"plain/tasks_gen.go": []byte(header), // stale: plain has no tasks any more
		"other/other.go":     []byte("package other\n"),
		"other/tasks_gen.go": []byte("package other\n"), // not ours: left alone
		"nogo/README.md":     []byte("no Go files\n"),
	})
	cfg := generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()}
	files, errs := generator.Generate(cfg)
	require.Empty(t, errs)
	jobs := filepath.Join(dir, "jobs", "tasks_gen.go")
	plain := filepath.Join(dir, "plain", "tasks_gen.go")
	require.Equal(t, []string{jobs, plain}, paths(files))
	require.Nil(t, files[1].Content, "a stale generated file is to be removed")

	stale, err := generator.Diff(files)
	require.NoError(t, err)
	require.Equal(t, []string{jobs, plain}, stale, "missing and left-over files are stale")

	changed, err := generator.Write(files)
	require.NoError(t, err)
	require.Equal(t, []string{jobs, plain}, changed)
	require.NoFileExists(t, plain)
	require.FileExists(t, filepath.Join(dir, "other", "tasks_gen.go"))

	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(jobs, old, old))
	files, errs = generator.Generate(cfg)
	require.Empty(t, errs)
	changed, err = generator.Write(files)
	require.NoError(t, err)
	require.Empty(t, changed)
	fi, err := os.Stat(jobs)
	require.NoError(t, err)
	require.Equal(t, old, fi.ModTime(), "an unchanged file is not rewritten")
	stale, err = generator.Diff(files)
	require.NoError(t, err)
	require.Empty(t, stale)

	require.NoError(t, os.WriteFile(jobs, []byte(generator.Header+"\n\npackage jobs\n"), 0o644))
	stale, err = generator.Diff(files)
	require.NoError(t, err)
	require.Equal(t, []string{jobs}, stale)
}

func TestGenerate_output(t *testing.T) {
	t.Parallel()
	dir := testmodule.New(t, "output", map[string][]byte{"jobs/jobs.go": []byte(twoTasks)})
	files, errs := generator.Generate(generator.Config{Dir: dir, Patterns: []string{"./jobs"}, Output: "zz_tasks.go", Env: testmodule.Env()})
	require.Empty(t, errs)
	require.Equal(t, []string{filepath.Join(dir, "jobs", "zz_tasks.go")}, paths(files))
}

func TestGenerate_loadErrors(t *testing.T) {
	t.Parallel()
	dir := testmodule.New(t, "load", map[string][]byte{"jobs/jobs.go": []byte(twoTasks)})
	_, errs := generator.Generate(generator.Config{Dir: dir, Patterns: []string{"./missing"}, Env: testmodule.Env()})
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Error(), "missing")
}

func TestLoad_model(t *testing.T) {
	t.Parallel()
	dir := testmodule.New(t, "model", map[string][]byte{"jobs/jobs.go": []byte(twoTasks)})
	pkgs, errs := generator.Load(generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()})
	require.Empty(t, errs)
	require.Len(t, pkgs, 1)
	p := pkgs[0]
	require.Equal(t, "jobs", p.Name)
	require.Equal(t, "example.com/model/jobs", p.Path)
	require.Len(t, p.Tasks, 2)
	first := p.Tasks[0]
	require.Equal(t, "First", first.StubName)
	require.Equal(t, "jobs.first", first.CeleryName)
	require.Equal(t, "int", first.Result)
	require.True(t, first.HasResult)
	require.Equal(t, "q", first.Options.Queue)
	require.Equal(t, "func(context.Context, string) (int, error)", first.Signature)
	require.Equal(t, "struct{}", p.Tasks[1].Result)
	require.False(t, p.Tasks[1].HasResult)
}

func TestCheckOutputName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"tasks_gen.go": true,
		"zz_gen.go":    true,
		"sub/x.go":     false,
		"x.txt":        false,
		".go":          false,
		"x_test.go":    false,
		"_x.go":        false,
		".x.go":        false,
		`dir\x.go`:     false,
	} {
		err := generator.CheckOutputName(name)
		require.Equal(t, ok, err == nil, "%q: %v", name, err)
	}
}

func TestError_Error(t *testing.T) {
	t.Parallel()
	e := &generator.Error{Task: "f", Msg: "bad"}
	require.Equal(t, "task f: bad", e.Error())
	e.Pos.Filename, e.Pos.Line, e.Pos.Column = "a/b.go", 3, 7
	require.Equal(t, "a/b.go:3:7: task f: bad", e.Error())
	e.Task = ""
	require.Equal(t, "a/b.go:3:7: bad", e.Error())
}

// BenchmarkGenerate500 measures a whole run (go list, type checking,
// checks, emission) on one package of 500 tasks.
func BenchmarkGenerate500(b *testing.B) {
	var src strings.Builder
	src.WriteString("package big\n\nimport (\n\t\"context\"\n\t\"io\"\n\t\"time\"\n)\n\n")
	src.WriteString("type Item struct {\n\tName string\n\tAt   time.Time\n}\n\nvar _ = io.EOF\n\n")
	for i := range 500 {
		fmt.Fprintf(&src, "//task:queue q%d\n//task:autoretry_for io.ErrUnexpectedEOF\n//task:retry_backoff\n", i%7)
		fmt.Fprintf(&src, "func task%d(ctx context.Context, userID int64, email string, items []Item, n uint16) (string, error) {\n\treturn email, nil\n}\n\n", i)
	}
	dir := testmodule.New(b, "big", map[string][]byte{"big/big.go": []byte(src.String())})
	cfg := generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()}
	files, errs := generator.Generate(cfg) // warm the build cache
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	b.ReportMetric(float64(len(files[0].Content))/1024, "KiB/file")
	b.ResetTimer()
	for b.Loop() {
		if _, errs := generator.Generate(cfg); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

func paths(files []generator.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

// The generated code writes codegen.DefaultRetryPolicy() for a task whose
// retry options are annotations' defaults: the two must agree.
func TestDefaults_matchCodegenRetryPolicy(t *testing.T) {
	t.Parallel()
	d, p := annotations.Defaults(), codegen.DefaultRetryPolicy()
	require.Equal(t, codegen.RetryPolicy{
		MaxRetries:   d.MaxRetries,
		Backoff:      d.RetryBackoff,
		BackoffMax:   d.RetryBackoffMax,
		Jitter:       d.RetryJitter,
		DefaultDelay: d.DefaultRetryDelay,
	}, p)
}
