// Package testenv gives taskgen's integration tests access to the Redis and
// RabbitMQ servers started by scripts/testenv.sh, which `make test` wraps
// around `go test`:
//
//	scripts/testenv.sh run -- go test -race ./...
//
// The script exports TASKGEN_* variables (see the script's header); the
// helpers here read them. When a prerequisite is missing the calling test is
// skipped, or, when the CI environment variable is non-empty, fails, so that a
// misconfigured CI job cannot pass by skipping everything.
//
// The servers are shared by every test binary of one `go test ./...` run, and
// go test runs packages in parallel. Tests that stop or restart them
// (StopRedis, RestartRabbitMQ, ...) would break tests running concurrently in
// other packages, so such tests should first call PrivateEnv, which gives the
// test its own Redis and RabbitMQ (or, for Redis alone, use NewRedisServer;
// for a Redis Sentinel deployment — master, replicas, sentinels — use
// NewRedisSentinel).
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	envRedisURL       = "TASKGEN_REDIS_URL"
	envAMQPURL        = "TASKGEN_AMQP_URL"
	envAMQPGuestURL   = "TASKGEN_AMQP_GUEST_URL"
	envPython         = "TASKGEN_PYTHON"
	envRedisStart     = "TASKGEN_REDIS_START"
	envRedisStop      = "TASKGEN_REDIS_STOP"
	envRabbitMQStart  = "TASKGEN_RABBITMQ_START"
	envRabbitMQStop   = "TASKGEN_RABBITMQ_STOP"
	envRabbitMQCtl    = "TASKGEN_RABBITMQCTL"
	envTestenvDir     = "TASKGEN_TESTENV_DIR"
	scriptTimeout     = 3 * time.Minute
	makeTestHint      = "run the tests with `make test` (it wraps them in scripts/testenv.sh run -- ...)"
	rabbitMQCtlBudget = 2 * time.Minute
)

// missing reports an unavailable prerequisite: t.Fatal when the CI
// environment variable is non-empty, t.Skip otherwise.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + "; " + makeTestHint
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is an error rather than a skip)")
	} else {
		t.Skip(msg)
	}
}

// requireEnv returns the value of the environment variable name, or reports
// it as a missing prerequisite.
func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		missing(t, "%s is not set", name)
	}
	return v
}

// RedisURL returns TASKGEN_REDIS_URL (redis://127.0.0.1:PORT/0), the
// test Redis. When it is unset the test is skipped, or fails when the CI
// environment variable is non-empty; either way the message says to run
// `make test`.
func RedisURL(t testing.TB) string {
	t.Helper()
	return requireEnv(t, envRedisURL)
}

// AMQPURL returns TASKGEN_AMQP_URL, the test RabbitMQ as user
// "taskgen" (password "taskgen-secret") on vhost "taskgen", which has all
// permissions there. Missing: skip, or fail under CI (see RedisURL).
func AMQPURL(t testing.TB) string {
	t.Helper()
	return requireEnv(t, envAMQPURL)
}

// AMQPGuestURL returns TASKGEN_AMQP_GUEST_URL, the test RabbitMQ as
// the default user guest/guest on the default vhost "/". Missing: skip, or
// fail under CI (see RedisURL).
func AMQPGuestURL(t testing.TB) string {
	t.Helper()
	return requireEnv(t, envAMQPGuestURL)
}

var pythonChecks sync.Map // interpreter path -> error (nil when celery imports)

// Python returns TASKGEN_PYTHON, a Python 3 interpreter with celery, msgpack
// and redis importable, after checking (once per process) that
// `python -c "import celery"` works. Missing variable or failing import: skip,
// or fail under CI (see RedisURL).
func Python(t testing.TB) string {
	t.Helper()
	py := requireEnv(t, envPython)
	v, ok := pythonChecks.Load(py)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, py, "-c", "import celery, msgpack, redis").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
		v, _ = pythonChecks.LoadOrStore(py, err)
	}
	if err, _ := v.(error); err != nil {
		missing(t, "%s cannot import celery/msgpack/redis: %v", py, err)
	}
	return py
}

