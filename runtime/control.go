package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// Remote control: the worker side of Celery's pidbox (WIRE.md §7), so that
// `celery inspect ping|stats|active_queues|registered|active|reserved|revoked`,
// `celery control enable_events|disable_events|heartbeat|revoke|rate_limit|shutdown`
// and Flower work with Go workers, and the client side used by
// AsyncResult.Revoke, App.Inspect and App.Control.

// Celery keeps revoked ids for 3 hours, at most 50 000 of them.
const (
	revokedMax = 50000
	revokedTTL = 3 * time.Hour
)

// controlState is the worker's remote-control state.
type controlState struct {
	mu       sync.Mutex
	revoked  map[string]time.Time
	running  map[string]*runningTask
	clock    atomic.Int64
	started  time.Time
	disabled atomic.Bool // task events disabled by disable_events

	// rates holds the rate limits set by the rate_limit command, by task
	// name: an immutable map replaced whole under ratesMu (ratelimit.go).
	rates   atomic.Pointer[map[string]rateSetting]
	ratesMu sync.Mutex

	// stop is closed by Worker.Shutdown (and the shutdown command); Run
	// then shuts down as when its ctx ends.
	stopOnce sync.Once
	stopMu   sync.Mutex
	stop     chan struct{}
}

// stopRequested returns the channel closed when a shutdown was requested.
func (c *controlState) stopRequested() <-chan struct{} {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.stop == nil {
		c.stop = make(chan struct{})
	}
	return c.stop
}

// Shutdown asks the worker to stop gracefully, as when the ctx given to Run
// ends: it takes no new messages, returns held ones to the queue, lets
// running tasks finish within WorkerOptions.ShutdownTimeout, and Run
// returns nil. The remote-control shutdown command (`taskctl control
// shutdown`, Celery's `app.control.shutdown()`) calls it. It does not wait
// for Run to return, and it is final: a Run called afterwards returns at
// once. It may be called from any goroutine, more than once.
func (w *Worker) Shutdown() {
	w.ctl.stopRequested()
	w.ctl.stopOnce.Do(func() { close(w.ctl.stop) })
}

type runningTask struct {
	info   *TaskInfo // info.Started: the run's start (time_start)
	m      *driver.Message
	cancel context.CancelCauseFunc
}

// ErrRevoked is the cause of a running task's ctx cancelled by a revoke with
// terminate.
var ErrRevoked = celeryError("celery.exceptions", "TaskRevokedError", fmt.Errorf("task revoked"))

func (c *controlState) init() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked == nil {
		c.revoked = map[string]time.Time{}
		c.running = map[string]*runningTask{}
		c.started = time.Now()
	}
}

func (c *controlState) isRevoked(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.revoked[id]
	return ok && time.Since(t) < revokedTTL
}

// revoke adds ids to the revoked set and, with terminate, cancels their
// running contexts. It returns the ids that were running.
func (c *controlState) revoke(ids []string, terminate bool) []string {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.revoked)+len(ids) > revokedMax {
		for id, t := range c.revoked {
			if now.Sub(t) > revokedTTL || len(c.revoked)+len(ids) > revokedMax {
				delete(c.revoked, id)
			}
		}
	}
	var hit []string
	for _, id := range ids {
		c.revoked[id] = now
		if rt, ok := c.running[id]; ok {
			hit = append(hit, id)
			if terminate {
				rt.cancel(ErrRevoked)
			}
		}
	}
	return hit
}

func (c *controlState) track(id string, rt *runningTask) {
	c.init()
	c.mu.Lock()
	c.running[id] = rt
	c.mu.Unlock()
}

func (c *controlState) untrack(id string) {
	c.mu.Lock()
	delete(c.running, id)
	c.mu.Unlock()
}

