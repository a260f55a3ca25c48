// Package tasktest is taskgen's test kit: an eager mode in which Delay runs
// the task in-process and synchronously (through the message codec, so
// encoding bugs show), assertions on what was enqueued, and a virtual clock
// that fast-forwards countdowns, ETAs and retry backoff without sleeping.
//
//	func TestSignUp(t *testing.T) {
//		kit := tasktest.New(t, signup.RegisterTasks)
//		res, err := signup.SendWelcomeEmail.Delay(ctx, "ann@example.com")
//		// the task already ran (or is waiting for a retry: kit.Advance(time.Minute))
//		calls := tasktest.Calls(kit, signup.SendWelcomeEmail) // typed: []tasktest.TypedCall[signup.SendWelcomeEmailArgs]
//		require.Equal(t, "ann@example.com", calls[0].Args.Email)
//		// or generically: kit.Enqueued(signup.SendWelcomeEmail.Name())[0].Args is []any{"ann@example.com"}
//	}
//
// New makes the kit's app the process default (runtime.SetDefault) for the
// duration of the test, so generated stubs use it; tests using a Kit that way
// must not run in parallel with each other. Pass WithoutDefault and use
// runtime.WithApp(kit.App) to run kits in parallel.
package tasktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/memory"
)

// Clock is a virtual clock: it moves only when Advance is called.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Call is one enqueued task message.
type Call struct {
	ID      string
	Task    string
	Queue   string
	Args    []any          // positional arguments, decoded generically
	Kwargs  map[string]any // keyword arguments
	ETA     time.Time      // zero: run at once
	Retries int
	// The workflow the call belongs to (runtime.Chain, Group, Chord): the
	// id of its first task, of the task whose result it follows, and of
	// its group with its index there (GroupIndex is -1 outside a group).
	RootID, ParentID, GroupID string
	GroupIndex                int
	Message                   *driver.Message
}

// Option configures a Kit.
type Option func(*config)

type config struct {
	recordOnly bool
	noDefault  bool
	serializer string
	start      time.Time
}

// RecordOnly records enqueued tasks without running them.
func RecordOnly() Option { return func(c *config) { c.recordOnly = true } }

// WithoutDefault does not make the kit's app the process default.
func WithoutDefault() Option { return func(c *config) { c.noDefault = true } }

// Serializer sets the task serializer ("msgpack", the default, or "json").
func Serializer(name string) Option { return func(c *config) { c.serializer = name } }

// StartTime sets the virtual clock's initial time (default 2026-01-01 UTC).
func StartTime(t time.Time) Option { return func(c *config) { c.start = t } }

// Kit is an eager app, its worker and its virtual clock.
type Kit struct {
	// App is the kit's app: memory results, the eager transport, the virtual clock.
	App *runtime.App
	// Worker holds the registered tasks; the kit drives it synchronously.
	Worker *runtime.Worker
	// Clock is the virtual clock of the app and worker.
	Clock *Clock

	t      testing.TB
	broker *eagerBroker
}

var (
	kitsMu sync.Mutex
	kits   = map[string]*eagerBroker{}
)

func init() {
	driver.RegisterBroker("tasktest", func(u *url.URL, _ driver.TransportOptions) (driver.Broker, error) {
		kitsMu.Lock()
		defer kitsMu.Unlock()
		b, ok := kits[u.Host]
		if !ok {
			return nil, fmt.Errorf("tasktest: no kit %q", u.Host)
		}
		return b, nil
	})
}

// New returns a kit with the tasks registered by each register function
// (typically a generated RegisterTasks).
func New(t testing.TB, register ...func(*runtime.Worker)) *Kit {
	t.Helper()
	return NewWith(t, nil, register...)
}

