package all_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/redis"
)

// The tests of this package run every app-level test of events and remote
// control once per broker (see brokers): a Go worker inspected, controlled
// and watched by Go and Python (Celery 5.2.6, kombu 5.2.4) clients, and a
// Python worker watched by a Go client. The transports' wire-level tests
// stay in runtime/redis and runtime/amqp.

// testEnv is one test's view of a broker.
type testEnv struct {
	url     string // broker URL
	backend string // result backend URL, shared by the test's apps
	queue   string // queue of the test's tasks and workers; "" for Celery's default
}

// queues returns WorkerOptions.Queues for the test's workers.
func (e testEnv) queues() []string {
	if e.queue == "" {
		return nil
	}
	return []string{e.queue}
}

// queueName returns the name active_queues reports for the test's queue.
func (e testEnv) queueName() string {
	if e.queue == "" {
		return "celery"
	}
	return e.queue
}

// broker is a broker the shared tests run against, and what differs
// between brokers.
type broker struct {
	name string
	// goEnv returns the environment of a test whose clients are all Go.
	goEnv func(t *testing.T) testEnv
	// pyEnv returns the environment of a test with Python clients or
	// workers; db is the Redis database (kombu puts it in channel names),
	// unused by RabbitMQ.
	pyEnv func(t *testing.T, db int) testEnv
	// isolated: the test's worker is the only one that answers a broadcast
	// (Redis: a key prefix or a server of the test's own); otherwise other
	// tests' workers share the broker (RabbitMQ: the shared vhost).
	isolated bool
	// transport is what a worker's stats report as broker.transport.
	transport string
	// pyTaskMulti: a Celery worker's task events always come as task.multi
	// lists (Redis); otherwise they often do, which is only logged.
	pyTaskMulti bool
	// goRepliesGone checks, after a Go client's inspections, that the
	// broker keeps no reply binding of it (nil: nothing to check).
	goRepliesGone func(t *testing.T, ctx context.Context, app *runtime.App)
	// pyRepliesGone checks, after Celery's CLI inspected and controlled a
	// Go worker, that the Python client left no reply binding nor reply
	// queue behind (nil: nothing to check).
	pyRepliesGone func(t *testing.T, ctx context.Context, app *runtime.App)
}

var brokers = []broker{
	{
		name: "redis",
		// Go-only tests share the test Redis, each with a global_keyprefix
		// of its own (channels are prefixed too); Python knows no key
		// prefix, so tests with Python get a private redis-server.
		goEnv: func(t *testing.T) testEnv {
			raw := testenv.RedisURL(t) + "?global_keyprefix=t" + randHex(4) + ":"
			return testEnv{url: raw, backend: raw}
		},
		pyEnv: func(t *testing.T, db int) testEnv {
			raw := testenv.RedisDB(testenv.NewRedisServer(t).URL(), db)
			return testEnv{url: raw, backend: raw}
		},
		isolated:    true,
		transport:   "redis",
		pyTaskMulti: true,
		goRepliesGone: func(t *testing.T, ctx context.Context, app *runtime.App) {
			b := app.Broker().(*redis.Broker)
			require.Eventually(t, func() bool {
				return b.Client().SCard(ctx, b.Options().GlobalKeyPrefix+"_kombu.binding.reply.celery.pidbox").Val() == 0
			}, 5*time.Second, 20*time.Millisecond)
		},
		pyRepliesGone: func(t *testing.T, ctx context.Context, app *runtime.App) {
			b := app.Broker().(*redis.Broker)
			c := b.Client()
			require.Zero(t, c.SCard(ctx, b.Options().GlobalKeyPrefix+"_kombu.binding.reply.celery.pidbox").Val())
			keys, err := c.Keys(ctx, "*reply.celery.pidbox*").Result()
			require.NoError(t, err)
			require.Empty(t, keys)
		},
	},
	{
		name: "amqp",
		// Every test shares the test vhost (and with other packages' tests):
		// tests tell their own traffic apart by queue and node names,
		// tickets and hostname headers unique to the test.
		goEnv:     amqpEnv,
		pyEnv:     func(t *testing.T, _ int) testEnv { return amqpEnv(t) },
		transport: "amqp",
	},
}

// amqpEnv is a test's environment on the shared RabbitMQ vhost: a queue of
// its own (deleted when the test ends) and a memory:// result backend.
func amqpEnv(t *testing.T) testEnv {
	raw := testenv.AMQPURL(t)
	q := queueName(t)
	purgeLater(t, raw, q)
	return testEnv{url: raw, backend: "memory://" + queueName(t), queue: q}
}

// forEachBroker runs test as a parallel subtest per broker.
func forEachBroker(t *testing.T, test func(t *testing.T, bk broker)) {
	for _, bk := range brokers {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			test(t, bk)
		})
	}
}

// requirePong checks the replies to a broadcast ping: node answers pong,
// and on an isolated broker nobody else answers.
func (bk broker) requirePong(t testing.TB, replies map[string]any, node string) {
	t.Helper()
	if bk.isolated {
		require.Equal(t, map[string]any{node: map[string]any{"ok": "pong"}}, replies)
	} else {
		require.Equal(t, map[string]any{"ok": "pong"}, replies[node])
	}
}

// addArgs is what taskgen generates for func add(ctx, x, y, z int) int.
type addArgs struct{ x, y, z int64 }

var addArgsNames = codegen.ArgNames{{"x"}, {"y"}, {"z"}}

func (*addArgs) ArgNames() codegen.ArgNames { return addArgsNames }
func (a *addArgs) EncodeArgs(w codegen.ArgWriter) error {
	w.Int(a.x)
	w.Int(a.y)
	w.Int(a.z)
	return nil
}
func (a *addArgs) DecodeArg(i int, r codegen.ArgReader) (err error) {
	switch i {
	case 0:
		a.x, err = r.Int(64)
	case 1:
		a.y, err = r.Int(64)
	case 2:
		a.z, err = r.Int(64)
	}
	return err
}

