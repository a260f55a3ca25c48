// Package testmodule builds throwaway Go modules for the generator's tests:
// a module example.com/<name> requiring github.com/taskgen/taskgen, replaced
// by the repository's working tree, that builds offline from the module cache.
package testmodule

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Env returns the environment for the go command in a test module: offline
// (GOPROXY=off, the module cache must be warm), allowed to complete go.mod
// and go.sum (-mod=mod), outside any workspace.
func Env() []string {
	return append(os.Environ(),
		"GOFLAGS=-mod=mod -buildvcs=false",
		"GOPROXY=off",
		"GOSUMDB=off",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
	)
}

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// RepoRoot returns the directory of the taskgen module, found upwards from
// the current directory.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.HasPrefix(data, []byte("module github.com/taskgen/taskgen\n")) {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("module github.com/taskgen/taskgen not found above the current directory")
				return
			}
			dir = parent
		}
	})
	return root, rootErr
}

// New writes files (paths relative to the module root) into a new temporary
// module example.com/<name> and returns its directory. A go.mod among files
// replaces the default one.
func New(tb testing.TB, name string, files map[string][]byte) string {
	tb.Helper()
	repo, err := RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		tb.Fatal(err)
	}
	mod := "module example.com/" + name + "\n\ngo 1.26\n\nrequire github.com/taskgen/taskgen v0.0.0\n\nreplace github.com/taskgen/taskgen => " + repo + "\n"
	all := map[string][]byte{"go.mod": []byte(mod), "go.sum": sum}
	for path, data := range files {
		all[path] = data
	}
	for path, data := range all {
		full := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// Go runs the go command with args in dir and returns its combined output.
func Go(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
