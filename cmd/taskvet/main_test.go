package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// goEnv is the go command's environment for a test module: offline, allowed
// to complete go.mod, outside any workspace.
func goEnv() []string {
	return append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
}

// buildTaskvet builds this command into a temporary directory.
func buildTaskvet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "taskvet")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// writeModule writes a module example.com/m without dependencies holding
// files, and returns its directory.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module example.com/m\n\ngo 1.26\n"
	for rel, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(data), 0o644))
	}
	return dir
}

const goodTasks = `package signup

import "context"

//task:queue emails
func sendWelcomeEmail(ctx context.Context, email string) (string, error) { return email, nil }
`

const badTasks = `package signup

import "context"

//task:retry_backof
func sendWelcomeEmail(ctx context.Context, email string, done chan int) (string, error) { return email, nil }
`

// run runs name with args in dir and returns its combined output and exit
// code.
func run(t *testing.T, dir, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err, "%s", out)
	return string(out), 0
}

// TestMain_goVet runs the built command as go vet's -vettool on a module.
func TestMain_goVet(t *testing.T) {
	t.Parallel()
	bin := buildTaskvet(t)
	t.Run("bad", func(t *testing.T) {
		t.Parallel()
		dir := writeModule(t, map[string]string{"signup/tasks.go": badTasks})
		out, code := run(t, dir, "go", "vet", "-vettool="+bin, "./...")
		require.NotEqual(t, 0, code, "%s", out)
		require.Contains(t, out, "signup/tasks.go:5:8: task sendWelcomeEmail: unknown option \"retry_backof\" (did you mean retry_backoff?)\n")
		require.Contains(t, out, "signup/tasks.go:6:58: task sendWelcomeEmail: parameter done has type chan int: channels cannot be sent to another process\n")
	})
	t.Run("good", func(t *testing.T) {
		t.Parallel()
		dir := writeModule(t, map[string]string{"signup/tasks.go": goodTasks})
		out, code := run(t, dir, "go", "vet", "-vettool="+bin, "./...")
		require.Equal(t, 0, code, "%s", out)
		require.Empty(t, out)
	})
}

// TestMain_standalone runs the built command on its own, loading the
// packages itself.
func TestMain_standalone(t *testing.T) {
	t.Parallel()
	bin := buildTaskvet(t)
	dir := writeModule(t, map[string]string{"signup/tasks.go": badTasks, "other/other.go": "package other\n"})
	out, code := run(t, dir, bin, "./...")
	require.Equal(t, 3, code, "%s", out)
	require.Contains(t, out, filepath.Join(dir, "signup", "tasks.go")+":5:8: task sendWelcomeEmail: unknown option")

	dir = writeModule(t, map[string]string{"signup/tasks.go": goodTasks})
	out, code = run(t, dir, bin, "./...")
	require.Equal(t, 0, code, "%s", out)
	require.Empty(t, out)
}