// addDef is tasks.add on queue ("": the default); run nil adds x, y and z.
func addDef(queue string, run func(ctx context.Context, a *addArgs) (any, error)) *codegen.TaskDef {
	if run == nil {
		run = func(ctx context.Context, a *addArgs) (any, error) { return a.x + a.y + a.z, nil }
	}
	return &codegen.TaskDef{Name: "tasks.add", Queue: queue, Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run:     func(ctx context.Context, a codegen.Args) (any, error) { return run(ctx, a.(*addArgs)) }}
}

// slowDef is a task that reports its start and runs until its ctx ends.
func slowDef(queue string, started chan<- string) *codegen.TaskDef {
	return &codegen.TaskDef{Name: "tasks.slow", Queue: queue, Retry: codegen.DefaultRetryPolicy(),
		NewArgs: func() codegen.Args { return new(addArgs) },
		Run: func(ctx context.Context, a codegen.Args) (any, error) {
			info, _ := runtime.TaskFromContext(ctx)
			started <- info.ID
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// queueName returns a queue name unique to the test run.
func queueName(t testing.TB) string {
	return "tg." + strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-") + "." + randHex(4)
}

// nodeName returns a worker node name unique to the test run.
func nodeName(t testing.TB, prefix string) string {
	return prefix + "-" + strings.ReplaceAll(queueName(t), ".", "-") + "@taskgen-test"
}

// purgeLater deletes the test's RabbitMQ queues when it ends.
func purgeLater(t testing.TB, raw string, queues ...string) {
	t.Cleanup(func() {
		conn, err := amqp091.Dial(raw)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, q := range queues {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.ExchangeDelete(q, false, false)
		}
	})
}

// testLogger shows warnings and errors only.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// newApp returns an app on the test's broker and result backend.
func newApp(t testing.TB, e testEnv) *runtime.App {
	t.Helper()
	app, err := runtime.New(runtime.Config{Broker: e.url, Backend: e.backend, Serializer: "json", PublishTimeout: 20 * time.Second, Logger: testLogger})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	return app
}

// runWorker runs a worker until the test ends; it must then stop cleanly.
func runWorker(t testing.TB, app *runtime.App, o runtime.WorkerOptions, defs ...*codegen.TaskDef) *runtime.Worker {
	t.Helper()
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 2 * time.Second
	}
	w := app.NewWorker(o)
	for _, d := range defs {
		w.Register(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return w
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitPing waits until app's Inspect("ping") is answered by node.
func waitPing(t testing.TB, ctx context.Context, app *runtime.App, node string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, err := app.Inspect(ctx, "ping", nil, 300*time.Millisecond)
		return err == nil && r[node] != nil
	}, 15*time.Second, 10*time.Millisecond)
}

// ---- events ----

// eventLog collects the events of one hostname from a subscription.
type eventLog struct {
	mu     sync.Mutex
	events []map[string]any
	msgs   []*driver.RawMessage
	wake   chan struct{}
}

// decodeEvents returns the events of one message: a JSON object, or a list
// of them ("task.multi").
func decodeEvents(t testing.TB, m *driver.RawMessage) []map[string]any {
	body := bytes.TrimSpace(m.Body)
	if len(body) > 0 && body[0] == '[' {
		var list []map[string]any
		if json.Unmarshal(body, &list) != nil {
			t.Errorf("bad event list: %s", body)
		}
		return list
	}
	var ev map[string]any
	if json.Unmarshal(body, &ev) != nil {
		t.Errorf("bad event: %s", body)
	}
	return []map[string]any{ev}
}

func collectEvents(t testing.TB, ch <-chan *driver.RawMessage, hostname string) *eventLog {
	l := &eventLog{wake: make(chan struct{}, 1)}
	go func() {
		for m := range ch {
			if m.Headers["hostname"] != hostname {
				continue
			}
			evs := decodeEvents(t, m)
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.events = append(l.events, evs...)
			l.mu.Unlock()
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// wait returns the first event of type typ matching match (nil: any).
func (l *eventLog) wait(t testing.TB, typ string, within time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		l.mu.Lock()
		var types []any
		for _, ev := range l.events {
			if ev["type"] == typ && (match == nil || match(ev)) {
				l.mu.Unlock()
				return ev
			}
			types = append(types, ev["type"])
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s event within %v; got %v", typ, within, types)
		}
	}
}

func (l *eventLog) messages() []*driver.RawMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*driver.RawMessage(nil), l.msgs...)
}

// ---- Python ----

// runPython runs py with args and returns its combined output.
func runPython(t testing.TB, within time.Duration, py string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	return string(out), err
}

// celeryJSON runs `celery -b <url> <args> --json` and decodes the JSON line
// it prints: an object (inspect) or a list of one-key objects (control).
func celeryJSON(t testing.TB, py, url string, args ...string) map[string]any {
	t.Helper()
	cmd := append([]string{"-m", "celery", "-b", url}, args...)
	out, err := runPython(t, time.Minute, py, append(cmd, "--json")...)
	require.NoError(t, err, "celery %v: %s", args, out)
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "{"):
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m), line)
			return m
		case strings.HasPrefix(line, "["):
			var list []map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &list), line)
			m := map[string]any{}
			for _, e := range list {
				for k, v := range e {
					m[k] = v
				}
			}
			return m
		}
	}
	t.Fatalf("celery %v printed no JSON: %s", args, out)
	return nil
}

// lockedWriter serialises writes to a buffer read while a process runs.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
