package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const envTestenvScript = "TASKGEN_TESTENV_SCRIPT"

var envLine = regexp.MustCompile(`^export (TASKGEN_[A-Z0-9_]+)=([A-Za-z0-9@%+=:,./_-]*)$`)

// PrivateEnv starts a private Redis + RabbitMQ environment with
// `scripts/testenv.sh start` (about 10 s, plus ~2-3 s to stop it at
// cleanup) and points every TASKGEN_* variable at it for the rest of the test
// via t.Setenv, so that RedisURL, AMQPURL, RestartRabbitMQ, RabbitMQCtl and
// friends all act on the private servers. Use it in tests that stop or
// restart servers, so that other tests and packages sharing the environment
// of `make test` are not disturbed. Like t.Setenv it cannot be used in
// parallel tests or tests with parallel ancestors.
//
// The script is found through TASKGEN_TESTENV_SCRIPT or by walking up from
// the working directory to the module root. Missing script, bash,
// redis-server or rabbitmq-server: skip, or fail under CI (see RedisURL).
func PrivateEnv(t testing.TB) {
	t.Helper()
	script := testenvScript()
	if script == "" {
		missing(t, "scripts/testenv.sh not found (TASKGEN_TESTENV_SCRIPT unset and no go.mod above %s)", mustGetwd())
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		missing(t, "bash not found on PATH")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(t, "redis-server not found on PATH")
	}
	if !haveRabbitMQ() {
		missing(t, "rabbitmq-server is not installed")
	}

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bash, script, "start")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: %s start: %v\n%s", script, err, stderr.Bytes())
	}
	envFile := strings.TrimSpace(stdout.String())
	dir := filepath.Dir(envFile)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
		defer cancel()
		if out, err := exec.CommandContext(ctx, bash, script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("testenv: %s stop %s: %v\n%s", script, dir, err, out)
		}
	})
	t.Logf("testenv: private environment %s started in %v", dir, time.Since(start).Round(time.Millisecond))

	vars, err := readEnvFile(envFile)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for _, kv := range vars {
		t.Setenv(kv[0], kv[1])
	}
}

// readEnvFile parses the export lines written by scripts/testenv.sh start.
func readEnvFile(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vars [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := envLine.FindStringSubmatch(line)
		if m == nil {
			return nil, errors.New(path + ": unexpected line " + line)
		}
		vars = append(vars, [2]string{m[1], m[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(vars) == 0 {
		return nil, errors.New(path + ": no variables")
	}
	return vars, nil
}

// testenvScript returns the path of scripts/testenv.sh, or "".
func testenvScript() string {
	if p := os.Getenv(envTestenvScript); p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	dir := mustGetwd()
	for dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "scripts", "testenv.sh")
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

func haveRabbitMQ() bool {
	if _, err := os.Stat("/usr/lib/rabbitmq/bin/rabbitmq-server"); err == nil {
		return true
	}
	_, err := exec.LookPath("rabbitmq-server")
	return err == nil
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	return wd
}
