package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/internal/ctxsleep"
	"github.com/taskgen/taskgen/runtime/driver"
)

func init() {
	driver.RegisterBroker("amqp", open)
	driver.RegisterBroker("amqps", open)
}

func open(u *url.URL, opts driver.TransportOptions) (driver.Broker, error) {
	return New(u, opts)
}

// Defaults of the URL options.
const (
	// DefaultHeartbeat is the heartbeat option's default.
	DefaultHeartbeat = 10 * time.Second
	// DefaultConnectTimeout is the connect_timeout option's default.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultPublishChannels is the publish_channels option's default.
	DefaultPublishChannels = 4
	// DefaultConsumeConnections is the consume_connections option's default.
	DefaultConsumeConnections = 1
	// DefaultDeadLetterExchange is the dead_letter_exchange option's default.
	DefaultDeadLetterExchange = "taskgen.dlx"
	// DefaultDelayPrefix is the delay_prefix option's default.
	DefaultDelayPrefix = "taskgen.delay"
	// DeadLetterQueueSuffix is appended to a queue's name to name its
	// dead-letter queue.
	DeadLetterQueueSuffix = ".dead_letter"
	// MaxDelayLevel is the largest wait queue: 2^22 s, about 48.5 days, so
	// that x-message-ttl stays below 2^32 ms (Erlang timer limit). Longer
	// delays take several hops of that size.
	MaxDelayLevel = 22
)

// Options are the transport options read from the URL query (see the package
// documentation).
type Options struct {
	// Heartbeat is the AMQP heartbeat interval (heartbeat).
	Heartbeat time.Duration
	// ConnectTimeout bounds one connection attempt (connect_timeout).
	ConnectTimeout time.Duration
	// MaxPriority is x-max-priority of task queues; 0 declares none (max_priority).
	MaxPriority uint8
	// PublishChannels is the number of shared confirm channels (publish_channels).
	PublishChannels int
	// ConsumeConnections is the number of connections each Consume call
	// receives on, sharing its prefetch (consume_connections).
	ConsumeConnections int
	// ConfirmTimeout bounds the wait for one publisher confirm; 0 waits as
	// long as the caller's ctx allows (confirm_timeout).
	ConfirmTimeout time.Duration
	// DeadLetterExchange names the dead-letter exchange (dead_letter_exchange).
	DeadLetterExchange string
	// DelayPrefix prefixes the names of delay wait queues (delay_prefix).
	DelayPrefix string
	// TLS is the TLS configuration of amqps:// URLs, nil for amqp://.
	TLS *tls.Config
}

var knownOptions = []string{"heartbeat", "connect_timeout", "confirm_timeout", "max_priority", "publish_channels",
	"consume_connections", "dead_letter_exchange", "delay_prefix", "cacertfile", "certfile", "keyfile", "server_name_indication"}

func parseDuration(name, s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("option %s=%q: want seconds or a Go duration", name, s)
	}
	return d, nil
}

