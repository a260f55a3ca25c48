package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestBinary builds taskctl and runs it as operators do: -h, the broker
// from TASKGEN_BROKER, -json output, and exit codes 2 and 4.
func TestBinary(t *testing.T) {
	testenv.SkipIfShort(t, "builds the binary and needs Redis")
	bin := filepath.Join(t.TempDir(), "taskctl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	exitCode := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	}

	cmd := exec.Command(bin, "-h")
	help, err := cmd.CombinedOutput()
	require.Equal(t, 0, exitCode(err))
	require.Contains(t, string(help), "Exit codes: 0 ok")

	cmd = exec.Command(bin, "nothing")
	cmd.Env = []string{"TASKGEN_BROKER=memory://"}
	_, err = cmd.CombinedOutput()
	require.Equal(t, 2, exitCode(err))

	broker := testenv.RedisURL(t) + "?global_keyprefix=taskctlbin" + driver.NewID()[:8] + ":"
	q := "bin" + driver.NewID()[:8]
	cmd = exec.Command(bin, "-json", "-timeout", "200ms", "queues", q)
	cmd.Env = []string{"TASKGEN_BROKER=" + broker}
	stdout, err := cmd.Output()
	require.Equal(t, 0, exitCode(err))
	var queues []map[string]any
	require.NoError(t, json.Unmarshal(stdout, &queues), "%s", stdout)
	require.Equal(t, q, queues[0]["name"])
	require.EqualValues(t, 0, queues[0]["ready"])

	cmd = exec.Command(bin, "call", "-queue", q, "tasks.add", "1", "2")
	cmd.Env = []string{"TASKGEN_BROKER=" + broker}
	stdout, err = cmd.Output()
	require.Equal(t, 0, exitCode(err))
	require.Regexp(t, `(?m)^ID\s+TASK\s+QUEUE\n[0-9a-f-]{36}\s+tasks\.add\s+`+q, string(stdout))

	// stdin is not a terminal (the test's /dev/null): purge needs -y.
	cmd = exec.Command(bin, "purge", q)
	cmd.Env = []string{"TASKGEN_BROKER=" + broker}
	msg, err := cmd.CombinedOutput()
	require.Equal(t, 4, exitCode(err), "%s", msg)
	require.True(t, strings.Contains(string(msg), "pass -y"), "%s", msg)
}
