package testenv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	redisStartTimeout = 20 * time.Second
	redisStopTimeout  = 10 * time.Second
)

// RedisServer is a private redis-server process owned by one test, created
// by NewRedisServer. It listens on 127.0.0.1 on a port of its own, which
// stays the same across Stop/Start/Restart/Kill, and keeps its data directory
// (so with "appendonly yes" data survives restarts). Its methods report
// failures through the test passed to NewRedisServer, so call them from that
// test's goroutine.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	conf string   // configuration file in dir: redis.conf, or sentinel.conf
	argv []string // arguments after the configuration file ("--sentinel")
	// auth is how the probe reaches the server (requirepass, TLS).
	auth redisAuth

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
}

// NewRedisServer starts a fresh private redis-server, with its own port and
// temporary directory, for tests that need isolation or restarts; it is
// stopped (and its directory removed) by t.Cleanup.
//
// The server runs with "bind 127.0.0.1", `save ""` and "appendonly no";
// extraArgs add or override redis.conf directives, either one directive per
// argument ("appendonly yes", "appendfsync always", `save ""`) or
// redis-server command-line style ("--appendonly", "yes"): an argument
// starting with "--" and containing no space takes the following arguments
// that do not start with "--" as its values.
//
// redis-server must be on PATH; if it is not, the test is skipped, or fails
// when the CI environment variable is non-empty.
func NewRedisServer(t testing.TB, extraArgs ...string) *RedisServer {
	t.Helper()
	return newRedisServer(t, redisAuth{}, extraArgs)
}

// newRedisServer is NewRedisServer for a server reached with auth: its
// extraArgs set requirepass to auth.password (empty: none) and, when
// auth.tls is set, the TLS certificate files (the server then listens with
// TLS only).
func newRedisServer(t testing.TB, auth redisAuth, extraArgs []string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server not found on PATH")
	}
	extra := redisConfigLines(extraArgs)
	return newRedisProcess(t, redisProc{bin: bin, prefix: "redis-", conf: "redis.conf", auth: auth}, func(port int) []string {
		conf := []string{
			"# written by internal/testenv.NewRedisServer",
			"bind 127.0.0.1",
			"port " + strconv.Itoa(port),
			"dir ./",
			`save ""`,
			"appendonly no",
			"daemonize no",
			"logfile redis.log",
			"pidfile redis.pid",
		}
		return append(conf, extra...)
	})
}

// redisProc describes a process newRedisProcess starts: bin with the
// configuration file conf followed by argv, in a private directory named
// after prefix, probed as auth says (with TLS, it listens on its port with
// TLS only: "port 0", "tls-port PORT").
type redisProc struct {
	bin, prefix, conf string
	argv              []string
	auth              redisAuth
}

// redisAuth is how to reach a server: AUTH password when it is not empty,
// TLS when tls is set.
type redisAuth struct {
	password string
	tls      *tls.Config
}

// newRedisProcess starts p on a free port, its configuration file written
// from lines(port).
func newRedisProcess(t testing.TB, p redisProc, lines func(port int) []string) *RedisServer {
	t.Helper()
	bin := p.bin
	s := &RedisServer{t: t, bin: bin, dir: privateDir(t, p.prefix), conf: p.conf, argv: p.argv, auth: p.auth}
	t.Cleanup(s.cleanup)
	for attempt := 1; ; attempt++ {
		s.port = freePort(t)
		conf := lines(s.port)
		if p.auth.tls != nil {
			conf = append(conf, "port 0", "tls-port "+strconv.Itoa(s.port))
		}
		if err := os.WriteFile(filepath.Join(s.dir, p.conf), []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			t.Fatalf("testenv: writing %s: %v", p.conf, err)
		}
		err := s.start()
		if err == nil {
			return s
		}
		// Another process may have grabbed the port between freePort and
		// redis-server's bind; pick another one.
		if attempt < 3 && strings.Contains(err.Error(), "in use") {
			t.Logf("testenv: %s port %d was taken, retrying: %v", filepath.Base(bin), s.port, err)
			continue
		}
		t.Fatalf("testenv: starting %s: %v", filepath.Base(bin), err)
	}
}