func (c *controlState) tick(seen int64) int64 {
	for {
		cur := c.clock.Load()
		next := max(cur, seen) + 1
		if c.clock.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// controlRequest is a pidbox request body.
type controlRequest struct {
	Method      string         `json:"method" msgpack:"method"`
	Arguments   map[string]any `json:"arguments" msgpack:"arguments"`
	Destination []string       `json:"destination" msgpack:"destination"`
	Pattern     string         `json:"pattern" msgpack:"pattern"`
	Ticket      string         `json:"ticket" msgpack:"ticket"`
	ReplyTo     *struct {
		Exchange   string `json:"exchange" msgpack:"exchange"`
		RoutingKey string `json:"routing_key" msgpack:"routing_key"`
	} `json:"reply_to" msgpack:"reply_to"`
}

func decodeAny(contentType string, body []byte, v any) error {
	if contentType == driver.ContentTypeMsgpack || contentType == "application/msgpack" {
		return wire.MsgpackUnmarshal(body, v)
	}
	return json.Unmarshal(body, v)
}

func encodeAny(contentType string, v any) ([]byte, string, string, error) {
	if contentType == driver.ContentTypeMsgpack || contentType == "application/msgpack" {
		b, err := wire.MsgpackMarshal(v)
		return b, driver.ContentTypeMsgpack, driver.ContentEncodingBinary, err
	}
	b, err := json.Marshal(v)
	return b, driver.ContentTypeJSON, driver.ContentEncodingUTF8, err
}

// serveControl answers remote-control requests until ctx ends.
func (w *Worker) serveControl(ctx context.Context, ct driver.ControlTransport) {
	w.ctl.init()
	reqs, err := ct.ConsumeControl(ctx, w.opts.Hostname)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("remote control unavailable", "err", err)
		}
		return
	}
	for raw := range reqs {
		w.handleControl(ctx, ct, raw)
	}
}

func (w *Worker) handleControl(ctx context.Context, ct driver.ControlTransport, raw *driver.RawMessage) {
	var req controlRequest
	if err := decodeAny(raw.ContentType, raw.Body, &req); err != nil {
		w.log.Warn("bad remote-control request", "err", err)
		return
	}
	if c, ok := driver.AnyToInt(raw.Headers["clock"]); ok {
		w.ctl.tick(c)
	}
	if len(req.Destination) > 0 {
		mine := false
		for _, d := range req.Destination {
			if d == w.opts.Hostname {
				mine = true
			}
		}
		if !mine {
			return
		}
	}
	reply, ok := w.controlReply(req)
	if !ok {
		w.log.Debug("unknown remote-control command", "method", req.Method)
		return
	}
	if req.ReplyTo == nil || req.Ticket == "" || reply == nil {
		return
	}
	body, ctype, cenc, err := encodeAny(raw.ContentType, map[string]any{w.opts.Hostname: reply})
	if err != nil {
		w.log.Error("encode remote-control reply", "err", err)
		return
	}
	msg := &driver.RawMessage{ContentType: ctype, ContentEncoding: cenc, Body: body,
		Headers: map[string]any{"ticket": req.Ticket, "clock": w.ctl.tick(0)}}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := ct.Reply(rctx, req.ReplyTo.Exchange, req.ReplyTo.RoutingKey, msg); err != nil {
		w.log.Warn("remote-control reply failed", "method", req.Method, "err", err)
	}
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	}
	return nil
}

// controlReply computes the reply of one command; ok is false for unknown
// commands. A nil reply with ok means "no reply" (casts).
func (w *Worker) controlReply(req controlRequest) (reply any, ok bool) {
	switch req.Method {
	case "ping":
		return map[string]any{"ok": "pong"}, true
	case "hello":
		return map[string]any{"revoked": map[string]any{}, "clock": w.ctl.clock.Load()}, true
	case "heartbeat":
		if hb, ok := w.obs.(interface{ Heartbeat() }); ok {
			hb.Heartbeat()
		}
		return nil, true
	case "enable_events":
		was := w.ctl.disabled.Swap(false)
		if was {
			return map[string]any{"ok": "task events enabled"}, true
		}
		return map[string]any{"ok": "task events already enabled"}, true
	case "disable_events":
		was := w.ctl.disabled.Swap(true)
		if !was {
			return map[string]any{"ok": "task events disabled"}, true
		}
		return map[string]any{"ok": "task events already disabled"}, true
	case "revoke":
		ids := stringList(req.Arguments["task_id"])
		terminate, _ := req.Arguments["terminate"].(bool)
		w.ctl.revoke(ids, terminate)
		w.log.Info("tasks revoked", "ids", ids, "terminate", terminate)
		return map[string]any{"ok": fmt.Sprintf("tasks %s flagged as revoked", strings.Join(ids, ", "))}, true
	case "registered":
		return w.registeredReply(req.Arguments), true
	case "rate_limit":
		return w.rateLimitReply(req.Arguments), true
	case "shutdown":
		// Celery's worker raises WorkerShutdown, a SystemExit, which its
		// pidbox lets through: no reply, even to a call that waits for one.
		msg, _ := req.Arguments["msg"].(string)
		if msg == "" {
			msg = "Got shutdown from remote"
		}
		w.log.Warn(msg)
		w.Shutdown()
		return nil, true
	case "active_queues":
		var qs []any
		for _, q := range w.opts.Queues {
			ex := q
			if q == w.app.cfg.DefaultQueue {
				ex = driver.DefaultExchange
			}
			qs = append(qs, map[string]any{
				"name": q, "routing_key": q, "durable": true, "exclusive": false, "auto_delete": false,
				"no_ack": false, "alias": nil, "bindings": []any{}, "no_declare": nil, "expires": nil,
				"message_ttl": nil, "max_length": nil, "max_length_bytes": nil, "max_priority": nil,
				"queue_arguments": nil, "binding_arguments": nil, "consumer_arguments": nil,
				"exchange": map[string]any{"name": ex, "type": "direct", "arguments": nil, "durable": true,
					"passive": false, "auto_delete": false, "delivery_mode": nil, "no_declare": false},
			})
		}
		return qs, true
	case "stats":
		return w.statsReply(), true
	case "active":
		return w.activeReply(), true
	case "reserved", "scheduled":
		return []any{}, true
	case "revoked":
		w.ctl.mu.Lock()
		ids := make([]string, 0, len(w.ctl.revoked))
		for id := range w.ctl.revoked {
			ids = append(ids, id)
		}
		w.ctl.mu.Unlock()
		sort.Strings(ids)
		return ids, true
	case "conf":
		return map[string]any{"task_serializer": w.app.cfg.Serializer, "result_serializer": w.app.cfg.ResultSerializer,
			"broker_url": driver.Redact(w.app.cfg.Broker), "task_default_queue": w.app.cfg.DefaultQueue}, true
	case "query_task":
		return map[string]any{}, true
	}
	return nil, false
}