// ParseOptions reads the transport options of u's query.
func ParseOptions(u *url.URL) (Options, error) {
	o := Options{Heartbeat: DefaultHeartbeat, ConnectTimeout: DefaultConnectTimeout, PublishChannels: DefaultPublishChannels,
		ConsumeConnections: DefaultConsumeConnections,
		DeadLetterExchange: DefaultDeadLetterExchange, DelayPrefix: DefaultDelayPrefix}
	q := u.Query()
	for k := range q {
		known := false
		for _, n := range knownOptions {
			known = known || n == k
		}
		if !known {
			return o, fmt.Errorf("unknown option %q (known: %s)", k, strings.Join(knownOptions, ", "))
		}
	}
	var err error
	if s := q.Get("heartbeat"); s != "" {
		if o.Heartbeat, err = parseDuration("heartbeat", s); err != nil {
			return o, err
		}
	}
	if s := q.Get("connect_timeout"); s != "" {
		if o.ConnectTimeout, err = parseDuration("connect_timeout", s); err != nil {
			return o, err
		}
	}
	if s := q.Get("confirm_timeout"); s != "" {
		if o.ConfirmTimeout, err = parseDuration("confirm_timeout", s); err != nil {
			return o, err
		}
	}
	if s := q.Get("max_priority"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return o, fmt.Errorf("option max_priority=%q: want 0-255", s)
		}
		o.MaxPriority = uint8(n)
	}
	if s := q.Get("publish_channels"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 256 {
			return o, fmt.Errorf("option publish_channels=%q: want 1-256", s)
		}
		o.PublishChannels = n
	}
	if s := q.Get("consume_connections"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 16 {
			return o, fmt.Errorf("option consume_connections=%q: want 1-16", s)
		}
		o.ConsumeConnections = n
	}
	if s := q.Get("dead_letter_exchange"); s != "" {
		o.DeadLetterExchange = s
	}
	if s := q.Get("delay_prefix"); s != "" {
		o.DelayPrefix = s
	}
	if u.Scheme == "amqps" {
		tc := &tls.Config{ServerName: u.Hostname()}
		if s := q.Get("server_name_indication"); s != "" {
			tc.ServerName = s
		}
		if s := q.Get("cacertfile"); s != "" {
			pem, err := os.ReadFile(s)
			if err != nil {
				return o, fmt.Errorf("option cacertfile: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("option cacertfile: no PEM certificate in %s", s)
			}
		}
		if cf, kf := q.Get("certfile"), q.Get("keyfile"); cf != "" || kf != "" {
			cert, err := tls.LoadX509KeyPair(cf, kf)
			if err != nil {
				return o, fmt.Errorf("options certfile/keyfile: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		o.TLS = tc
	}
	return o, nil
}

// Broker is the RabbitMQ transport. It implements [runtime.Broker],
// [runtime.Delayer], [runtime.QueueInspector], [runtime.EventTransport] and
// [runtime.ControlTransport] and is safe for concurrent use.
type Broker struct {
	opts     Options
	topts    driver.TransportOptions
	dialURL  string // without taskgen's options; holds the password
	redacted string
	log      *slog.Logger
	vhost    string

	mu        sync.Mutex
	sess      *session
	dialing   chan struct{}
	dialErr   error
	closed    bool
	consumers map[*consumer]struct{}
	warned    map[string]bool

	fan fanoutState // events and remote control (fanout.go)
}

var (
	_ driver.Broker         = (*Broker)(nil)
	_ driver.Delayer        = (*Broker)(nil)
	_ driver.QueueInspector = (*Broker)(nil)
)

// New returns a broker for an amqp:// or amqps:// URL. It does not connect:
// the first Publish, Consume or QueueLength does.
func New(u *url.URL, topts driver.TransportOptions) (*Broker, error) {
	redacted := driver.Redact(u.String())
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return nil, fmt.Errorf("amqp: %s: scheme must be amqp or amqps", redacted)
	}
	o, err := ParseOptions(u)
	if err != nil {
		return nil, fmt.Errorf("amqp: %s: %w", redacted, err)
	}
	du := *u
	du.RawQuery = ""
	du.Fragment = ""
	uri, err := amqp.ParseURI(du.String())
	if err != nil {
		return nil, fmt.Errorf("amqp: %s: %v", redacted, errors.New(strings.ReplaceAll(err.Error(), du.String(), redacted)))
	}
	if topts.Logger == nil {
		topts.Logger = slog.Default()
	}
	if topts.ConnectTimeout <= 0 {
		topts.ConnectTimeout = DefaultConnectTimeout
	}
	du.RawQuery = ""
	b := &Broker{opts: o, topts: topts, dialURL: du.String(), redacted: redacted, vhost: uri.Vhost,
		consumers: map[*consumer]struct{}{}, warned: map[string]bool{}}
	b.log = topts.Logger.With("broker", redacted)
	return b, nil
}

// Options returns the broker's options.
func (b *Broker) Options() Options { return b.opts }

// Vhost returns the virtual host the URL names.
func (b *Broker) Vhost() string { return b.vhost }

var (
	errClosed   = errors.New("amqp: broker closed")
	errConnLost = errors.New("amqp: connection lost; the broker redelivers the message")
	errNacked   = errors.New("amqp: the broker refused the message (negative publisher confirm)")
	// errConfirmTimeout is not retried: the broker may hold the message, and
	// a broker too slow to confirm is not helped by more publishes.
	errConfirmTimeout = errors.New("amqp: no publisher confirm within confirm_timeout")
)

// dial opens one connection.
func (b *Broker) dial(role string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("taskgen " + role + " " + b.topts.Hostname)
	cfg := amqp.Config{
		Heartbeat:       b.opts.Heartbeat,
		TLSClientConfig: b.opts.TLS,
		Properties:      props,
		Locale:          "en_US",
		Dial:            amqp.DefaultDial(b.opts.ConnectTimeout),
	}
	conn, err := amqp.DialConfig(b.dialURL, cfg)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), b.dialURL, b.redacted)
		var ae *amqp.Error
		if errors.As(err, &ae) {
			return nil, &amqp.Error{Code: ae.Code, Reason: "amqp: connect " + b.redacted + ": " + msg, Server: ae.Server, Recover: ae.Recover}
		}
		return nil, fmt.Errorf("amqp: connect %s: %s", b.redacted, msg)
	}
	return conn, nil
}

