//go:build reliability

package reliability_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
)

// Secrets that must never appear in a log line, an error text or a page.
const (
	amqpPassword  = "taskgen-secret" // scripts/testenv.sh's AMQP user taskgen
	redisUser     = "rel"
	redisPassword = "rel-redis-s3cret-Pw"
)

var (
	suiteDir  string // logs of every worker, producer and monitor of the suite
	workerBin string // reliability/internal/relworker, built once

	figMu   sync.Mutex
	figures []figure
)

// figure is one row of the results table printed at the end of the run
// (and written to $RELIABILITY_REPORT when set).
type figure struct {
	Scenario, Broker                  string
	Tasks, Lost, Duplicates, Surfaced int64
	Notes                             string
}

func report(t *testing.T, f figure) {
	t.Helper()
	t.Logf("FIGURE %s | %s | tasks %d | lost %d | duplicates %d | errors surfaced %d | %s", f.Scenario, f.Broker, f.Tasks, f.Lost, f.Duplicates, f.Surfaced, f.Notes)
	figMu.Lock()
	figures = append(figures, f)
	figMu.Unlock()
}

func TestMain(m *testing.M) {
	var err error
	suiteDir, err = os.MkdirTemp("", "taskgen-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(suiteDir, "relworker")
	if out, err := exec.Command("go", "build", "-o", workerBin, "./internal/relworker").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building relworker: %v\n%s", err, out)
		os.Exit(1)
	}
	if err := os.Mkdir(filepath.Join(suiteDir, "logs"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// go-redis's own log lines (pool dial failures) go to the scanned logs too.
	if f, err := os.Create(filepath.Join(suiteDir, "logs", "go-redis.log")); err == nil {
		goredis.SetLogger(redisLogger{f})
	}
	start := time.Now()
	code := m.Run()
	leaks, lines := scanSecrets(filepath.Join(suiteDir, "logs"))
	table := figureTable()
	fmt.Printf("\n%s\nsuite took %v; credential scan: %d log/error lines in %s, %d containing a password\n",
		table, time.Since(start).Round(time.Second), lines, filepath.Join(suiteDir, "logs"), len(leaks))
	if p := os.Getenv("RELIABILITY_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(table+fmt.Sprintf("\ncredential scan: %d lines, %d leaks; suite took %v\n", lines, len(leaks), time.Since(start).Round(time.Second))), 0o644)
	}
	if len(leaks) > 0 {
		fmt.Println("FAIL: credentials leaked:")
		for _, l := range leaks {
			fmt.Println("  " + l)
		}
		code = 1
	}
	if code == 0 && os.Getenv("RELIABILITY_KEEP_LOGS") == "" {
		os.RemoveAll(suiteDir)
	} else {
		fmt.Println("logs kept in", suiteDir)
	}
	os.Exit(code)
}

type redisLogger struct{ f *os.File }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(l.f, format+"\n", v...)
}

func figureTable() string {
	figMu.Lock()
	defer figMu.Unlock()
	var b strings.Builder
	b.WriteString("| scenario | broker | tasks | lost | duplicates | errors surfaced | notes |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, f := range figures {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s |\n", f.Scenario, f.Broker, f.Tasks, f.Lost, f.Duplicates, f.Surfaced, f.Notes)
	}
	return b.String()
}

// scanSecrets greps every file under dir for the suite's passwords.
func scanSecrets(dir string) (leaks []string, lines int) {
	secrets := []string{amqpPassword, redisPassword, tlsRedisPassword, monitorPassword}
	_ = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			lines++
			for _, s := range secrets {
				if bytes.Contains(sc.Bytes(), []byte(s)) {
					leaks = append(leaks, filepath.Base(path)+": "+truncate(sc.Text(), 300))
				}
			}
		}
		return nil
	})
	return leaks, lines
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// logFile opens (appending) a file of the suite's log directory.
func logFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(suiteDir, "logs", sanitize(t.Name())+"."+name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// logger returns a JSON logger writing to a suite log file, and the file
// (for error texts the test writes itself).
func logger(t *testing.T, name string, level slog.Level) (*slog.Logger, *os.File) {
	f := logFile(t, name)
	return slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level})), f
}

func sanitize(s string) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(s)
}

func randID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// privateRedis starts a private redis-server with an ACL user protected by
// redisPassword and returns the server and its URL with credentials.
func privateRedis(t *testing.T, extra ...string) (*testenv.RedisServer, string) {
	t.Helper()
	srv := testenv.NewRedisServer(t, append([]string{"user " + redisUser + " on >" + redisPassword + " ~* &* +@all"}, extra...)...)
	return srv, withUser(srv.URL(), redisUser, redisPassword)
}

func withUser(raw, user, pass string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String()
}

func withQuery(raw, q string) string {
	if strings.Contains(raw, "?") {
		return raw + "&" + q
	}
	return raw + "?" + q
}