// registeredReply is Celery's registered: the task names, sorted, each
// followed by " [rate_limit=10/m]" when the task has a rate limit (Celery's
// default taskinfoitems are exchange, routing_key and rate_limit; a Go task
// has only the last).
func (w *Worker) registeredReply(args map[string]any) []string {
	items := stringList(args["taskinfoitems"])
	wantRate := len(items) == 0
	for _, it := range items {
		wantRate = wantRate || it == "rate_limit"
	}
	names := w.Tasks()
	for i, n := range names {
		def := w.lookup(n)
		if def == nil || !wantRate {
			continue
		}
		if r, ok := w.ctl.rateText(def); ok {
			names[i] = n + " [rate_limit=" + r + "]"
		}
	}
	return names
}

func (w *Worker) statsReply() map[string]any {
	st := w.Stats()
	total := map[string]any{}
	w.mu.RLock()
	for name, n := range w.perTask {
		total[name] = n.Load()
	}
	w.mu.RUnlock()
	return map[string]any{
		"total":  total,
		"pid":    os.Getpid(),
		"clock":  fmt.Sprint(w.ctl.clock.Load()),
		"uptime": int64(time.Since(w.ctl.started).Seconds()),
		"pool": map[string]any{"max-concurrency": w.opts.Concurrency, "processes": []int{os.Getpid()},
			"max-tasks-per-child": nil, "put-guarded-by-semaphore": false, "timeouts": []any{0, 0}, "implementation": "taskgen:goroutines"},
		"broker": map[string]any{"hostname": "", "userid": nil, "virtual_host": "/", "port": nil, "insist": false,
			"ssl": false, "transport": brokerScheme(w.app.cfg.Broker), "connect_timeout": 4, "transport_options": map[string]any{},
			"login_method": nil, "uri_prefix": nil, "heartbeat": 120.0, "failover_strategy": "round-robin", "alternates": []any{}},
		"prefetch_count": w.opts.Prefetch,
		"rusage":         map[string]any{},
		"taskgen":        map[string]any{"received": st.Received, "succeeded": st.Succeeded, "failed": st.Failed, "retried": st.Retried, "dead_lettered": st.DeadLettered, "active": st.Active},
	}
}

func brokerScheme(raw string) string {
	if i := strings.Index(raw, "://"); i > 0 {
		return raw[:i]
	}
	return raw
}

func (w *Worker) activeReply() []any {
	w.ctl.mu.Lock()
	defer w.ctl.mu.Unlock()
	out := []any{}
	for id, rt := range w.ctl.running {
		out = append(out, map[string]any{
			"id": id, "name": rt.info.Name, "args": rt.m.Headers.ArgsRepr, "kwargs": rt.m.Headers.KwargsRepr,
			"type": rt.info.Name, "hostname": w.opts.Hostname, "time_start": float64(rt.info.Started.UnixNano()) / 1e9,
			"acknowledged": true, "worker_pid": os.Getpid(),
			"delivery_info": map[string]any{"exchange": rt.m.Exchange, "routing_key": rt.m.RoutingKey, "priority": rt.m.Priority, "redelivered": rt.m.Redelivered},
		})
	}
	return out
}

// ---- client side ----

// ErrNoControl is returned when the app's transport carries no remote control.
var ErrNoControl = fmt.Errorf("taskgen: the broker transport does not support remote control")