// permanent reports errors that retrying does not cure: refused credentials
// or permissions, inequivalent declarations, missing entities.
func permanent(err error) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed, amqp.ResourceLocked:
			return true
		}
	}
	return errors.Is(err, amqp.ErrSASL) || errors.Is(err, amqp.ErrCredentials) || errors.Is(err, amqp.ErrVhost) || errors.Is(err, errClosed) || errors.Is(err, errNacked) || errors.Is(err, errConfirmTimeout)
}

// session is one publisher connection with its confirm channels.
type session struct {
	b      *Broker
	conn   *amqp.Connection
	closed chan struct{}
	pubs   []*pubChan
	next   atomic.Uint32

	adminMu sync.Mutex
	admin   *amqp.Channel

	declMu   sync.RWMutex
	declared map[declKey]*decl
}

type decl struct {
	done chan struct{}
	err  error
}

type pubChan struct {
	mu sync.Mutex
	ch atomic.Pointer[amqp.Channel]
}

func (s *session) dead() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func watchClose(conn *amqp.Connection) chan struct{} {
	closed := make(chan struct{})
	errs := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		<-errs
		close(closed)
	}()
	return closed
}

func (b *Broker) newSession() (*session, error) {
	conn, err := b.dial("publisher")
	if err != nil {
		return nil, err
	}
	s := &session{b: b, conn: conn, closed: watchClose(conn), declared: map[declKey]*decl{}}
	s.pubs = make([]*pubChan, b.opts.PublishChannels)
	for i := range s.pubs {
		s.pubs[i] = new(pubChan)
		if _, err := s.pubs[i].get(s); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return s, nil
}

// get returns the open confirm-mode channel of the slot, reopening it after
// a channel-level error.
func (p *pubChan) get(s *session) (*amqp.Channel, error) {
	if ch := p.ch.Load(); ch != nil && !ch.IsClosed() {
		return ch, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch := p.ch.Load(); ch != nil && !ch.IsClosed() {
		return ch, nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, err
	}
	p.ch.Store(ch)
	return ch, nil
}

// withAdmin runs fn on the session's declaration channel, reopening it when a
// failed declaration closed it.
func (s *session) withAdmin(fn func(ch *amqp.Channel) error) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	return withChannel(s.conn, &s.admin, fn)
}

func withChannel(conn *amqp.Connection, slot **amqp.Channel, fn func(ch *amqp.Channel) error) error {
	if *slot == nil || (*slot).IsClosed() {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		*slot = ch
	}
	return fn(*slot)
}

// declKey names one declaration of a session.
type declKey struct {
	kind byte // 'q' task queue, 'l' dead-letter, 'd' delay wait queue
	name string
}

// once runs declare for key once per session; concurrent callers wait for
// the first. A failed declaration is retried by the next caller.
func (s *session) once(key declKey, declare func() error) error {
	s.declMu.RLock()
	d, ok := s.declared[key]
	s.declMu.RUnlock()
	if ok {
		select {
		case <-d.done:
			return d.err
		default:
		}
	}
	s.declMu.Lock()
	d, ok = s.declared[key]
	if ok {
		s.declMu.Unlock()
		select {
		case <-d.done:
			return d.err
		case <-s.closed:
			return errConnLost
		}
	}
	d = &decl{done: make(chan struct{})}
	s.declared[key] = d
	s.declMu.Unlock()
	d.err = declare()
	if d.err != nil {
		s.declMu.Lock()
		delete(s.declared, key)
		s.declMu.Unlock()
	}
	close(d.done)
	return d.err
}

// queueArgs are the arguments of a task queue: none, as Celery, unless
// max_priority is configured.
func (b *Broker) queueArgs() amqp.Table {
	if b.opts.MaxPriority == 0 {
		return nil
	}
	return amqp.Table{"x-max-priority": int32(b.opts.MaxPriority)}
}

func (b *Broker) warnOnce(key string, msg string, args ...any) {
	b.mu.Lock()
	seen := b.warned[key]
	b.warned[key] = true
	b.mu.Unlock()
	if !seen {
		b.log.Warn(msg, args...)
	}
}

// declareTaskQueue declares queue q as Celery does: a durable direct exchange
// q, a durable queue q and the binding q → q with routing key q. Entities
// that exist with other arguments are used as they are (with a warning).
func (b *Broker) declareTaskQueue(conn *amqp.Connection, slot **amqp.Channel, q string) error {
	return b.declare(conn, slot, q, q, b.queueArgs(), true)
}

// declare declares a durable queue with args and, when bind, the durable
// direct exchange named exchange bound to it with routing key q.
func (b *Broker) declare(conn *amqp.Connection, slot **amqp.Channel, exchange, q string, args amqp.Table, bind bool) error {
	exchangeOK := true
	if bind {
		err := withChannel(conn, slot, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil)
		})
		if err != nil {
			if !isPrecondition(err) {
				return fmt.Errorf("amqp: declare exchange %q: %w", exchange, err)
			}
			exchangeOK = false
			b.warnOnce("x:"+exchange, "exchange exists with other settings than Celery's (direct, durable); using it as it is", "exchange", exchange, "err", err)
		}
	}
	err := withChannel(conn, slot, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(q, true, false, false, false, args)
		return err
	})
	if err != nil {
		if !isPrecondition(err) {
			return fmt.Errorf("amqp: declare queue %q: %w", q, err)
		}
		b.warnOnce("q:"+q, "queue exists with other arguments; using it as it is (set max_priority to match the other side)", "queue", q, "err", err)
		err = withChannel(conn, slot, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		})
		if err != nil {
			return fmt.Errorf("amqp: declare queue %q: %w", q, err)
		}
	}
	if bind && exchangeOK {
		err := withChannel(conn, slot, func(ch *amqp.Channel) error {
			return ch.QueueBind(q, q, exchange, false, nil)
		})
		if err != nil {
			return fmt.Errorf("amqp: bind queue %q to exchange %q: %w", q, exchange, err)
		}
	}
	return nil
}

