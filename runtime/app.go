package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// Config configures an App. The zero value of every field but Broker is a
// sane default.
type Config struct {
	// Broker is the transport URL: memory://, redis://host:6379/0,
	// rediss://…, amqp://user:pass@host:5672/vhost, amqps://…. Transport
	// options ride on the query (redis://host/0?visibility_timeout=30s).
	Broker string
	// Backend is the result backend URL; "" stores no results (Get then
	// fails with ErrNoBackend), as Celery's default disabled backend.
	Backend string
	// Serializer is the task serializer: "msgpack" (default) or "json"
	// (what a default-configured Python Celery accepts).
	Serializer string
	// ResultSerializer serializes result documents; default: Serializer.
	// Python readers must use the same result_serializer.
	ResultSerializer string
	// ResultExpires is how long results are kept (default 24 h, Celery's
	// result_expires); a negative value keeps them forever.
	ResultExpires time.Duration
	// DefaultQueue is the queue of tasks that name none (default "celery").
	DefaultQueue string
	// Hostname is this node's name, Celery's "name@host" (default
	// "taskgen@<os hostname>"); it is used as the worker's nodename and the
	// origin header.
	Hostname string
	// Logger receives the runtime's logs (default slog.Default()).
	Logger *slog.Logger
	// PublishTimeout bounds Delay when the broker is unreachable (default 10 s).
	PublishTimeout time.Duration
	// Now is the time source (default time.Now), as in tls.Config.Time;
	// tests inject a fake clock's Now.
	Now func() time.Time
	// PublishMiddleware wraps every publish of a task message (Delay,
	// workflow steps, retries), the first outermost; see Publisher.
	PublishMiddleware []PublishMiddleware
	// Hooks are called at the points Celery's signals mark, for the
	// app's publishes and every worker of the app.
	Hooks *Hooks
}

// App is a configured taskgen application: a broker, an optional result
// backend and a serializer. It is safe for concurrent use.
type App struct {
	cfg     Config
	broker  driver.Broker
	backend driver.ResultBackend
	log     *slog.Logger
	now     func() time.Time
	ctype   string
	cenc    string
	origin  string
	pub     atomic.Pointer[Publisher] // publishRaw inside Config.PublishMiddleware, Hooks and UsePublishMiddleware
	mwMu    sync.Mutex
	mws     []Middleware // UseMiddleware's, for workers made afterwards
	obs     []Observer   // UseObserver's, likewise

	closeOnce sync.Once
}

// ErrNoApp is returned by Delay when no app was configured with SetDefault
// or given with WithApp.
var ErrNoApp = errors.New("taskgen: no app configured: call runtime.SetDefault(app) or pass runtime.WithApp(app) to With")

// ErrNoBackend is returned by AsyncResult methods when the app has no result backend.
var ErrNoBackend = errors.New("taskgen: no result backend configured (set Config.Backend)")