// NewWith is New with options.
func NewWith(t testing.TB, opts []Option, register ...func(*runtime.Worker)) *Kit {
	t.Helper()
	cfg := config{serializer: "msgpack", start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, o := range opts {
		o(&cfg)
	}
	k := &Kit{t: t, Clock: NewClock(cfg.start)}
	return k.init(cfg, register)
}

func (k *Kit) init(cfg config, register []func(*runtime.Worker)) *Kit {
	t := k.t
	name := driver.NewID()
	k.broker = &eagerBroker{kit: k, run: !cfg.recordOnly}
	kitsMu.Lock()
	kits[name] = k.broker
	kitsMu.Unlock()
	app, err := runtime.New(runtime.Config{
		Broker: "tasktest://" + name, Backend: "memory://tasktest-" + name, Serializer: cfg.serializer,
		Now: k.Clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Hostname: "tasktest@localhost",
	})
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	k.App = app
	k.Worker = app.NewWorker(runtime.WorkerOptions{Concurrency: 1})
	for _, r := range register {
		r(k.Worker)
	}
	var prev *runtime.App
	if !cfg.noDefault {
		prev = runtime.SetDefault(app)
	}
	t.Cleanup(func() {
		if !cfg.noDefault {
			runtime.SetDefault(prev)
		}
		app.Close()
		kitsMu.Lock()
		delete(kits, name)
		kitsMu.Unlock()
	})
	return k
}

// Enqueued returns every message of task name enqueued so far (including
// retries), in order.
func (k *Kit) Enqueued(name string) []Call {
	k.broker.mu.Lock()
	defer k.broker.mu.Unlock()
	var out []Call
	for _, c := range k.broker.calls {
		if c.Task == name {
			out = append(out, c)
		}
	}
	return out
}

// Workflow returns every message of the workflow that task id belongs to
// (the same root id: the steps of a chain, the members and the body of a
// chord, the callbacks), in the order they were sent, which is the order
// they ran in eager mode. id may be any task of it, such as the id of the
// AsyncResult a workflow's Delay returned.
func (k *Kit) Workflow(id string) []Call {
	k.broker.mu.Lock()
	defer k.broker.mu.Unlock()
	root := ""
	for _, c := range k.broker.calls {
		if c.ID == id {
			root = c.RootID
			break
		}
	}
	if root == "" {
		return nil
	}
	var out []Call
	for _, c := range k.broker.calls {
		if c.RootID == root && c.Retries == 0 {
			out = append(out, c)
		}
	}
	return out
}

// TypedCall is one enqueued message of a task with its arguments decoded by
// the task's generated codec, as the worker decodes them. Args is the
// generated <Stub>Args struct (signup.SendWelcomeEmailArgs, with one exported
// field per parameter); it hides the embedded Call.Args, whose generic
// []any form stays reachable as Call.Args.
type TypedCall[A any] struct {
	Call
	Args A
}

// Calls returns every message of stub's task enqueued so far (including
// retries), in order, with typed arguments:
//
//	calls := tasktest.Calls(kit, signup.SendWelcomeEmail)
//	require.Equal(t, "ann@example.com", calls[0].Args.Email)
//
// stub is a generated stub; its DecodeArgs decodes each message's body.
// A body that does not decode fails the test.
func Calls[A any, S interface {
	Name() string
	DecodeArgs(*driver.Message) (A, error)
}](k *Kit, stub S) []TypedCall[A] {
	k.t.Helper()
	var out []TypedCall[A]
	for _, c := range k.Enqueued(stub.Name()) {
		args, err := stub.DecodeArgs(c.Message)
		if err != nil {
			k.t.Fatalf("tasktest: enqueued %s (id %s): decoding its arguments: %v", c.Task, c.ID, err)
		}
		out = append(out, TypedCall[A]{Call: c, Args: args})
	}
	return out
}

// All returns every enqueued message so far.
func (k *Kit) All() []Call {
	k.broker.mu.Lock()
	defer k.broker.mu.Unlock()
	return append([]Call(nil), k.broker.calls...)
}

// Pending returns the messages waiting for their ETA on the virtual clock.
func (k *Kit) Pending() []Call {
	k.broker.mu.Lock()
	defer k.broker.mu.Unlock()
	var out []Call
	for _, p := range k.broker.pending {
		out = append(out, p.call)
	}
	return out
}

// DeadLetters returns the messages the worker set aside, with reasons.
func (k *Kit) DeadLetters() []memory.DeadLetter {
	k.broker.mu.Lock()
	defer k.broker.mu.Unlock()
	return append([]memory.DeadLetter(nil), k.broker.dead...)
}

// Advance moves the virtual clock forward by d, running every pending task
// that falls due, in ETA order (including retries they schedule within d).
func (k *Kit) Advance(d time.Duration) {
	end := k.Clock.Now().Add(d)
	for {
		k.broker.mu.Lock()
		sort.SliceStable(k.broker.pending, func(i, j int) bool { return k.broker.pending[i].call.ETA.Before(k.broker.pending[j].call.ETA) })
		var next *pendingMsg
		if len(k.broker.pending) > 0 && !k.broker.pending[0].call.ETA.After(end) {
			next = k.broker.pending[0]
			k.broker.pending = k.broker.pending[1:]
		}
		k.broker.mu.Unlock()
		if next == nil {
			break
		}
		if next.call.ETA.After(k.Clock.Now()) {
			k.Clock.set(next.call.ETA)
		}
		k.broker.process(next.queue, next.msg)
	}
	k.Clock.set(end)
}

type pendingMsg struct {
	call  Call
	queue string
	msg   *driver.Message
}

// eagerBroker runs each published task synchronously, or holds it until the
// virtual clock reaches its ETA.
type eagerBroker struct {
	kit     *Kit
	run     bool
	mu      sync.Mutex
	calls   []Call
	pending []*pendingMsg
	dead    []memory.DeadLetter
}

func (b *eagerBroker) Publish(ctx context.Context, queue string, msg *driver.Message) error {
	m := msg.Clone()
	m.RoutingKey = queue
	h := &m.Headers
	call := Call{ID: h.ID, Task: h.Task, Queue: queue, ETA: h.ETA, Retries: h.Retries, Message: m,
		RootID: h.RootID, ParentID: h.ParentID, GroupID: h.Group, GroupIndex: -1}
	if h.GroupIndex != nil {
		call.GroupIndex = *h.GroupIndex
	}
	var err error
	call.Args, call.Kwargs, err = decodeGeneric(m)
	if err != nil {
		return fmt.Errorf("tasktest: enqueued %s has an undecodable body: %w", m.Headers.Task, err)
	}
	b.mu.Lock()
	b.calls = append(b.calls, call)
	due := call.ETA.IsZero() || !call.ETA.After(b.kit.Clock.Now())
	if !b.run || !due {
		if b.run {
			b.pending = append(b.pending, &pendingMsg{call: call, queue: queue, msg: m})
		}
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	b.process(queue, m)
	return nil
}

func (b *eagerBroker) process(queue string, m *driver.Message) {
	b.kit.Worker.Process(context.Background(), &delivery{b: b, m: m, queue: queue})
}

func (b *eagerBroker) Consume(ctx context.Context, _ []string, _ int) (<-chan driver.Delivery, error) {
	return nil, fmt.Errorf("tasktest: the eager transport runs tasks at Delay; do not Run the kit's worker")
}

func (b *eagerBroker) Close() error { return nil }

type delivery struct {
	b     *eagerBroker
	m     *driver.Message
	queue string
}

func (d *delivery) Message() *driver.Message { return d.m }
func (d *delivery) Raw() []byte              { return d.m.Body }
func (d *delivery) DecodeError() error       { return nil }
func (d *delivery) Ack() error               { return nil }
func (d *delivery) Requeue() error {
	return d.b.Publish(context.Background(), d.queue, d.m)
}
func (d *delivery) Reject(reason string) error {
	d.b.mu.Lock()
	d.b.dead = append(d.b.dead, memory.DeadLetter{Queue: d.queue, Reason: reason, Message: d.m})
	d.b.mu.Unlock()
	return nil
}

func decodeGeneric(m *driver.Message) ([]any, map[string]any, error) {
	var body []any
	var err error
	switch m.ContentType {
	case driver.ContentTypeJSON:
		dec := json.NewDecoder(bytes.NewReader(m.Body))
		dec.UseNumber()
		err = dec.Decode(&body)
	default:
		err = msgpack.Unmarshal(m.Body, &body)
	}
	if err != nil {
		return nil, nil, err
	}
	if len(body) != 3 {
		return nil, nil, fmt.Errorf("body has %d elements, want [args, kwargs, embed]", len(body))
	}
	args, _ := body[0].([]any)
	kwargs, _ := body[1].(map[string]any)
	for i, a := range args {
		args[i] = normalize(a)
	}
	for k, v := range kwargs {
		kwargs[k] = normalize(v)
	}
	return args, kwargs, nil
}

// normalize turns every integer into int64 and JSON numbers into int64 or
// float64, so assertions compare with plain Go values.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case int8, int16, int32, int, uint8, uint16, uint32:
		i, _ := driver.AnyToInt(x)
		return i
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}