func isPrecondition(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed
}

func (s *session) declareQueue(q string) error {
	return s.once(declKey{'q', q}, func() error {
		s.adminMu.Lock()
		defer s.adminMu.Unlock()
		return s.b.declareTaskQueue(s.conn, &s.admin, q)
	})
}

// deadLetterQueue names the dead-letter queue of queue.
func deadLetterQueue(queue string) string { return queue + DeadLetterQueueSuffix }

// declareDeadLetter declares the dead-letter exchange (direct, durable),
// the dead-letter queue of q (durable) and their binding with routing key q.
func (s *session) declareDeadLetter(q string) error {
	ex := s.b.opts.DeadLetterExchange
	return s.once(declKey{'l', q}, func() error {
		return s.withAdmin(func(ch *amqp.Channel) error {
			if err := ch.ExchangeDeclare(ex, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
				return fmt.Errorf("amqp: declare dead-letter exchange %q: %w", ex, err)
			}
			if _, err := ch.QueueDeclare(deadLetterQueue(q), true, false, false, false, nil); err != nil {
				return fmt.Errorf("amqp: declare dead-letter queue %q: %w", deadLetterQueue(q), err)
			}
			if err := ch.QueueBind(deadLetterQueue(q), q, ex, false, nil); err != nil {
				return fmt.Errorf("amqp: bind dead-letter queue %q: %w", deadLetterQueue(q), err)
			}
			return nil
		})
	})
}