// runScript runs the helper script named by the environment variable env and
// fails the test if it fails.
func runScript(t testing.TB, env string) {
	t.Helper()
	path := requireEnv(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s (%s) failed after %v: %v\n%s", env, path, time.Since(start).Round(time.Millisecond), err, out)
	}
	t.Logf("%s took %v", env, time.Since(start).Round(time.Millisecond))
}

// StopRedis stops the test Redis (TASKGEN_REDIS_STOP); StartRedis brings it
// back on the same port. The data is not persisted across a stop. Call
// PrivateEnv first unless you mean to disturb every package's tests. It fails
// the test on error; missing environment: skip, or fail under CI.
func StopRedis(t testing.TB) {
	t.Helper()
	runScript(t, envRedisStop)
}

// StartRedis starts the test Redis again after StopRedis
// (TASKGEN_REDIS_START), on the same port, and returns once it answers PING.
// It is a no-op when Redis is running. It fails the test on error.
func StartRedis(t testing.TB) {
	t.Helper()
	runScript(t, envRedisStart)
}

// RestartRedis runs TASKGEN_REDIS_STOP then TASKGEN_REDIS_START: clients of
// the test Redis see their connections drop and the same address come
// back, empty. It fails the test on error.
func RestartRedis(t testing.TB) {
	t.Helper()
	StopRedis(t)
	StartRedis(t)
}

// StopRabbitMQ stops the test RabbitMQ node (TASKGEN_RABBITMQ_STOP, a clean
// shutdown, typically ~1 s). Call PrivateEnv first unless you mean to disturb
// every package's tests. It fails the test on error; missing environment:
// skip, or fail under CI.
func StopRabbitMQ(t testing.TB) {
	t.Helper()
	runScript(t, envRabbitMQStop)
}

// StartRabbitMQ starts the test RabbitMQ node again after StopRabbitMQ
// (TASKGEN_RABBITMQ_START): same node name, port and data directory, so users,
// vhosts and durable queues survive. It returns once the node is fully booted
// and accepts AMQP connections (typically 5-8 s). It is a no-op when the node
// is running. It fails the test on error.
func StartRabbitMQ(t testing.TB) {
	t.Helper()
	runScript(t, envRabbitMQStart)
}

// RestartRabbitMQ stops and starts the test RabbitMQ node (see
// StopRabbitMQ and StartRabbitMQ). It fails the test on error.
func RestartRabbitMQ(t testing.TB) {
	t.Helper()
	StopRabbitMQ(t)
	StartRabbitMQ(t)
}

// RabbitMQCtl runs rabbitmqctl against the test node
// (TASKGEN_RABBITMQCTL) with args, e.g. RabbitMQCtl(t, "-q", "list_queues",
// "-p", "taskgen", "name", "messages"), and returns its standard output. Each
// call boots a CLI Erlang VM, so expect ~0.5-1 s. It fails the test on error.
func RabbitMQCtl(t testing.TB, args ...string) string {
	t.Helper()
	prefix := strings.Fields(requireEnv(t, envRabbitMQCtl))
	ctx, cancel := context.WithTimeout(context.Background(), rabbitMQCtlBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, prefix[0], append(prefix[1:], args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rabbitmqctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

// SkipIfShort skips a slow test under `go test -short`, except when the CI
// environment variable is set: CI always runs it.
func SkipIfShort(t testing.TB, reason string) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip(reason + " (not run with -short)")
	}
}

// RedisDB returns the Redis URL url pointing at database db instead of the
// one it names ("redis://host:port/0" → "redis://host:port/7").
func RedisDB(url string, db int) string {
	i := strings.LastIndex(url, "/")
	return url[:i+1] + strconv.Itoa(db)
}
