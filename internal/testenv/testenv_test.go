package testenv_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/taskgen/taskgen/internal/testenv"
)

// ---- raw protocol helpers (stdlib only) ---------------------------------------------

// redisDo sends one command in RESP and returns the first reply line
// (without CRLF) and, for bulk strings, the payload.
func redisDo(t *testing.T, addr string, args ...string) string {
	t.Helper()
	reply, err := tryRedisDo(addr, args...)
	if err != nil {
		t.Fatalf("redis %s at %s: %v", strings.Join(args, " "), addr, err)
	}
	return reply
}

func tryRedisDo(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if strings.HasPrefix(line, "$") && line != "$-1" {
		var n int
		if _, err := fmt.Sscanf(line, "$%d", &n); err != nil {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

func redisAddr(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "redis" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Fatalf("bad redis URL %q (err %v)", rawURL, err)
	}
	return u.Host
}

// amqpConnectionStart opens a TCP connection, sends the AMQP 0-9-1 protocol
// header and checks that the broker answers with a Connection.Start method
// frame.
func amqpConnectionStart(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "AMQP\x00\x00\x09\x01"); err != nil {
		return err
	}
	var hdr [7]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("reading frame header: %w", err)
	}
	if hdr[0] != 1 {
		return fmt.Errorf("frame type %d, want 1 (method); header % x", hdr[0], hdr)
	}
	if ch := binary.BigEndian.Uint16(hdr[1:3]); ch != 0 {
		return fmt.Errorf("channel %d, want 0", ch)
	}
	size := binary.BigEndian.Uint32(hdr[3:7])
	if size < 4 || size > 1<<20 {
		return fmt.Errorf("implausible frame size %d", size)
	}
	payload := make([]byte, size+1)
	if _, err := io.ReadFull(c, payload); err != nil {
		return fmt.Errorf("reading frame payload: %w", err)
	}
	if end := payload[size]; end != 0xCE {
		return fmt.Errorf("frame end %#x, want 0xce", end)
	}
	class, method := binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4])
	if class != 10 || method != 10 {
		return fmt.Errorf("method %d.%d, want 10.10 (connection.start)", class, method)
	}
	return nil
}

func amqpAddr(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "amqp" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Fatalf("bad AMQP URL %q (err %v)", rawURL, err)
	}
	return u.Host
}

// ---- missing prerequisites: skip, or fail under CI ------------------------------------

// fakeTB records Skip/Fatal instead of acting on them.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) { f.Skip(fmt.Sprintf(format, args...)) }
func (f *fakeTB) SkipNow()                         { f.Skip() }
func (f *fakeTB) Fatal(args ...any) {
	f.failed, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) FailNow()                          { f.Fatal() }