// newApp opens an app whose logs go to the suite's log directory.
func newApp(t *testing.T, name, broker string) (*runtime.App, *os.File) {
	t.Helper()
	log, f := logger(t, name, slog.LevelInfo)
	app, err := runtime.New(runtime.Config{Broker: broker, Logger: log, Hostname: name + "-" + randID() + "@localhost", PublishTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(f, "runtime.New error:", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app, f
}

// sink is a file the tasks record to.
type sink struct{ path string }

func newSink(t *testing.T) sink {
	return sink{path: filepath.Join(t.TempDir(), "sink")}
}

// counts returns how many times each line was recorded.
func (s sink) counts() map[string]int {
	b, _ := os.ReadFile(s.path)
	c := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			c[l]++
		}
	}
	return c
}

// tally compares the sink with the expected ids: lost ids, duplicate runs.
func (s sink) tally(ids []string) (lost []string, dups int) {
	c := s.counts()
	for _, id := range ids {
		switch n := c[id]; {
		case n == 0:
			lost = append(lost, id)
		case n > 1:
			dups += n - 1
		}
	}
	return lost, dups
}

// waitAll waits until every id is recorded or the timeout passes.
func (s sink) waitAll(ids []string, timeout time.Duration) (lost []string, dups int) {
	deadline := time.Now().Add(timeout)
	for {
		lost, dups = s.tally(ids)
		if len(lost) == 0 || time.Now().After(deadline) {
			return lost, dups
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// worker is a relworker process.
type worker struct {
	cmd    *exec.Cmd
	name   string
	stdout *bytes.Buffer
	done   chan struct{}
	err    error
}

// startWorker starts relworker with env (RELIABILITY_* without the prefix).
func startWorker(t *testing.T, name string, env map[string]string) *worker {
	t.Helper()
	cmd := exec.Command(workerBin)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, "RELIABILITY_"+k+"="+env[k])
	}
	cmd.Env = append(cmd.Env, "RELIABILITY_HOSTNAME="+name+"@localhost")
	cmd.Stderr = logFile(t, "worker-"+name)
	w := &worker{cmd: cmd, name: name, stdout: new(bytes.Buffer), done: make(chan struct{})}
	cmd.Stdout = w.stdout
	require.NoError(t, cmd.Start())
	go func() { w.err = cmd.Wait(); close(w.done) }()
	t.Cleanup(func() { w.kill() })
	return w
}

func (w *worker) pid() int { return w.cmd.Process.Pid }

func (w *worker) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// stop sends SIGTERM and waits up to timeout for the exit.
func (w *worker) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		return time.Since(start), w.err
	case <-time.After(timeout):
		w.kill()
		return time.Since(start), fmt.Errorf("worker %s did not stop within %v", w.name, timeout)
	}
}

// stats parses the STATS line printed at a graceful exit.
func (w *worker) stats() string {
	for _, l := range strings.Split(w.stdout.String(), "\n") {
		if s, ok := strings.CutPrefix(l, "STATS "); ok {
			return s
		}
	}
	return ""
}

// rssKB reads VmRSS of pid from /proc.
func rssKB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// inProcessWorker runs a worker of app in the test process, recording to s,
// until the test ends.
func inProcessWorker(t *testing.T, app *runtime.App, s sink, o runtime.WorkerOptions) *runtime.Worker {
	t.Helper()
	require.NoError(t, tasks.SetSink(s.path))
	o.WithoutEvents = true
	w := app.NewWorker(o)
	tasks.RegisterTasks(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// producer publishes rel.record tasks from several goroutines until stop is
// closed, each Delay bounded by perCall; it keeps the ids whose Delay
// returned nil (confirmed) and counts the errors, writing each distinct
// error text to log.
type producer struct {
	mu        sync.Mutex
	confirmed []string
	failed    []string
	errs      int64
	texts     map[string]int
	wait      func() // returns once every publishing goroutine stopped
}

func runProducer(ctx context.Context, app *runtime.App, queue string, workers int, pace time.Duration, perCall time.Duration, stop <-chan struct{}, log *os.File) *producer {
	p := &producer{texts: map[string]int{}}
	var wg sync.WaitGroup
	stub := tasks.Record.With(runtime.WithApp(app), runtime.Queue(queue))
	for g := 0; g < workers; g++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				id := fmt.Sprintf("p%d-%d-%s", g, i, randID()[:4])
				cctx, cancel := context.WithTimeout(ctx, perCall)
				_, err := stub.Delay(cctx, id, 0)
				cancel()
				p.mu.Lock()
				if err == nil {
					p.confirmed = append(p.confirmed, id)
				} else {
					p.errs++
					p.failed = append(p.failed, id)
					if p.texts[err.Error()]++; p.texts[err.Error()] == 1 {
						fmt.Fprintf(log, "producer error: %v\n", err)
					}
				}
				p.mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				} else if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	p.wait = wg.Wait
	return p
}

func (p *producer) snapshot() (confirmed, failed []string, errs int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.confirmed...), append([]string(nil), p.failed...), p.errs
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// summary of a producer's errors, for the notes of a figure.
func (p *producer) errorKinds() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strconv.Itoa(len(p.texts)) + " distinct error texts"
}

func recordStub(app *runtime.App, queue string) tasks.RecordTask {
	return tasks.Record.With(runtime.WithApp(app), runtime.Queue(queue))
}

// readLog returns the content of a suite log file of the current test.
func readLog(t *testing.T, name string) string {
	b, _ := os.ReadFile(filepath.Join(suiteDir, "logs", sanitize(t.Name())+"."+name+".log"))
	return string(b)
}