// delayQueue names the wait queue of queue at level (2^level seconds).
func (b *Broker) delayQueue(queue string, level int) string {
	return b.opts.DelayPrefix + "." + queue + "." + strconv.FormatInt(1<<level, 10) + "s"
}

func (s *session) declareDelay(queue string, level int) error {
	name := s.b.delayQueue(queue, level)
	return s.once(declKey{'d', name}, func() error {
		if err := s.declareQueue(queue); err != nil {
			return err
		}
		args := amqp.Table{
			"x-message-ttl":             int64(1<<level) * 1000,
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": queue,
		}
		s.adminMu.Lock()
		defer s.adminMu.Unlock()
		return s.b.declare(s.conn, &s.admin, "", name, args, false)
	})
}

// target is what a publish needs declared first.
type target struct {
	kind  byte // 'q' task queue, 'l' its dead-letter queue, 'd' its wait queue at level
	queue string
	level int
}

func (s *session) prepare(t target) error {
	switch t.kind {
	case 'q':
		return s.declareQueue(t.queue)
	case 'l':
		return s.declareDeadLetter(t.queue)
	case 'd':
		return s.declareDelay(t.queue, t.level)
	}
	return nil
}

// session returns the live publisher session, connecting when there is none.
// It makes one connection attempt; concurrent callers share it.
func (b *Broker) session(ctx context.Context) (*session, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, errClosed
		}
		if s := b.sess; s != nil && !s.dead() {
			b.mu.Unlock()
			return s, nil
		}
		if d := b.dialing; d != nil {
			b.mu.Unlock()
			select {
			case <-d:
				b.mu.Lock()
				s, err := b.sess, b.dialErr
				b.mu.Unlock()
				if s == nil || s.dead() {
					if err == nil {
						err = errConnLost
					}
					return nil, err
				}
				return s, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		d := make(chan struct{})
		b.dialing = d
		old := b.sess
		b.mu.Unlock()
		if old != nil {
			old.conn.Close()
		}
		s, err := b.newSession()
		b.mu.Lock()
		b.dialing = nil
		b.dialErr = err
		close(d)
		if err == nil && b.closed {
			s.conn.Close()
			err = errClosed
		}
		if err != nil {
			b.mu.Unlock()
			return nil, err
		}
		b.sess = s
		b.mu.Unlock()
		//lint:ignore SA4004 the loop repeats only through the continue above; this path ends it
		return s, nil
	}
}

// retryContext bounds a retry loop: ctx's deadline, or ConnectTimeout when
// ctx has none.
func (b *Broker) retryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.topts.ConnectTimeout)
}

