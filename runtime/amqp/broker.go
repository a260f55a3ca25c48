package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

func init() {
	driver.RegisterBroker("amqp", open)
	driver.RegisterBroker("amqps", open)
}

func open(u *url.URL, opts driver.TransportOptions) (driver.Broker, error) {
	return New(u, opts)
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

// QueueLength returns the number of ready messages in queue (passive
// declare). A queue that does not exist is an error.
func (b *Broker) QueueLength(ctx context.Context, queue string) (int64, error) {
	rctx, cancel := b.retryContext(ctx)
	defer cancel()
	var n int64
	var lastErr error
	backoff := reconnect.Backoff{Policy: pollPolicy}
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
		if !backoff.Wait(rctx) {
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
