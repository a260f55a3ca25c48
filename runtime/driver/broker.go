package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Broker is a message transport (memory://, redis://, amqp://). Implementations
// live in sub-packages and register themselves with [RegisterBroker].
type Broker interface {
	// Publish sends msg to queue and returns once the broker has accepted it
	// (AMQP: publisher confirm; Redis: the LPUSH reply). It never reports
	// success for a message the broker did not take. An outage makes it return
	// an error after a bounded wait, never hang past ctx.
	Publish(ctx context.Context, queue string, msg *Message) error
	// Consume delivers messages from queues until ctx ends. At most prefetch
	// deliveries are un-acknowledged at any time. The returned channel is
	// closed when consuming has stopped (after ctx ends or on a fatal error;
	// transient connection loss is retried inside the transport); RabbitMQ
	// applies prefetch per consumer, so a worker on k queues may hold up to
	// k × prefetch there, as Celery does. Deliveries
	// not yet acknowledged when the worker stops are requeued by the worker.
	Consume(ctx context.Context, queues []string, prefetch int) (<-chan Delivery, error)
	// Close releases the transport's connections.
	Close() error
}

// Delayer is implemented by transports that can hold a message until a due time
// inside the broker (Redis: a sorted set; RabbitMQ: TTL wait queues), so that
// long countdowns, ETAs and retry backoffs never sit in worker memory.
type Delayer interface {
	// Defer stores msg in the broker and moves it to queue when due.
	Defer(ctx context.Context, queue string, msg *Message, due time.Time) error
}

// QueueInspector is implemented by transports that can report queue depths
// (used by the monitor and by tests).
type QueueInspector interface {
	// QueueLength returns the number of ready messages in queue.
	QueueLength(ctx context.Context, queue string) (int64, error)
}

// Delivery is one message handed to a worker by a transport.
type Delivery interface {
	// Message is the decoded message. Transports that cannot decode the
	// transport envelope deliver a Delivery whose Message returns nil and whose
	// Raw returns the original bytes; the worker then dead-letters it.
	Message() *Message
	// Raw is the original bytes as received (for dead-lettering).
	Raw() []byte
	// DecodeError is why Message is nil, if it is.
	DecodeError() error
	// Ack acknowledges the message: it is done and must not come back.
	Ack() error
	// Reject sets the message aside in the transport's dead-letter store,
	// with reason, and acknowledges it.
	Reject(reason string) error
	// Requeue returns the message to its queue to be delivered again.
	Requeue() error
}

// ResultBackend stores and reads Celery result documents
// (celery-task-meta-<id>). Documents are stored as serialized bytes; the
// backend does not interpret them beyond the ready function given to Wait.
type ResultBackend interface {
	// Store writes the document of taskID; ttl 0 means no expiry. Writers
	// should also notify waiters (Redis: PUBLISH on the same key name). As in
	// Celery 5, a stored SUCCESS is never overwritten: a task that ran twice
	// (a lost worker, a partition) keeps its first successful result.
	Store(ctx context.Context, taskID string, doc []byte, ttl time.Duration) error
	// Load returns the stored document, or nil and no error when there is none
	// (state PENDING).
	Load(ctx context.Context, taskID string) ([]byte, error)
	// Wait returns the first stored document of taskID for which ready returns
	// true, waiting (without polling where the backend can notify) until ctx ends.
	Wait(ctx context.Context, taskID string, ready func(doc []byte) bool) ([]byte, error)
	// Close releases the backend's connections.
	Close() error
}

// PublishBounder is implemented by a Broker whose Publish returns within
// TransportOptions.ConnectTimeout (the app's PublishTimeout) by itself, even
// when the broker is unreachable. App then does not wrap each publish in a
// context deadline of its own (a timer and a channel per Delay).
type PublishBounder interface {
	BoundsPublish() bool
}

// TransportOptions are given to transport factories.
type TransportOptions struct {
	// Logger receives the transport's logs; never nil.
	Logger *slog.Logger
	// Hostname is the node name of this process (for kombu's bookkeeping).
	Hostname string
	// ConnectTimeout bounds how long Publish waits for a connection during an
	// outage before returning an error.
	ConnectTimeout time.Duration
}

// BrokerFactory opens a broker for a parsed URL. Options ride on the URL query.
type BrokerFactory func(u *url.URL, opts TransportOptions) (Broker, error)

// BackendFactory opens a result backend for a parsed URL.
type BackendFactory func(u *url.URL, opts TransportOptions) (ResultBackend, error)

// BrokerListFactory opens a broker for a URL list (see [ParseURLs]): kombu's
// failover form, several nodes of one cluster. urls holds at least one URL,
// all of the scheme the factory was registered for; transport options ride
// on the first URL's query and apply to the whole list.
type BrokerListFactory func(urls []*url.URL, opts TransportOptions) (Broker, error)

// BackendListFactory opens a result backend for a URL list, as
// [BrokerListFactory] does for brokers.
type BackendListFactory func(urls []*url.URL, opts TransportOptions) (ResultBackend, error)

var (
	registryMu sync.RWMutex
	brokers    = map[string]BrokerFactory{}
	backends   = map[string]BackendFactory{}
	// Transports taking URL lists ("a;b"), by scheme.
	brokerLists  = map[string]BrokerListFactory{}
	backendLists = map[string]BackendListFactory{}
)

// RegisterBroker makes a transport available under a URL scheme. It panics if
// the scheme is registered twice.
func RegisterBroker(scheme string, f BrokerFactory) { register(brokers, "RegisterBroker", scheme, f) }

// RegisterBackend makes a result backend available under a URL scheme.
func RegisterBackend(scheme string, f BackendFactory) {
	register(backends, "RegisterBackend", scheme, f)
}

// RegisterBrokerList makes a transport that accepts URL lists available
// under a URL scheme: [OpenBroker] gives it every list whose URLs all have
// that scheme, and a single URL of that scheme too when no [BrokerFactory]
// is registered for it. It panics if called twice for a scheme.
func RegisterBrokerList(scheme string, f BrokerListFactory) {
	register(brokerLists, "RegisterBrokerList", scheme, f)
}

// RegisterBackendList is [RegisterBrokerList] for result backends.
func RegisterBackendList(scheme string, f BackendListFactory) {
	register(backendLists, "RegisterBackendList", scheme, f)
}

// register adds f to m under scheme; a second registration is a
// programming error.
func register[F any](m map[string]F, fn, scheme string, f F) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := m[scheme]; dup {
		panic("runtime: " + fn + " called twice for scheme " + scheme)
	}
	m[scheme] = f
}

