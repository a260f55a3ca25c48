package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/generator/model"
)

// The go:generate line is split so that go generate, which matches lines
// textually, does not take it for a directive of this package.
const tasksSrc = `package jobs

import "context"

//go:` + `generate taskgen

//task:queue q
func resize(ctx context.Context, url string, width int) (string, error) { return url, nil }
`

// inModule creates the module example.com/cli holding files, requiring
// taskgen (replaced by this working tree), makes it the current directory
// and sets the go command's environment to work offline. Tests using it
// cannot be parallel.
func inModule(t *testing.T, files map[string]string) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)
	dir := t.TempDir()
	files["go.mod"] = "module example.com/cli\n\ngo 1.26\n\nrequire github.com/taskgen/taskgen v0.0.0\n\nreplace github.com/taskgen/taskgen => " + repo + "\n"
	files["go.sum"] = string(sum)
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(data), 0o644))
	}
	for k, v := range map[string]string{
		"GOFLAGS": "-mod=mod -buildvcs=false", "GOPROXY": "off", "GOSUMDB": "off", "GOWORK": "off", "GOTOOLCHAIN": "local",
	} {
		t.Setenv(k, v)
	}
	t.Chdir(dir)
	return dir
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRun_usage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"-bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{"bad -o", []string{"-o", "sub/x.go"}, exitUsage, "must be a file name"},
		{"test file -o", []string{"-o", "x_test.go"}, exitUsage, "must not be a test file"},
		{"check and dump", []string{"-check", "-dump"}, exitUsage, "cannot be combined"},
		{"help", []string{"-h"}, exitOK, "usage: taskgen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(tc.args...)
			require.Equal(t, tc.code, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, tc.want)
		})
	}
}

func TestRun_generateAndCheck(t *testing.T) {
	dir := inModule(t, map[string]string{"jobs/jobs.go": tasksSrc})
	gen := filepath.Join(dir, "jobs", "tasks_gen.go")

	code, _, stderr := run("-check", "./...")
	require.Equal(t, exitError, code)
	require.Equal(t, staleMessage+"\n\tjobs/tasks_gen.go\n", stderr, "missing file")

	t.Chdir(filepath.Join(dir, "jobs")) // as go generate does
	code, _, stderr = run("-v")
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "wrote tasks_gen.go\n", stderr)
	require.FileExists(t, gen)

	code, _, stderr = run("-check")
	require.Equal(t, exitOK, code, stderr)
	require.Empty(t, stderr)

	code, _, stderr = run("-v")
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "unchanged tasks_gen.go\n", stderr)

	// The task changes; the generated file is now stale.
	src := strings.Replace(tasksSrc, "width int", "width, height int", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs", "jobs.go"), []byte(src), 0o644))
	code, _, stderr = run("-check")
	require.Equal(t, exitError, code)
	require.Equal(t, staleMessage+"\n\ttasks_gen.go\n", stderr)

	code, _, stderr = run()
	require.Equal(t, exitOK, code, stderr)
	code, _, _ = run("-check")
	require.Equal(t, exitOK, code)

	// No task left: the generated file is left over, then removed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs", "jobs.go"), []byte("package jobs\n"), 0o644))
	code, _, stderr = run("-check")
	require.Equal(t, exitError, code)
	require.Equal(t, staleMessage+"\n\ttasks_gen.go\n", stderr)
	code, _, stderr = run("-v")
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, "removed tasks_gen.go\n", stderr)
	require.NoFileExists(t, gen)
}

func TestRun_errors(t *testing.T) {
	inModule(t, map[string]string{"jobs/jobs.go": `package jobs

import "context"

//task:queue q
//task:retries 3
func Resize(ctx context.Context, ch chan int) error { return nil }
`})
	code, stdout, stderr := run("./...")
	require.Equal(t, exitError, code)
	require.Empty(t, stdout)
	require.Equal(t, `jobs/jobs.go:6:8: task Resize: unknown option "retries" (did you mean max_retries?)
jobs/jobs.go:7:6: task Resize: the task function is exported: unexport it (resize); the generated stub takes the exported name Resize
jobs/jobs.go:7:34: task Resize: parameter ch has type chan int: channels cannot be sent to another process
`, stderr)
	require.NoFileExists(t, "jobs/tasks_gen.go")

	code, _, stderr = run("./missing")
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "taskgen: ")
}

func TestRun_dump(t *testing.T) {
	inModule(t, map[string]string{"jobs/jobs.go": tasksSrc})
	code, stdout, stderr := run("-dump", "./jobs")
	require.Equal(t, exitOK, code, stderr)
	var pkgs []model.Package
	require.NoError(t, json.Unmarshal([]byte(stdout), &pkgs))
	require.Len(t, pkgs, 1)
	require.Equal(t, "example.com/cli/jobs", pkgs[0].Path)
	require.Equal(t, "jobs.resize", pkgs[0].Tasks[0].CeleryName)
	require.Equal(t, "q", pkgs[0].Tasks[0].Options.Queue)
	require.NoFileExists(t, "jobs/tasks_gen.go", "-dump writes nothing")
}

func TestRun_output(t *testing.T) {
	inModule(t, map[string]string{"jobs/jobs.go": tasksSrc})
	code, _, stderr := run("-o", "stubs_gen.go", "./...")
	require.Equal(t, exitOK, code, stderr)
	require.FileExists(t, "jobs/stubs_gen.go")
	require.NoFileExists(t, "jobs/tasks_gen.go")
}
