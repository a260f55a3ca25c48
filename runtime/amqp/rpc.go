package amqp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

func init() {
	driver.RegisterBackend("rpc", openRPC)
}

// RPCResultExpires is the default x-expires of an rpc:// reply queue, as
// Celery's result_expires (one day): RabbitMQ deletes the queue when it has
// been unused that long.
const RPCResultExpires = 24 * time.Hour

// ErrRPCBroker is wrapped by the error of an app whose result backend is
// rpc:// and whose broker is not amqp:// or amqps://.
var ErrRPCBroker = errors.New("the rpc:// result backend needs an amqp:// or amqps:// broker")

// RPCBackend is the rpc:// result backend, Celery's RPC backend: a worker
// sends each state of a task (STARTED, RETRY, progress, the final one) as an
// AMQP message to the reply_to queue of the task's message, on the default
// exchange with correlation_id = the task id; the caller consumes its own
// reply queue and keeps the latest document of every task it hears of.
//
// The reply queue is named by a random oid per backend (one per App), is
// not durable, auto-delete, with x-expires = the expires URL option
// (default [RPCResultExpires]), as Celery declares <oid> for its thread
// oid. It is declared on the first task sent, before that task is
// published; the producer puts it in the message's reply_to property.
//
// Limits, as in Celery: results are readable only by the process that sent
// the task (another process, or a later run, sees PENDING); they are not
// persisted (a message in flight when the caller's connection drops may be
// lost with the auto-delete queue); chords cannot run on it (their header
// members must be counted in a store). Results are sent with delivery mode
// 1 (transient), or 2 with ?persistent=true (Celery's result_persistent).
//
// Open it by URL: runtime.Config{Broker: "amqp://…", Backend: "rpc://"}.
// The URL has no host: the backend uses the app's broker connection.
type RPCBackend struct {
	expires    time.Duration
	persistent bool
	oid        string

	mu      sync.Mutex
	b       *Broker
	started bool
	stop    context.CancelFunc
	closed  bool
	docs    map[string]rpcDoc
	waiters map[string][]chan struct{}
	seen    int
}

type rpcDoc struct {
	doc []byte
	at  time.Time
}

var (
	_ driver.ResultBackend = (*RPCBackend)(nil)
	_ driver.BrokerBinder  = (*RPCBackend)(nil)
	_ driver.ReplyBackend  = (*RPCBackend)(nil)
)

func openRPC(u *url.URL, _ driver.TransportOptions) (driver.ResultBackend, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("rpc:// takes no host or path (it uses the app's amqp:// broker connection): write rpc:// alone, not %s", driver.Redact(u.String()))
	}
	r := &RPCBackend{expires: RPCResultExpires, oid: driver.NewID(), docs: map[string]rpcDoc{}, waiters: map[string][]chan struct{}{}}
	for k, v := range u.Query() {
		val := v[len(v)-1]
		switch k {
		case "expires":
			d, err := time.ParseDuration(val)
			if err != nil || d < time.Second || d > time.Duration(1<<31-1)*time.Millisecond {
				return nil, fmt.Errorf("rpc:// option expires=%q: want a duration between 1s and 596h, such as 24h", val)
			}
			r.expires = d
		case "persistent":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, fmt.Errorf("rpc:// option persistent=%q: want true or false", val)
			}
			r.persistent = b
		default:
			return nil, fmt.Errorf("rpc:// option %q unknown (known: expires, persistent)", k)
		}
	}
	return r, nil
}

// BindBroker gives the backend the app's broker; it fails with
// [ErrRPCBroker] unless that is this package's.
func (r *RPCBackend) BindBroker(b driver.Broker) error {
	ab, ok := b.(*Broker)
	if !ok {
		return fmt.Errorf("%w, not %T: rpc:// sends results as AMQP messages on the broker connection; with another broker use a result backend of its own, such as redis://", ErrRPCBroker, b)
	}
	r.mu.Lock()
	r.b = ab
	r.mu.Unlock()
	return nil
}

// OID returns the name of the reply queue (Celery's oid).
func (r *RPCBackend) OID() string { return r.oid }

// ReplyTo declares the reply queue and starts consuming it (once), and
// returns its name.
func (r *RPCBackend) ReplyTo(ctx context.Context) (string, error) {
	if err := r.start(ctx); err != nil {
		return "", err
	}
	return r.oid, nil
}

func (r *RPCBackend) start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return errors.New("amqp: rpc:// backend closed")
	case r.b == nil:
		return fmt.Errorf("%w; this backend was not bound to one (open it through runtime.New)", ErrRPCBroker)
	case r.started:
		return nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &subscription{b: r.b, what: "rpc results " + r.oid, out: make(chan *driver.RawMessage, controlBuffer),
		q: fanoutQueue{name: r.oid, key: r.oid, args: amqp.Table{"x-expires": ms(r.expires)}}}
	// subscribe returns once the queue is declared and consumed; bound by
	// ctx as well as by the broker's connect timeout.
	stopCtx := context.AfterFunc(ctx, cancel)
	out, err := r.b.subscribe(sctx, s)
	if !stopCtx() {
		cancel()
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		cancel()
		return fmt.Errorf("amqp: rpc:// declare reply queue %s: %w", r.oid, err)
	}
	r.started, r.stop = true, cancel
	go r.receive(out)
	return nil
}