// New opens the broker and backend named in cfg.
func New(cfg Config) (*App, error) {
	if cfg.Broker == "" {
		return nil, errors.New("taskgen: Config.Broker is empty (for example memory://, redis://127.0.0.1:6379/0, amqp://guest:guest@127.0.0.1:5672//)")
	}
	if cfg.Serializer == "" {
		cfg.Serializer = wire.SerializerMsgpack
	}
	if cfg.ResultSerializer == "" {
		cfg.ResultSerializer = cfg.Serializer
	}
	ctype, cenc, err := wire.ContentTypeOf(cfg.Serializer)
	if err != nil {
		return nil, fmt.Errorf("taskgen: Config.Serializer: %w", err)
	}
	if _, _, err := wire.ContentTypeOf(cfg.ResultSerializer); err != nil {
		return nil, fmt.Errorf("taskgen: Config.ResultSerializer: %w", err)
	}
	if cfg.ResultExpires == 0 {
		cfg.ResultExpires = 24 * time.Hour
	}
	if cfg.DefaultQueue == "" {
		cfg.DefaultQueue = driver.DefaultQueue
	}
	if cfg.Hostname == "" {
		h, _ := os.Hostname()
		if h == "" {
			h = "localhost"
		}
		cfg.Hostname = "taskgen@" + h
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	topts := driver.TransportOptions{Logger: cfg.Logger, Hostname: cfg.Hostname, ConnectTimeout: cfg.PublishTimeout}
	a := &App{cfg: cfg, log: cfg.Logger, now: cfg.Now, ctype: ctype, cenc: cenc}
	pub, _ := chain(Publisher(a.publishRaw), append(slices.Clone(cfg.PublishMiddleware), cfg.Hooks.publishMiddleware())...)
	a.pub.Store(&pub)
	a.origin = "gen" + strconv.Itoa(os.Getpid()) + "@" + hostPart(cfg.Hostname)
	if a.broker, err = driver.OpenBroker(cfg.Broker, topts); err != nil {
		return nil, fmt.Errorf("taskgen: %w", err)
	}
	if cfg.Backend != "" {
		if a.backend, err = driver.OpenBackend(cfg.Backend, topts); err != nil {
			a.broker.Close()
			return nil, fmt.Errorf("taskgen: %w", err)
		}
		if bb, ok := a.backend.(driver.BrokerBinder); ok {
			if err := bb.BindBroker(a.broker); err != nil {
				a.backend.Close()
				a.broker.Close()
				return nil, fmt.Errorf("taskgen: backend %s: %w", driver.Redact(cfg.Backend), err)
			}
		}
	}
	return a, nil
}

func hostPart(nodename string) string {
	for i := 0; i < len(nodename); i++ {
		if nodename[i] == '@' {
			return nodename[i+1:]
		}
	}
	return nodename
}

// Config returns the app's configuration with defaults filled in.
func (a *App) Config() Config { return a.cfg }

// Broker returns the app's transport.
func (a *App) Broker() driver.Broker { return a.broker }

// Backend returns the app's result backend, or nil.
func (a *App) Backend() driver.ResultBackend { return a.backend }

// Logger returns the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Close closes the broker and backend.
func (a *App) Close() error {
	var err error
	a.closeOnce.Do(func() {
		err = a.broker.Close()
		if a.backend != nil {
			err = errors.Join(err, a.backend.Close())
		}
	})
	return err
}

var defaultApp atomic.Pointer[App]

// SetDefault makes app the one generated stubs use when With(WithApp(...)) is
// not given.
// It returns the app it replaces (nil if none), so that a test can restore it.
func SetDefault(app *App) (previous *App) { return defaultApp.Swap(app) }

// queueFor returns the queue a call of def goes to.
func (a *App) queueFor(def *codegen.TaskDef, co *callOptions) string {
	if co.queue != "" {
		return co.queue
	}
	if def.Queue != "" {
		return def.Queue
	}
	return a.cfg.DefaultQueue
}

// NewMessage builds the protocol v2 message of a call of def with args.
func (a *App) newMessage(def *codegen.TaskDef, co *callOptions, args wire.Args) (*driver.Message, error) {
	return a.newWorkflowMessage(def, co, args, nil)
}

// workflowCall is what a workflow step adds to a call: arguments as
// generic values, keyword arguments, the embed (callbacks, errbacks,
// chain, chord) and the group it belongs to.
type workflowCall struct {
	args       []any
	kwargs     map[string]any
	embed      map[string]any
	group      string
	groupIndex *int
}

// newWorkflowMessage is newMessage for a call that may be a workflow step
// (wc not nil): its body is encoded from wc's generic values.
func (a *App) newWorkflowMessage(def *codegen.TaskDef, co *callOptions, args wire.Args, wc *workflowCall) (*driver.Message, error) {
	id := co.taskID
	if id == "" {
		id = driver.NewID()
	}
	var body []byte
	var err error
	if wc == nil {
		body, err = wire.AppendBody(make([]byte, 0, 64), a.cfg.Serializer, args, nil)
	} else {
		args = wire.GenericArgs(wc.args)
		body, err = wire.AppendGenericBody(make([]byte, 0, 256), a.cfg.Serializer, wc.args, wc.kwargs, wc.embed)
	}
	if err != nil {
		return nil, fmt.Errorf("taskgen: encode arguments of %s: %w", def.Name, err)
	}
	now := a.now()
	m := &driver.Message{
		ContentType:     a.ctype,
		ContentEncoding: a.cenc,
		CorrelationID:   id,
		DeliveryMode:    2,
		Body:            body,
	}
	h := &m.Headers
	h.Lang = driver.ProtocolLang
	h.Task = def.Name
	h.ID = id
	h.RootID = id
	if co.rootID != "" {
		h.RootID = co.rootID
	}
	h.ParentID = co.parentID
	h.Origin = a.origin
	h.ArgsRepr = wire.ArgsRepr(args)
	h.KwargsRepr = "{}"
	if wc != nil {
		h.Group = wc.group
		h.GroupIndex = wc.groupIndex
		if len(wc.kwargs) > 0 {
			h.KwargsRepr = wire.Repr(wc.kwargs)
		}
	}
	h.IgnoreResult = def.IgnoreResult
	h.TimeLimit = [2]float64{def.TimeLimit.Seconds(), def.SoftTimeLimit.Seconds()}
	switch {
	case !co.eta.IsZero():
		h.ETA = co.eta
	case co.countdown > 0:
		h.ETA = now.Add(co.countdown)
	}
	switch {
	case !co.expires.IsZero():
		h.Expires = co.expires
	case def.Expires > 0:
		h.Expires = now.Add(def.Expires)
	}
	if !h.Expires.IsZero() {
		ms := h.Expires.Sub(now).Milliseconds()
		if ms < 0 {
			ms = 0
		}
		m.Expiration = strconv.FormatInt(ms, 10)
	}
	switch {
	case co.priority != nil:
		m.Priority = *co.priority
	case def.HasPriority:
		m.Priority = def.Priority
	}
	if len(co.headers) > 0 {
		h.Extra = make(map[string]any, len(co.headers))
		for k, v := range co.headers {
			if driver.IsKnownHeader(k) {
				return nil, fmt.Errorf("taskgen: Headers: %q is a protocol header; use the matching option", k)
			}
			h.Extra[k] = v
		}
	}
	return m, nil
}

func (a *App) send(ctx context.Context, def *codegen.TaskDef, co *callOptions, args wire.Args) (string, error) {
	m, err := a.newMessage(def, co, args)
	if err != nil {
		return "", err
	}
	unlock, err := a.lockUnique(ctx, def, co, m)
	if err != nil {
		return "", err
	}
	if err := a.publish(ctx, a.queueFor(def, co), m); err != nil {
		unlock()
		return "", err
	}
	return m.Headers.ID, nil
}

// publish sends m, bounded by PublishTimeout (by the broker itself when it
// is a PublishBounder: no timer per call).
func (a *App) publish(ctx context.Context, queue string, m *driver.Message) error {
	return (*a.pub.Load())(ctx, queue, m)
}

// UsePublishMiddleware wraps the app's publishes in mws, outside those of
// Config.PublishMiddleware (the first outermost); instrumentation such as
// runtime/otel.Instrument calls it. It applies to publishes that start
// after it returns.
func (a *App) UsePublishMiddleware(mws ...PublishMiddleware) {
	a.mwMu.Lock()
	defer a.mwMu.Unlock()
	p, _ := chain(*a.pub.Load(), mws...)
	a.pub.Store(&p)
}

// UseMiddleware adds task middleware for every worker the app makes from
// now on, outside each worker's WorkerOptions.Middleware (the first
// outermost); instrumentation such as runtime/otel.Instrument calls it.
func (a *App) UseMiddleware(mws ...Middleware) {
	a.mwMu.Lock()
	defer a.mwMu.Unlock()
	a.mws = append(a.mws, mws...)
}

// UseObserver makes every worker the app makes from now on report its
// task lifecycle to o too, after WorkerOptions.Observer and the worker's
// Celery events; instrumentation such as runtime/prom.Instrument calls it.
// o's methods run on the worker's goroutines and must not block.
func (a *App) UseObserver(o Observer) {
	a.mwMu.Lock()
	defer a.mwMu.Unlock()
	a.obs = append(a.obs, o)
}

// publishRaw is the Publisher inside the publish middleware: it puts m on
// queue (or, for a retry marked with deferKey, parks it in the broker
// until its ETA).
func (a *App) publishRaw(ctx context.Context, queue string, m *driver.Message) error {
	if m.ReplyTo == "" {
		if rb, ok := a.backend.(driver.ReplyBackend); ok {
			// rpc://: the result comes back to this process's queue,
			// declared before the task can finish.
			q, err := rb.ReplyTo(ctx)
			if err != nil {
				return fmt.Errorf("taskgen: publish %s[%s]: result queue: %w", m.Headers.Task, m.Headers.ID, err)
			}
			m.ReplyTo = q
		}
	}
	if !m.Headers.ETA.IsZero() {
		if eta, ok := ctx.Value(deferKey{}).(time.Time); ok {
			if dl, ok := a.broker.(driver.Delayer); ok {
				return dl.Defer(ctx, queue, m, eta)
			}
		}
	}
	if pb, ok := a.broker.(driver.PublishBounder); !ok || !pb.BoundsPublish() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.cfg.PublishTimeout)
		defer cancel()
	}
	if err := a.broker.Publish(ctx, queue, m); err != nil {
		return fmt.Errorf("taskgen: publish %s[%s] to queue %q: %w", m.Headers.Task, m.Headers.ID, queue, err)
	}
	return nil
}