func registered[F, L any](m map[string]F, lists map[string]L) []string {
	var s []string
	for k := range m {
		s = append(s, k+"://")
	}
	for k := range lists {
		if _, ok := m[k]; !ok {
			s = append(s, k+"://")
		}
	}
	sort.Strings(s)
	return s
}

// ErrUnknownScheme is returned for a URL whose scheme no imported transport handles.
var ErrUnknownScheme = errors.New("unknown URL scheme")

// OpenBroker opens the broker that raw names, with the transport registered
// for its scheme; it wraps ErrUnknownScheme when no imported transport has it.
// raw may be a URL list (see [ParseURLs]) when that transport takes lists
// ([RegisterBrokerList]); a list it cannot take is an error, never cut to its
// first URL.
func OpenBroker(raw string, opts TransportOptions) (Broker, error) {
	urls, err := ParseURLs(raw)
	if err != nil {
		return nil, fmt.Errorf("broker URL %s: %w", Redact(raw), err)
	}
	scheme := urls[0].Scheme
	registryMu.RLock()
	f, ok := brokers[scheme]
	lf, lok := brokerLists[scheme]
	names := registered(brokers, brokerLists)
	registryMu.RUnlock()
	switch {
	case len(urls) == 1 && ok:
		return f(urls[0], opts)
	case lok:
		return lf(urls, opts)
	case ok:
		return nil, fmt.Errorf("broker %s: %w", Redact(raw), errNoList(scheme, len(urls)))
	}
	return nil, fmt.Errorf("broker %s: %w %q (registered: %v; import the transport package, e.g. _ \"github.com/taskgen/taskgen/runtime/%s\")", Redact(raw), ErrUnknownScheme, scheme, names, scheme)
}

