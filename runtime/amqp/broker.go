package amqp

import (
	"context"
	"crypto/tls"
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
	driver.RegisterBrokerList("amqp", openList)
	driver.RegisterBrokerList("amqps", openList)
}

func open(u *url.URL, opts driver.TransportOptions) (driver.Broker, error) {
	return New(u, opts)
}

func openList(urls []*url.URL, opts driver.TransportOptions) (driver.Broker, error) {
	return NewList(urls, opts)
}

// Broker is the RabbitMQ transport. It implements [runtime.Broker],
// [runtime.Delayer], [runtime.QueueInspector], [runtime.EventTransport] and
// [runtime.ControlTransport] and is safe for concurrent use.
type Broker struct {
	opts     Options
	topts    driver.TransportOptions
	nodes    []endpoint   // the URL list, in order
	node     atomic.Int32 // index in nodes of the node to dial first
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

// endpoint is one node of the broker's URL list.
type endpoint struct {
	dialURL  string // without taskgen's options; holds the password
	redacted string
	tls      *tls.Config
}

var (
	_ driver.Broker         = (*Broker)(nil)
	_ driver.Delayer        = (*Broker)(nil)
	_ driver.QueueInspector = (*Broker)(nil)
	_ driver.NodeLister     = (*Broker)(nil)
)

// New returns a broker for an amqp:// or amqps:// URL. It does not connect:
// the first Publish, Consume or QueueLength does.
func New(u *url.URL, topts driver.TransportOptions) (*Broker, error) {
	return NewList([]*url.URL{u}, topts)
}

// NewList returns a broker for the nodes of one RabbitMQ cluster, kombu's
// failover form "amqp://u:p@h1:5672/v;amqp://u:p@h2:5673/v" parsed by
// [driver.ParseURLs]: every connection (publishers, consumers, events,
// remote control) goes to the first node that accepts it, trying them in
// list order from the last one that worked, and moves on to the next node
// when its node fails. The transport options are read from the first URL
// and apply to every node; a later URL may repeat them but not differ. All
// URLs must have one scheme and name one virtual host. It does not connect.
func NewList(urls []*url.URL, topts driver.TransportOptions) (*Broker, error) {
	if len(urls) == 0 {
		return nil, errors.New("amqp: no URL")
	}
	parts := make([]string, len(urls))
	for i, u := range urls {
		parts[i] = driver.Redact(u.String())
	}
	redacted := strings.Join(parts, driver.URLSeparator)
	first := urls[0]
	o, err := ParseOptions(first)
	if err != nil {
		return nil, fmt.Errorf("amqp: %s: %w", redacted, err)
	}
	b := &Broker{opts: o, topts: topts, redacted: redacted, consumers: map[*consumer]struct{}{}, warned: map[string]bool{}}
	for i, u := range urls {
		where := redacted
		if len(urls) > 1 {
			where = fmt.Sprintf("%s: URL %d", redacted, i+1)
		}
		if u.Scheme != "amqp" && u.Scheme != "amqps" {
			return nil, fmt.Errorf("amqp: %s: scheme must be amqp or amqps", where)
		}
		if u.Scheme != first.Scheme {
			return nil, fmt.Errorf("amqp: %s: scheme %s differs from the first URL's %s", where, u.Scheme, first.Scheme)
		}
		if i > 0 && u.RawQuery != "" && !sameQuery(u.Query(), first.Query()) {
			return nil, fmt.Errorf("amqp: %s: transport options belong on the first URL of a list and apply to all of it", where)
		}
		du := *u
		du.RawQuery = ""
		du.Fragment = ""
		ep := endpoint{dialURL: du.String(), redacted: parts[i]}
		uri, err := amqp.ParseURI(ep.dialURL)
		if err != nil {
			return nil, fmt.Errorf("amqp: %s: %v", where, errors.New(strings.ReplaceAll(err.Error(), ep.dialURL, ep.redacted)))
		}
		if i == 0 {
			b.vhost = uri.Vhost
		} else if uri.Vhost != b.vhost {
			return nil, fmt.Errorf("amqp: %s: virtual host %q differs from the first URL's %q; the URLs of a list are nodes of one cluster", where, uri.Vhost, b.vhost)
		}
		if o.TLS != nil {
			ep.tls = o.TLS.Clone()
			if first.Query().Get("server_name_indication") == "" {
				ep.tls.ServerName = u.Hostname()
			}
		}
		b.nodes = append(b.nodes, ep)
	}
	if topts.Logger == nil {
		topts.Logger = slog.Default()
	}
	if topts.ConnectTimeout <= 0 {
		topts.ConnectTimeout = DefaultConnectTimeout
	}
	b.topts = topts
	b.log = topts.Logger.With("broker", redacted)
	return b, nil
}

// sameQuery reports whether two queries hold the same options.
func sameQuery(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb := b[k]
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if va[i] != vb[i] {
				return false
			}
		}
	}
	return true
}

// Options returns the broker's options.
func (b *Broker) Options() Options { return b.opts }

// Nodes returns the URLs of the broker's nodes, in list order, with their
// passwords redacted (for monitors and logs).
func (b *Broker) Nodes() []string {
	out := make([]string, len(b.nodes))
	for i, ep := range b.nodes {
		out[i] = ep.redacted
	}
	return out
}

// CurrentNode returns the redacted URL of the node the next connection
// dials first: the one that served the last connection, unless it dropped
// a connection since.
func (b *Broker) CurrentNode() string { return b.nodes[b.node.Load()].redacted }