// URL returns the server's URL, redis://127.0.0.1:PORT/0 (rediss:// for a
// node of a NewRedisSentinel deployment with TLS).
func (s *RedisServer) URL() string {
	if s.auth.tls != nil {
		return fmt.Sprintf("rediss://127.0.0.1:%d/0", s.port)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
}

// Addr returns the server's address, 127.0.0.1:PORT.
func (s *RedisServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *RedisServer) Port() int {
	return s.port
}

// Dir returns the server's data directory (redis.conf, redis.log, and
// appendonly/RDB files).
func (s *RedisServer) Dir() string {
	return s.dir
}

// Start starts the server again after Stop or Kill, on the same port and
// data directory, and returns once it answers PING (after loading its data).
// It is a no-op when the server is running. It fails the test on error.
func (s *RedisServer) Start() {
	s.t.Helper()
	if s.running() {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restarting redis-server on port %d: %v", s.port, err)
	}
}

// Stop shuts the server down gracefully (SIGTERM: it writes an RDB snapshot
// only if "save" points are configured, and fsyncs the AOF when enabled),
// waiting for the process to exit. It is a no-op when the server is not
// running. It fails the test if the server has to be killed.
func (s *RedisServer) Stop() {
	s.t.Helper()
	if err := s.stop(syscall.SIGTERM, redisStopTimeout); err != nil {
		s.t.Fatalf("testenv: stopping redis-server on port %d: %v", s.port, err)
	}
}

// Kill kills the server with SIGKILL, simulating a crash (nothing is
// flushed), and waits for the process to exit. It is a no-op when the server
// is not running.
func (s *RedisServer) Kill() {
	s.t.Helper()
	if err := s.stop(syscall.SIGKILL, redisStopTimeout); err != nil {
		s.t.Fatalf("testenv: killing redis-server on port %d: %v", s.port, err)
	}
}

// Restart stops the server (as Stop) and starts it again (as Start) on the
// same port and data directory.
func (s *RedisServer) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

func (s *RedisServer) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *RedisServer) start() error {
	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(s.bin, append([]string{s.conf}, s.argv...)...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(redisStartTimeout)
	var lastErr error
	for {
		pid, err := redisProbe(s.Addr(), s.auth, time.Second)
		switch {
		case err == nil && pid == cmd.Process.Pid:
			return nil
		case err == nil:
			lastErr = fmt.Errorf("port %d is answered by another redis-server (pid %d, ours is %d)", s.port, pid, cmd.Process.Pid)
		default:
			lastErr = err
		}
		select {
		case <-done:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("redis-server exited during startup (%v); %s", cmd.ProcessState, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.stop(syscall.SIGKILL, redisStopTimeout)
			return fmt.Errorf("redis-server not ready after %v: %v; %s", redisStartTimeout, lastErr, s.logTail())
		}
	}
}

func (s *RedisServer) stop(sig syscall.Signal, grace time.Duration) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(grace):
		return fmt.Errorf("redis-server (pid %d) did not exit after %v and SIGKILL", cmd.Process.Pid, sig)
	}
	return fmt.Errorf("redis-server (pid %d) ignored %v for %v and was killed", cmd.Process.Pid, sig, grace)
}

func (s *RedisServer) cleanup() {
	if err := s.stop(syscall.SIGTERM, 5*time.Second); err != nil {
		s.t.Logf("testenv: cleanup: %v", err)
	}
}

func (s *RedisServer) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "no redis.log: " + err.Error()
	}
	if o, _ := os.ReadFile(filepath.Join(s.dir, "stdout.log")); len(o) > 0 {
		b = append(b, o...)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return "redis.log:\n" + strings.Join(lines, "\n")
}

// redisProbe sends PING and, once it gets PONG (not -LOADING), INFO server,
// and returns the server's process_id, reaching it as auth says.
func redisProbe(addr string, auth redisAuth, timeout time.Duration) (int, error) {
	v, err := redisDo(addr, auth, timeout, "PING")
	if err != nil {
		return 0, fmt.Errorf("PING: %w", err)
	}
	if v != "PONG" {
		return 0, fmt.Errorf("PING answered %v", v)
	}
	v, err = redisDo(addr, auth, timeout, "INFO", "server")
	if err != nil {
		return 0, fmt.Errorf("INFO server: %w", err)
	}
	text, _ := v.(string)
	for l := range strings.SplitSeq(text, "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// redisConfigLines turns NewRedisServer's extraArgs into redis.conf lines.
func redisConfigLines(args []string) []string {
	var lines []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, flag := strings.CutPrefix(a, "--")
		if !flag || strings.ContainsAny(name, " \t") {
			lines = append(lines, name)
			continue
		}
		parts := []string{name}
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			parts = append(parts, redisQuote(args[i]))
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	return lines
}

// redisQuote quotes v as a redis.conf argument.
func redisQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago (see
// pickPorts).
func freePort(t testing.TB) int {
	t.Helper()
	ps, err := pickPorts(1)
	if err != nil {
		t.Fatalf("testenv: picking a free port: %v", err)
	}
	return ps[0]
}

// privateDir returns a fresh directory removed at the end of the test. Under
// scripts/testenv.sh it lives in $TASKGEN_TESTENV_DIR/private, so that
// "testenv.sh stop" can kill servers a crashed test binary left behind.
func privateDir(t testing.TB, prefix string) string {
	t.Helper()
	if base := os.Getenv(envTestenvDir); base != "" {
		if fi, err := os.Stat(base); err == nil && fi.IsDir() {
			p := filepath.Join(base, "private")
			if err := os.MkdirAll(p, 0o755); err == nil {
				if d, err := os.MkdirTemp(p, prefix); err == nil {
					t.Cleanup(func() { _ = os.RemoveAll(d) })
					return d
				}
			}
		}
	}
	return t.TempDir()
}