// OpenBackend opens the result backend that raw names, as OpenBroker does
// for brokers.
func OpenBackend(raw string, opts TransportOptions) (ResultBackend, error) {
	urls, err := ParseURLs(raw)
	if err != nil {
		return nil, fmt.Errorf("backend URL %s: %w", Redact(raw), err)
	}
	scheme := urls[0].Scheme
	registryMu.RLock()
	f, ok := backends[scheme]
	lf, lok := backendLists[scheme]
	names := registered(backends, backendLists)
	registryMu.RUnlock()
	switch {
	case len(urls) == 1 && ok:
		return f(urls[0], opts)
	case lok:
		return lf(urls, opts)
	case ok:
		return nil, fmt.Errorf("backend %s: %w", Redact(raw), errNoList(scheme, len(urls)))
	}
	return nil, fmt.Errorf("backend %s: %w %q (registered: %v)", Redact(raw), ErrUnknownScheme, scheme, names)
}

// Redact returns the URL with its password replaced by "xxxxx", for logs and
// errors; in a URL list (see [ParseURLs]) every URL is redacted.
func Redact(raw string) string {
	if strings.Contains(raw, URLSeparator) {
		parts := strings.Split(raw, URLSeparator)
		for i, p := range parts {
			parts[i] = redactOne(strings.TrimSpace(p))
		}
		return strings.Join(parts, URLSeparator)
	}
	return redactOne(raw)
}

func redactOne(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	// Secrets in the query too (sentinel_password, …): the value of every
	// option whose name mentions a password, a secret or a token.
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			lk := strings.ToLower(k)
			if strings.Contains(lk, "password") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") {
				q[k] = []string{"xxxxx"}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %v", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err
}

// RawMessage is a non-task message on a broker: a Celery event, a
// remote-control request or reply. Headers are plain values (strings,
// numbers, bools, nil, lists, maps).
type RawMessage struct {
	ContentType     string
	ContentEncoding string
	Headers         map[string]any
	Body            []byte
	// Exchange and RoutingKey: where the message was or is to be published.
	Exchange   string
	RoutingKey string
}

// EventTransport is implemented by transports that carry Celery events (the
// "celeryev" exchange: an AMQP topic exchange; Redis pub/sub channels
// "/<db>.celeryev/<routing key>"), so that Flower and taskmon see Go workers
// and Go monitors see Python workers. Events are transient: not persisted,
// not acknowledged.
type EventTransport interface {
	// PublishEvent publishes one event message; msg.RoutingKey is the event
	// type with '-' replaced by '.', e.g. "worker.heartbeat", "task.multi".
	// It must not keep msg, its Body or its Headers after it returns: the
	// worker's event sender reuses them for the next event.
	PublishEvent(ctx context.Context, msg *RawMessage) error
	// SubscribeEvents delivers every event published on the broker until ctx
	// ends, then closes the channel.
	SubscribeEvents(ctx context.Context) (<-chan *RawMessage, error)
}

// ControlTransport is implemented by transports that carry Celery's remote
// control (pidbox): broadcast requests on the "celery.pidbox" fanout
// exchange and replies to "reply.celery.pidbox".
type ControlTransport interface {
	// ConsumeControl delivers the control requests broadcast to workers,
	// consumed as node nodename (AMQP queue "<nodename>.celery.pidbox"),
	// until ctx ends.
	ConsumeControl(ctx context.Context, nodename string) (<-chan *RawMessage, error)
	// PublishControl broadcasts a control request (as `celery inspect` does).
	PublishControl(ctx context.Context, msg *RawMessage) error
	// Reply publishes a reply to a request's reply_to exchange and routing key.
	Reply(ctx context.Context, exchange, routingKey string, msg *RawMessage) error
	// ConsumeReplies delivers the replies addressed to the client oid until ctx ends.
	ConsumeReplies(ctx context.Context, oid string) (<-chan *RawMessage, error)
}