// Vhost returns the virtual host the URL names.
func (b *Broker) Vhost() string { return b.vhost }

var (
	errClosed   = errors.New("amqp: broker closed")
	errConnLost = errors.New("amqp: connection lost; the broker redelivers the message")
	// errNacked is retried: RabbitMQ nacks what it could not store just
	// then, as a quorum queue without a leader during an election.
	errNacked = errors.New("amqp: the broker refused the message (negative publisher confirm)")
	// errConfirmTimeout is not retried: the broker may hold the message, and
	// a broker too slow to confirm is not helped by more publishes.
	errConfirmTimeout = errors.New("amqp: no publisher confirm within confirm_timeout")
)

// dial opens one connection: to the node that served the last one, or
// failing that to the next nodes of the list in turn. Its error, when every
// node failed, names each node's failure.
func (b *Broker) dial(role string) (*amqp.Connection, error) {
	n := len(b.nodes)
	start := int(b.node.Load())
	var errs dialErrors
	for i := range n {
		idx := (start + i) % n
		conn, err := b.dialNode(idx, role)
		if err == nil {
			b.node.Store(int32(idx))
			if n > 1 {
				go b.watchNode(conn, idx)
			}
			if len(errs) > 0 {
				b.log.Warn("amqp connected to another node of the list", "node", b.nodes[idx].redacted, "role", role, "failed", errs.list())
			}
			return conn, nil
		}
		errs = append(errs, err)
	}
	if n == 1 {
		return nil, errs[0]
	}
	b.node.CompareAndSwap(int32(start), int32((start+1)%n))
	return nil, errs
}

// watchNode makes the next node of the list the first to dial once conn,
// a connection to node idx, is lost (rather than closed by taskgen), as
// kombu's round-robin failover does: a node that dropped its clients is
// likely down or partitioned, and dialing it first would cost a connect
// timeout.
func (b *Broker) watchNode(conn *amqp.Connection, idx int) {
	if e := <-conn.NotifyClose(make(chan *amqp.Error, 1)); e != nil {
		b.node.CompareAndSwap(int32(idx), int32((idx+1)%len(b.nodes)))
	}
}

// dialErrors are the failures of one dial, one per node of the list.
type dialErrors []error

func (e dialErrors) Error() string {
	return "amqp: no node of the list accepted the connection: " + e.list()
}

// list is the failures, separated by "; ".
func (e dialErrors) list() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e dialErrors) Unwrap() []error { return e }

// dialNode opens one connection to node idx.
func (b *Broker) dialNode(idx int, role string) (*amqp.Connection, error) {
	ep := &b.nodes[idx]
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("taskgen " + role + " " + b.topts.Hostname)
	cfg := amqp.Config{
		Heartbeat:       b.opts.Heartbeat,
		TLSClientConfig: ep.tls,
		Properties:      props,
		Locale:          "en_US",
		Dial:            amqp.DefaultDial(b.opts.ConnectTimeout),
	}
	conn, err := amqp.DialConfig(ep.dialURL, cfg)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), ep.dialURL, ep.redacted)
		var ae *amqp.Error
		if errors.As(err, &ae) {
			return nil, &amqp.Error{Code: ae.Code, Reason: "amqp: connect " + ep.redacted + ": " + msg, Server: ae.Server, Recover: ae.Recover}
		}
		return nil, fmt.Errorf("amqp: connect %s: %s", ep.redacted, msg)
	}
	return conn, nil
}

// permanent reports errors that retrying does not cure: refused credentials
// or permissions, inequivalent declarations, missing entities.
// For a dial of several nodes that is so only when every node's failure is.
func permanent(err error) bool {
	var de dialErrors
	if errors.As(err, &de) {
		for _, e := range de {
			if !permanent(e) {
				return false
			}
		}
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed, amqp.ResourceLocked:
			return true
		}
	}
	return errors.Is(err, amqp.ErrSASL) || errors.Is(err, amqp.ErrCredentials) || errors.Is(err, amqp.ErrVhost) || errors.Is(err, errClosed) || errors.Is(err, errConfirmTimeout)
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

// drop closes ch, the slot's channel, so that the next get opens another.
func (p *pubChan) drop(ch *amqp.Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch.Load() == ch {
		p.ch.Store(nil)
	}
	go ch.Close() // waits for the broker's close-ok
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
// It makes one connection attempt, in the background; concurrent callers
// share it, and each waits for it no longer than its ctx allows (a server
// that accepts TCP but never finishes the handshake would otherwise hold a
// caller for the whole connect_timeout).
func (b *Broker) session(ctx context.Context) (*session, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	if s := b.sess; s != nil && !s.dead() {
		b.mu.Unlock()
		return s, nil
	}
	d := b.dialing
	if d == nil {
		d = make(chan struct{})
		b.dialing = d
		old := b.sess
		go b.connectSession(old, d)
	}
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

// connectSession replaces old (nil, or a session found dead) with a new
// one, records the outcome for the callers waiting on d, and closes d.
func (b *Broker) connectSession(old *session, d chan struct{}) {
	if old != nil {
		old.conn.Close()
	}
	s, err := b.newSession()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dialing = nil
	b.dialErr = err
	if err == nil && b.closed {
		s.conn.Close()
		err = errClosed
		b.dialErr = err
	}
	if err == nil {
		b.sess = s
	} else {
		b.sess = nil
	}
	close(d)
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