func runFake(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestMissingPrerequisites(t *testing.T) {
	cases := []struct {
		name string
		env  string
		fn   func(testing.TB)
	}{
		{"RedisURL", "TASKGEN_REDIS_URL", func(tb testing.TB) { testenv.RedisURL(tb) }},
		{"AMQPURL", "TASKGEN_AMQP_URL", func(tb testing.TB) { testenv.AMQPURL(tb) }},
		{"AMQPGuestURL", "TASKGEN_AMQP_GUEST_URL", func(tb testing.TB) { testenv.AMQPGuestURL(tb) }},
		{"Python", "TASKGEN_PYTHON", func(tb testing.TB) { testenv.Python(tb) }},
		{"RestartRedis", "TASKGEN_REDIS_STOP", func(tb testing.TB) { testenv.RestartRedis(tb) }},
		{"StartRedis", "TASKGEN_REDIS_START", func(tb testing.TB) { testenv.StartRedis(tb) }},
		{"StopRabbitMQ", "TASKGEN_RABBITMQ_STOP", func(tb testing.TB) { testenv.StopRabbitMQ(tb) }},
		{"StartRabbitMQ", "TASKGEN_RABBITMQ_START", func(tb testing.TB) { testenv.StartRabbitMQ(tb) }},
		{"RabbitMQCtl", "TASKGEN_RABBITMQCTL", func(tb testing.TB) { testenv.RabbitMQCtl(tb, "status") }},
		{"NewRedisServer", "PATH", func(tb testing.TB) { testenv.NewRedisServer(tb) }},
		{"PrivateEnv", "TASKGEN_TESTENV_SCRIPT", func(tb testing.TB) { testenv.PrivateEnv(tb) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.env, "")
			t.Chdir(t.TempDir()) // outside the module: PrivateEnv cannot find scripts/testenv.sh
			t.Setenv("CI", "")
			f := runFake(t, tc.fn)
			if !f.skipped || f.failed {
				t.Errorf("without CI: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
			}
			if !strings.Contains(f.msg, "make test") {
				t.Errorf("skip message %q does not mention `make test`", f.msg)
			}
			t.Setenv("CI", "true")
			f = runFake(t, tc.fn)
			if !f.failed || f.skipped {
				t.Errorf("with CI=true: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
			}
			if !strings.Contains(f.msg, "make test") {
				t.Errorf("failure message %q does not mention `make test`", f.msg)
			}
		})
	}
}

func TestPythonBadInterpreter(t *testing.T) {
	t.Setenv("TASKGEN_PYTHON", "/bin/false")
	t.Setenv("CI", "")
	if f := runFake(t, func(tb testing.TB) { testenv.Python(tb) }); !f.skipped {
		t.Errorf("Python with an interpreter that cannot import celery: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
	}
}

// ---- private Redis --------------------------------------------------------------------

func TestNewRedisServer(t *testing.T) {
	s := testenv.NewRedisServer(t)
	addr := redisAddr(t, s.URL())
	if want := fmt.Sprintf("127.0.0.1:%d", s.Port()); addr != want || s.Addr() != want {
		t.Fatalf("URL %s / Addr %s do not match Port %d", s.URL(), s.Addr(), s.Port())
	}
	if got := redisDo(t, addr, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	if got := redisDo(t, addr, "SET", "k", "v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}

	start := time.Now()
	s.Restart()
	t.Logf("Restart took %v", time.Since(start))
	if got := redisDo(t, addr, "PING"); got != "+PONG" {
		t.Fatalf("PING after Restart = %q", got)
	}
	if got := redisDo(t, addr, "GET", "k"); got != "$-1" {
		t.Errorf("GET k after Restart without persistence = %q, want nil", got)
	}

	s.Kill()
	if _, err := tryRedisDo(addr, "PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	s.Kill() // no-op
	s.Stop() // no-op
	s.Start()
	if got := redisDo(t, addr, "PING"); got != "+PONG" {
		t.Fatalf("PING after Kill+Start = %q", got)
	}
	s.Start() // no-op while running
	s.Stop()
	if _, err := tryRedisDo(addr, "PING"); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
}

func TestNewRedisServerAppendOnlySurvivesKill(t *testing.T) {
	s := testenv.NewRedisServer(t, "appendonly yes", "appendfsync always")
	addr := s.Addr()
	if got := redisDo(t, addr, "SET", "k", "persisted"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Kill()
	s.Start()
	if got := redisDo(t, addr, "GET", "k"); got != "persisted" {
		t.Fatalf("GET k after Kill+Start with appendonly = %q, want %q", got, "persisted")
	}
}

func TestNewRedisServerArgvStyle(t *testing.T) {
	s := testenv.NewRedisServer(t, "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "900 1")
	// CONFIG GET name replies *2 $len name $len value.
	checkConfig := func(name, want string) {
		t.Helper()
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(name), name)
		r := bufio.NewReader(c)
		var lines []string
		for len(lines) < 5 {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, strings.TrimSuffix(l, "\r\n"))
		}
		if lines[4] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", name, lines[4], want)
		}
	}
	checkConfig("appendonly", "yes")
	checkConfig("maxmemory-policy", "noeviction")
	checkConfig("save", "900 1")
}

// ---- shared servers from scripts/testenv.sh -------------------------------------------

func TestSharedRedis(t *testing.T) {
	addr := redisAddr(t, testenv.RedisURL(t))
	if got := redisDo(t, addr, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
}

func TestAMQPConnectionStart(t *testing.T) {
	for _, u := range []string{testenv.AMQPURL(t), testenv.AMQPGuestURL(t)} {
		if err := amqpConnectionStart(amqpAddr(t, u)); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	u, _ := url.Parse(testenv.AMQPURL(t))
	if pw, _ := u.User.Password(); u.User.Username() != "taskgen" || pw != "taskgen-secret" || u.Path != "/taskgen" {
		t.Errorf("AMQPURL = %s, want user taskgen:taskgen-secret and vhost taskgen", u.Redacted())
	}
}

func TestRabbitMQCtlUsersAndVhost(t *testing.T) {
	users := testenv.RabbitMQCtl(t, "-q", "list_users")
	if !strings.Contains(users, "taskgen") || !strings.Contains(users, "guest") {
		t.Errorf("list_users:\n%s", users)
	}
	if vhosts := testenv.RabbitMQCtl(t, "-q", "list_vhosts"); !strings.Contains(vhosts, "taskgen") {
		t.Errorf("list_vhosts:\n%s", vhosts)
	}
	perms := testenv.RabbitMQCtl(t, "-q", "list_permissions", "-p", "taskgen")
	if !strings.Contains(perms, "taskgen\t.*\t.*\t.*") {
		t.Errorf("list_permissions -p taskgen:\n%s", perms)
	}
	testenv.RabbitMQCtl(t, "authenticate_user", "taskgen", "taskgen-secret")
}

// TestPythonClients checks that Celery's own stack (kombu + py-amqp, redis-py)
// can log in with the URLs the environment hands out.
func TestPythonClients(t *testing.T) {
	py := testenv.Python(t)
	script := `
import sys, kombu, redis
with kombu.Connection(sys.argv[1], connect_timeout=5) as c:
    c.connect()
    q = kombu.Queue("testenv-py", channel=c.default_channel, auto_delete=True)
    q.declare()
assert redis.Redis.from_url(sys.argv[2]).ping()
print("ok")
`
	out, err := exec.Command(py, "-c", script, testenv.AMQPURL(t), testenv.RedisURL(t)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python clients: %v\n%s", err, out)
	}
}

// TestPrivateEnvRestarts exercises the stop/start/restart helpers. It does so
// on a private environment, so that the shared servers other packages are
// using at the same time are left alone.
func TestPrivateEnvRestarts(t *testing.T) {
	sharedAMQP := amqpAddr(t, testenv.AMQPURL(t))
	sharedRedis := redisAddr(t, testenv.RedisURL(t))
	testenv.PrivateEnv(t)
	amqp := amqpAddr(t, testenv.AMQPURL(t))
	redis := redisAddr(t, testenv.RedisURL(t))
	if amqp == sharedAMQP || redis == sharedRedis {
		t.Fatalf("PrivateEnv did not switch servers: AMQP %s, Redis %s", amqp, redis)
	}

	t.Run("Redis", func(t *testing.T) {
		if got := redisDo(t, redis, "SET", "k", "v"); got != "+OK" {
			t.Fatalf("SET = %q", got)
		}
		testenv.StopRedis(t)
		if _, err := tryRedisDo(redis, "PING"); err == nil {
			t.Fatal("PING succeeded after StopRedis")
		}
		if got := redisDo(t, sharedRedis, "PING"); got != "+PONG" {
			t.Fatalf("shared Redis disturbed: PING = %q", got)
		}
		testenv.StopRedis(t) // idempotent
		testenv.StartRedis(t)
		if got := redisDo(t, redis, "PING"); got != "+PONG" {
			t.Fatalf("PING after StartRedis = %q", got)
		}
		testenv.StartRedis(t) // no-op while running
		testenv.RestartRedis(t)
		if got := redisDo(t, redis, "PING"); got != "+PONG" {
			t.Fatalf("PING after RestartRedis = %q", got)
		}
	})

	t.Run("RabbitMQ", func(t *testing.T) {
		start := time.Now()
		testenv.RestartRabbitMQ(t)
		t.Logf("RestartRabbitMQ took %v", time.Since(start).Round(time.Millisecond))
		if err := amqpConnectionStart(amqp); err != nil {
			t.Fatalf("after RestartRabbitMQ: %v", err)
		}
		if users := testenv.RabbitMQCtl(t, "-q", "list_users"); !strings.Contains(users, "taskgen") {
			t.Errorf("user taskgen lost across restart:\n%s", users)
		}

		testenv.StopRabbitMQ(t)
		if err := amqpConnectionStart(amqp); err == nil {
			t.Fatal("AMQP handshake succeeded after StopRabbitMQ")
		}
		if err := amqpConnectionStart(sharedAMQP); err != nil {
			t.Fatalf("shared RabbitMQ disturbed: %v", err)
		}
		testenv.StopRabbitMQ(t) // idempotent
		testenv.StartRabbitMQ(t)
		if err := amqpConnectionStart(amqp); err != nil {
			t.Fatalf("after StartRabbitMQ: %v", err)
		}
		testenv.StartRabbitMQ(t) // no-op while running
	})
}