// publish publishes p with a publisher confirm, after prepare succeeded on
// the session, retrying connection losses within the retry bound.
func (b *Broker) publish(ctx context.Context, exchange, key string, prepare target, p *amqp.Publishing) error {
	var lastErr error
	backoff := 50 * time.Millisecond
	var rctx context.Context
	cancel := func() {}
	defer func() { cancel() }()
	for attempt := 0; ; attempt++ {
		err := b.publishOnce(ctx, exchange, key, prepare, p)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if lastErr != nil {
				return fmt.Errorf("%w (earlier: %v)", err, lastErr)
			}
			return err
		}
		if permanent(err) {
			return err
		}
		lastErr = err
		if rctx == nil {
			rctx, cancel = b.retryContext(ctx)
		}
		if !ctxsleep.Sleep(rctx, backoff) {
			return fmt.Errorf("amqp: broker unreachable, gave up after %d attempts: %w", attempt+1, lastErr)
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (b *Broker) publishOnce(ctx context.Context, exchange, key string, prepare target, p *amqp.Publishing) error {
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	if err := s.prepare(prepare); err != nil {
		return err
	}
	pc := s.pubs[int(s.next.Add(1))%len(s.pubs)]
	ch, err := pc.get(s)
	if err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, *p)
	if err != nil {
		return err
	}
	var timeout <-chan time.Time
	if b.opts.ConfirmTimeout > 0 {
		t := time.NewTimer(b.opts.ConfirmTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("amqp: no publisher confirm: %w", ctx.Err())
	case <-timeout:
		return fmt.Errorf("%w (%v)", errConfirmTimeout, b.opts.ConfirmTimeout)
	}
	if dc.Acked() {
		return nil
	}
	if ch.IsClosed() || s.dead() {
		// Pending confirmations of a closed channel are reported as nacks:
		// the message may or may not have been stored.
		return fmt.Errorf("%w before the publisher confirm", errConnLost)
	}
	return errNacked
}

// Publish sends msg to queue (default exchange, routing key = queue) and
// returns once RabbitMQ confirmed it. The queue is declared first, once per
// connection, as Celery declares it.
func (b *Broker) Publish(ctx context.Context, queue string, msg *driver.Message) error {
	p, err := publishing(msg)
	if err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", queue, err)
	}
	return b.publish(ctx, "", queue, target{kind: 'q', queue: queue}, &p)
}

// delayLevel returns the largest level l with 2^l seconds ≤ d, capped at
// MaxDelayLevel, or -1 when d is under a second.
func delayLevel(d time.Duration) int {
	sec := uint64(d / time.Second)
	if sec == 0 {
		return -1
	}
	return min(bits.Len64(sec)-1, MaxDelayLevel)
}

// Defer parks msg in the wait queue of queue whose TTL is the largest power
// of two seconds not above the remaining delay; RabbitMQ dead-letters it to
// queue when the TTL ends (see the package documentation). A message due in
// less than a second is published to queue directly.
func (b *Broker) Defer(ctx context.Context, queue string, msg *driver.Message, due time.Time) error {
	level := delayLevel(time.Until(due))
	if level < 0 {
		return b.Publish(ctx, queue, msg)
	}
	p, err := publishing(msg)
	if err != nil {
		return fmt.Errorf("amqp: defer to %q: %w", queue, err)
	}
	// A per-message expiration would cut the wait short; the expires header
	// still revokes the task when it is finally received.
	p.Expiration = ""
	name := b.delayQueue(queue, level)
	return b.publish(ctx, "", name, target{kind: 'd', queue: queue, level: level}, &p)
}

// QueueLength returns the number of ready messages in queue (passive
// declare). A queue that does not exist is an error.
func (b *Broker) QueueLength(ctx context.Context, queue string) (int64, error) {
	rctx, cancel := b.retryContext(ctx)
	defer cancel()
	var n int64
	var lastErr error
	for {
		s, err := b.session(rctx)
		if err == nil {
			err = s.withAdmin(func(ch *amqp.Channel) error {
				q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
				n = int64(q.Messages)
				return err
			})
			if err == nil {
				return n, nil
			}
		}
		if permanent(err) {
			return 0, fmt.Errorf("amqp: queue %q: %w", queue, err)
		}
		lastErr = err
		if !ctxsleep.Sleep(rctx, 100*time.Millisecond) {
			return 0, fmt.Errorf("amqp: queue %q: %w", queue, lastErr)
		}
	}
}

// Close closes the publisher connection, every consumer connection and the
// fanout (events, remote control) connections, ending their subscriptions.
// Deliveries not yet acknowledged return to their queues.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	s := b.sess
	b.sess = nil
	cs := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	var errs []error
	if s != nil && !s.conn.IsClosed() {
		errs = append(errs, ignoreClosed(s.conn.Close()))
	}
	for _, c := range cs {
		c.close()
	}
	b.closeFanout()
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
