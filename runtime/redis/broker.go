package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
)

func init() {
	for _, scheme := range []string{"redis", "rediss"} {
		driver.RegisterBroker(scheme, func(u *url.URL, o driver.TransportOptions) (driver.Broker, error) {
			return Open(u, o)
		})
		driver.RegisterBackend(scheme, func(u *url.URL, o driver.TransportOptions) (driver.ResultBackend, error) {
			return OpenBackend(u, o)
		})
	}
	// sentinel:// takes kombu's URL lists ("sentinel://h1:26379;sentinel://h2:26379/0").
	driver.RegisterBrokerList("sentinel", func(urls []*url.URL, o driver.TransportOptions) (driver.Broker, error) {
		return OpenList(urls, o)
	})
	driver.RegisterBackendList("sentinel", func(urls []*url.URL, o driver.TransportOptions) (driver.ResultBackend, error) {
		return OpenBackendList(urls, o)
	})
}

// Broker is the kombu-compatible Redis transport. It is safe for concurrent
// use. Create it through runtime.New with a redis://, rediss:// or
// sentinel:// URL, or with Open.
type Broker struct {
	scheduleStore // driver.ScheduleStore: runtime/beat's state

	opts   *Options
	client *goredis.Client
	log    *slog.Logger
	url    string // redacted

	pubMu    sync.Mutex
	pending  []*pubReq // waiting to be written
	flushers int       // goroutines writing a batch now
	handoff  bool      // a pending caller was told to write the next batch
	lastSize int       // size of the batch written last
	declared sync.Map  // queue name -> struct{}: binding set member written

	ackCh chan string

	// parked wakes this process's delayed-message movers after Defer
	// parked a message, which may be due before they would next look.
	parked chan struct{}

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // acker
	consumers sync.WaitGroup // consume loops and their helpers

	// blockClient serves the consumers' blocking BLMOVEs, one connection
	// each, so that many consumed queues never exhaust client's pool.
	blockOnce   sync.Once
	blockClient *goredis.Client

	master masterCache // CurrentNode's (nodes.go)
}

var (
	_ driver.Broker         = (*Broker)(nil)
	_ driver.Delayer        = (*Broker)(nil)
	_ driver.QueueInspector = (*Broker)(nil)
	_ driver.PublishBounder = (*Broker)(nil)
)

// ErrClosed is returned by a Broker or Backend used after Close.
var ErrClosed = errors.New("redis transport closed")

const (
	publishFlushers = 4 // batches written concurrently
	maxPublishBatch = 512
	maxAckBatch     = 1024
	fetchers        = 2 // concurrent fetch loops per Consume
)

// Open opens a broker for a redis:// or rediss:// URL, or a sentinel:// URL
// list (see the package documentation for the forms and options). It does
// not contact Redis: an unreachable server shows in Publish and Consume.
func Open(u *url.URL, topts driver.TransportOptions) (*Broker, error) {
	urls, err := urlList(u)
	if err != nil {
		return nil, err
	}
	return OpenList(urls, topts)
}

// OpenList opens a broker for a list of sentinel:// URLs, kombu's Redis
// Sentinel form (see the package documentation), or for a list of one
// redis:// or rediss:// URL (a longer list of those is an error wrapping
// driver.ErrURLList).
func OpenList(urls []*url.URL, topts driver.TransportOptions) (*Broker, error) {
	o, err := parseOptions(urls, topts)
	if err != nil {
		return nil, err
	}
	client := o.newClient()
	b := &Broker{
		scheduleStore: scheduleStore{client, o.GlobalKeyPrefix},
		opts:          o,
		client:        client,
		log:           o.log.With("transport", "redis", "url", o.url),
		url:           o.url,
		ackCh:         make(chan string, 4096),
		parked:        make(chan struct{}, 1),
		closing:       make(chan struct{}),
	}
	b.wg.Go(b.acker)
	return b, nil
}

// blocking returns the client of blocking commands (created on first use).
func (b *Broker) blocking() *goredis.Client {
	b.blockOnce.Do(func() {
		// One connection per blocked command; no silent retry: a blocked
		// command whose connection dies may have moved a message into the
		// inbox, and the blocker must wake the fetch loops at once rather
		// than block again for a poll.
		b.blockClient = b.opts.newBlockingClient()
	})
	return b.blockClient
}

// Options returns the broker's parsed options.
func (b *Broker) Options() Options { return *b.opts }

// Client returns the underlying go-redis client (for tests and tools).
func (b *Broker) Client() *goredis.Client { return b.client }

// Close stops the broker's background work, flushes pending acknowledgements
// and closes its connections. Consumers should be stopped (their ctx ended)
// first; deliveries still un-acknowledged stay in kombu's unacked hash and
// are restored after the visibility timeout.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closing)
		b.wg.Wait()
		b.pubMu.Lock()
		keep := b.pending[:0]
		for _, r := range b.pending {
			if r.lead {
				keep = append(keep, r) // it will write (and fail) itself
				continue
			}
			r.done <- ErrClosed
		}
		b.pending = keep
		b.pubMu.Unlock()
		b.consumers.Wait()
		if b.blockClient != nil {
			_ = b.blockClient.Close()
		}
		b.closeFanout() // events and remote control (fanout.go)
		b.closeErr = b.client.Close()
	})
	return b.closeErr
}

func (b *Broker) isClosing() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}

// QueueLength returns the number of ready messages in queue (all its
// priority lists).
func (b *Broker) QueueLength(ctx context.Context, queue string) (int64, error) {
	pipe := b.client.Pipeline()
	var cmds [4]*goredis.IntCmd
	for i, step := range steps {
		cmds[i] = pipe.LLen(ctx, b.opts.key(listName(queue, step)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis queue length: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