// receive keeps the latest document of every task whose state arrives on
// the reply queue (also of tasks this process does not wait for: as
// Celery's out-of-band buffer, a later Load finds them).
func (r *RPCBackend) receive(out <-chan *driver.RawMessage) {
	for m := range out {
		ser, err := wire.SerializerOf(m.ContentType)
		if err != nil {
			r.b.log.Warn("rpc:// result dropped", "err", err)
			continue
		}
		doc, err := driver.DecodeResultDoc(ser, m.Body)
		if err != nil || doc.TaskID == "" {
			r.b.log.Warn("rpc:// result dropped: not a result document", "err", err)
			continue
		}
		r.put(doc.TaskID, m.Body)
	}
}

func (r *RPCBackend) put(id string, doc []byte) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.docs[id]; ok && isSuccess(old.doc) {
		return // as every backend: a SUCCESS is never replaced
	}
	r.docs[id] = rpcDoc{doc: doc, at: now}
	for _, w := range r.waiters[id] {
		close(w)
	}
	delete(r.waiters, id)
	// Forget documents older than the queue's expiry, now and then.
	if r.seen++; r.seen%1024 == 0 {
		for k, d := range r.docs {
			if now.Sub(d.at) > r.expires {
				delete(r.docs, k)
			}
		}
	}
}

func isSuccess(doc []byte) bool {
	ser := wire.SerializerMsgpack
	if len(doc) > 0 && doc[0] == '{' {
		ser = wire.SerializerJSON
	}
	d, err := driver.DecodeResultDoc(ser, doc)
	return err == nil && d.Status == driver.StateSuccess
}

// Store sends doc to the reply queue named by the task's message (the
// worker puts it in ctx, see [driver.WithReply]), on the default exchange
// with correlation_id = the task's; a task whose message names no reply_to
// has its documents dropped, as in Celery. ttl is not used: the document
// is a message, not stored.
func (r *RPCBackend) Store(ctx context.Context, taskID string, doc []byte, _ time.Duration) error {
	reply, ok := driver.ReplyFromContext(ctx)
	if !ok {
		return nil
	}
	r.mu.Lock()
	b := r.b
	r.mu.Unlock()
	if b == nil {
		return fmt.Errorf("%w; this backend was not bound to one (open it through runtime.New)", ErrRPCBroker)
	}
	corr := reply.CorrelationID
	if corr == "" {
		corr = taskID
	}
	p := amqp.Publishing{ContentType: wire.ContentTypeMsgpack, ContentEncoding: wire.ContentEncodingBinary,
		DeliveryMode: amqp.Transient, CorrelationId: corr, Body: doc}
	if len(doc) > 0 && doc[0] == '{' {
		p.ContentType, p.ContentEncoding = wire.ContentTypeJSON, wire.ContentEncodingUTF8
	}
	if r.persistent {
		p.DeliveryMode = amqp.Persistent
	}
	if err := b.publishFanout(ctx, exchangeSpec{}, reply.To, &p, false); err != nil {
		return fmt.Errorf("amqp: rpc:// send result of %s to %s: %w", taskID, reply.To, err)
	}
	return nil
}

// Load returns the latest document received for taskID, or nil (PENDING)
// when none arrived in this process.
func (r *RPCBackend) Load(ctx context.Context, taskID string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.docs[taskID].doc, nil
}

// Wait returns the first document of taskID for which ready is true,
// waiting for it on the reply queue until ctx ends.
func (r *RPCBackend) Wait(ctx context.Context, taskID string, ready func(doc []byte) bool) ([]byte, error) {
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	for {
		r.mu.Lock()
		d, ok := r.docs[taskID]
		if ok && ready(d.doc) {
			r.mu.Unlock()
			return d.doc, nil
		}
		ch := make(chan struct{})
		r.waiters[taskID] = append(r.waiters[taskID], ch)
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			ws := r.waiters[taskID]
			for i, w := range ws {
				if w == ch {
					r.waiters[taskID] = append(ws[:i], ws[i+1:]...)
					break
				}
			}
			if len(r.waiters[taskID]) == 0 {
				delete(r.waiters, taskID)
			}
			r.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// Forget drops what this process received of taskID.
func (r *RPCBackend) Forget(_ context.Context, taskID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.docs, taskID)
	return nil
}

// Close stops consuming the reply queue (RabbitMQ then deletes it); the
// broker's connections belong to the app's broker.
func (r *RPCBackend) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.stop != nil {
		r.stop()
	}
	return nil
}