// RevokeOption configures a revoke.
type RevokeOption func(map[string]any)

// Terminate also cancels the task's ctx if it is running (Celery's
// terminate=True); the task fails with ErrRevoked as its ctx cause.
func Terminate() RevokeOption {
	return func(a map[string]any) { a["terminate"] = true; a["signal"] = "SIGTERM" }
}

// Revoke broadcasts Celery's revoke command: every worker skips the task
// (storing REVOKED) when it receives it; with Terminate a running task's ctx
// is cancelled.
func (r *AsyncResult[R]) Revoke(ctx context.Context, opts ...RevokeOption) error {
	return r.app.Revoke(ctx, []string{r.id}, opts...)
}

// Revoke broadcasts Celery's revoke command for ids.
func (a *App) Revoke(ctx context.Context, ids []string, opts ...RevokeOption) error {
	args := map[string]any{"task_id": ids, "terminate": false, "signal": "SIGTERM"}
	for _, o := range opts {
		o(args)
	}
	return a.Broadcast(ctx, "revoke", args)
}

// Broadcast sends the remote-control command method to every worker without
// waiting for replies: a Celery cast, such as heartbeat or revoke.
func (a *App) Broadcast(ctx context.Context, method string, args map[string]any) error {
	_, err := a.control(ctx, method, args, nil, 0)
	return err
}

// Inspect broadcasts the remote-control command method (ping, stats,
// registered, active_queues, active, revoked, rate_limit, …) and collects
// the replies of every worker that answers within timeout (Celery's default
// is 1 s), keyed by worker node name.
func (a *App) Inspect(ctx context.Context, method string, args map[string]any, timeout time.Duration) (map[string]any, error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	return a.control(ctx, method, args, nil, timeout)
}

// Control sends the remote-control command method to the workers whose
// node names are in destination (every worker when it is empty; Celery's
// destination=[...]) and collects their replies for up to timeout, keyed by
// node name; it returns early once every destination answered. A zero
// timeout sends a cast and waits for nothing. For example
//
//	app.Control(ctx, "rate_limit", map[string]any{"task_name": "tasks.add", "rate_limit": "10/m"}, []string{"w1@host"}, time.Second)
//	app.Control(ctx, "shutdown", nil, []string{"w1@host"}, 0) // no reply: as in Celery
func (a *App) Control(ctx context.Context, method string, args map[string]any, destination []string, timeout time.Duration) (map[string]any, error) {
	if timeout < 0 {
		timeout = 0
	}
	return a.control(ctx, method, args, destination, timeout)
}

func (a *App) control(ctx context.Context, method string, args map[string]any, destination []string, timeout time.Duration) (map[string]any, error) {
	ct, ok := a.broker.(driver.ControlTransport)
	if !ok {
		return nil, ErrNoControl
	}
	if args == nil {
		args = map[string]any{}
	}
	req := map[string]any{"method": method, "arguments": args, "destination": nil, "pattern": nil, "matcher": nil}
	if len(destination) > 0 {
		req["destination"] = destination
	}
	var replies <-chan *driver.RawMessage
	ticket := driver.NewID()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if timeout > 0 {
		oid := driver.NewID()
		req["ticket"] = ticket
		req["reply_to"] = map[string]any{"exchange": "reply.celery.pidbox", "routing_key": oid}
		var err error
		if replies, err = ct.ConsumeReplies(rctx, oid); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// Workers discard requests past expires: a reply wait bounds it, casts
	// get 10 s for clock skew between hosts.
	life := timeout
	if life == 0 {
		life = 10 * time.Second
	}
	exp := float64(time.Now().Add(max(life, time.Second)).UnixNano()) / 1e9
	msg := &driver.RawMessage{ContentType: driver.ContentTypeJSON, ContentEncoding: driver.ContentEncodingUTF8, Body: body,
		Headers: map[string]any{"clock": int64(1), "expires": exp}, Exchange: "celery.pidbox"}
	if err := ct.PublishControl(ctx, msg); err != nil {
		return nil, fmt.Errorf("taskgen: %s: %w", method, err)
	}
	if timeout == 0 {
		return nil, nil
	}
	out := map[string]any{}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case raw, ok := <-replies:
			if !ok {
				return out, nil
			}
			if t, _ := raw.Headers["ticket"].(string); t != ticket {
				continue
			}
			var m map[string]any
			if err := decodeAny(raw.ContentType, raw.Body, &m); err != nil {
				continue
			}
			for k, v := range m {
				out[k] = v
			}
			if len(destination) > 0 && len(out) >= len(destination) {
				return out, nil // all answered (Celery's limit)
			}
		case <-deadline.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
