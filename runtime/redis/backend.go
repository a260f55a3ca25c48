package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/reconnect"
)

// Backend is Celery's Redis result backend: documents live under
// celery-task-meta-<id> and every store is also PUBLISHed on a channel of
// the same name, which waiters subscribe to (no polling). All waiters of a
// Backend share one pub/sub connection, as Python's does.
type Backend struct {
	scheduleStore // driver.ScheduleStore: runtime/beat's state

	opts   *Options
	client *goredis.Client
	log    *slog.Logger
	url    string

	mu     sync.Mutex
	ps     *goredis.PubSub
	subs   map[string]*channelState
	closed bool
	done   chan struct{} // closed when the dispatcher stops
}

type channelState struct {
	confirmed bool
	waiters   map[*waiter]struct{}
}

type waiter struct {
	sub  chan struct{} // subscription (re)confirmed: read the key again
	msg  chan []byte   // latest published document
	done chan struct{} // the dispatcher stopped
}

var _ driver.ResultBackend = (*Backend)(nil)

// OpenBackend opens a result backend for a redis:// or rediss:// URL, or a
// sentinel:// URL list (Celery's Sentinel backend). It does not contact
// Redis.
func OpenBackend(u *url.URL, topts driver.TransportOptions) (*Backend, error) {
	urls, err := urlList(u)
	if err != nil {
		return nil, err
	}
	return OpenBackendList(urls, topts)
}

// OpenBackendList opens a result backend for a URL list, as OpenList does
// for brokers.
func OpenBackendList(urls []*url.URL, topts driver.TransportOptions) (*Backend, error) {
	o, err := parseOptions(urls, topts)
	if err != nil {
		return nil, err
	}
	client := o.newClient()
	return &Backend{
		scheduleStore: scheduleStore{client, o.GlobalKeyPrefix},
		opts:          o,
		client:        client,
		log:           o.log.With("backend", "redis", "url", o.url),
		url:           o.url,
		subs:          map[string]*channelState{},
	}, nil
}

// Client returns the underlying go-redis client (for tests and tools).
func (b *Backend) Client() *goredis.Client { return b.client }

func (b *Backend) key(taskID string) string {
	return b.opts.GlobalKeyPrefix + b.opts.ResultKeyPrefix + taskID
}

// Store writes doc with SET EX (SET when ttl is 0) and PUBLISHes it on the
// key's channel, in one atomic script, unless the task's stored result is
// already SUCCESS (Celery 5 skips that write too, so a task that ran twice
// keeps its first successful result).
func (b *Backend) Store(ctx context.Context, taskID string, doc []byte, ttl time.Duration) error {
	secs := int64(0)
	if ttl > 0 {
		secs = int64(max(ttl, time.Second) / time.Second)
	}
	if err := b.opts.runScript(ctx, b.client, storeScript, []string{b.key(taskID)}, doc, secs).Err(); err != nil {
		return fmt.Errorf("redis result store to %s: %w", b.url, err)
	}
	return nil
}

// Load returns the stored document of taskID, or nil when there is none.
func (b *Backend) Load(ctx context.Context, taskID string) ([]byte, error) {
	doc, err := b.client.Get(ctx, b.key(taskID)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis result load from %s: %w", b.url, err)
	}
	return doc, nil
}

// Wait subscribes to the task's channel, then reads the key (so a store
// between the two is not missed), then waits for published documents until
// one is ready or ctx ends. After a reconnection it reads the key again.
func (b *Backend) Wait(ctx context.Context, taskID string, ready func(doc []byte) bool) ([]byte, error) {
	ch := b.key(taskID)
	w, err := b.subscribe(ctx, ch)
	if err != nil {
		return nil, err
	}
	defer b.unsubscribe(ch, w)
	select {
	case <-w.sub:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var retry <-chan time.Time
	backoff := reconnect.Backoff{Policy: backendPolicy}
	for {
		doc, err := b.Load(ctx, taskID)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Redis unreachable: read again later (a reconnection of the
			// pub/sub connection also triggers a read).
			retry = time.After(backoff.Next())
		case doc != nil && ready(doc):
			return doc, nil
		default:
			retry = nil
			backoff.Reset()
		}
	wait:
		for {
			select {
			case doc := <-w.msg:
				if ready(doc) {
					return doc, nil
				}
			case <-w.sub:
				break wait
			case <-retry:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-w.done:
				return nil, ErrClosed
			}
		}
	}
}

func (b *Backend) subscribe(ctx context.Context, ch string) (*waiter, error) {
	w := &waiter{sub: make(chan struct{}, 1), msg: make(chan []byte, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.ps == nil {
		b.ps = b.client.Subscribe(context.WithoutCancel(ctx))
		b.done = make(chan struct{})
		go b.dispatch(b.ps, b.done)
	}
	w.done = b.done
	st := b.subs[ch]
	if st != nil {
		st.waiters[w] = struct{}{}
		if st.confirmed {
			w.sub <- struct{}{}
		}
		return w, nil
	}
	st = &channelState{waiters: map[*waiter]struct{}{w: {}}}
	b.subs[ch] = st
	// The channel is recorded even when the write fails; go-redis then
	// subscribes again when it reconnects.
	if err := b.ps.Subscribe(ctx, ch); err != nil {
		b.log.Debug("redis: subscribe failed (will retry on reconnect)", "err", err)
	}
	return w, nil
}

func (b *Backend) unsubscribe(ch string, w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.subs[ch]
	if st == nil {
		return
	}
	delete(st.waiters, w)
	if len(st.waiters) == 0 {
		delete(b.subs, ch)
		if b.ps != nil && !b.closed {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = b.ps.Unsubscribe(ctx, ch)
			cancel()
		}
	}
}

func (b *Backend) dispatch(ps *goredis.PubSub, done chan struct{}) {
	defer close(done)
	for v := range ps.ChannelWithSubscriptions(goredis.WithChannelSize(1000)) {
		switch m := v.(type) {
		case *goredis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			b.mu.Lock()
			if st := b.subs[m.Channel]; st != nil {
				st.confirmed = true
				for w := range st.waiters {
					select {
					case w.sub <- struct{}{}:
					default:
					}
				}
			}
			b.mu.Unlock()
		case *goredis.Message:
			doc := []byte(m.Payload)
			b.mu.Lock()
			if st := b.subs[m.Channel]; st != nil {
				for w := range st.waiters {
					select {
					case <-w.msg: // keep only the latest
					default:
					}
					w.msg <- doc
				}
			}
			b.mu.Unlock()
		}
	}
}

// Close closes the pub/sub connection (waiters get ErrClosed) and the client.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ps := b.ps
	b.mu.Unlock()
	var err error
	if ps != nil {
		err = ps.Close()
	}
	return errors.Join(err, b.client.Close())
}

var _ driver.GroupBackend = (*Backend)(nil)

// groupKey is Celery's key of group gid's document; suffix names the chord
// counting keys (".j", ".t", ".s") and taskgen's own (".ids").
func (b *Backend) groupKey(gid, suffix string) string {
	return b.opts.GlobalKeyPrefix + "celery-taskset-meta-" + gid + suffix
}

func ttlSeconds(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return int64(max(ttl, time.Second) / time.Second)
}

// SaveGroup stores group gid's GroupResult document at
// celery-taskset-meta-<gid>, where Python's GroupResult.restore reads it.
func (b *Backend) SaveGroup(ctx context.Context, gid string, doc []byte, ttl time.Duration) error {
	if err := b.opts.durable(ctx, b.client, func(pipe goredis.Pipeliner) {
		pipe.Set(ctx, b.groupKey(gid, ""), doc, time.Duration(ttlSeconds(ttl))*time.Second)
	}); err != nil {
		return fmt.Errorf("redis group save to %s: %w", b.url, err)
	}
	return nil
}

// LoadGroup returns group gid's stored document, or nil when there is none.
func (b *Backend) LoadGroup(ctx context.Context, gid string) ([]byte, error) {
	doc, err := b.client.Get(ctx, b.groupKey(gid, "")).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis group load from %s: %w", b.url, err)
	}
	return doc, nil
}

// SetChordSize writes Celery's celery-taskset-meta-<gid>.s.
func (b *Backend) SetChordSize(ctx context.Context, gid string, size int, ttl time.Duration) error {
	if err := b.opts.durable(ctx, b.client, func(pipe goredis.Pipeliner) {
		pipe.Set(ctx, b.groupKey(gid, ".s"), size, time.Duration(ttlSeconds(ttl))*time.Second)
	}); err != nil {
		return fmt.Errorf("redis chord size to %s: %w", b.url, err)
	}
	return nil
}

// ChordPartReturn records a finished member in Celery's sorted set
// celery-taskset-meta-<gid>.j, atomically with the completion check (see
// lua/chord_part.lua).
func (b *Backend) ChordPartReturn(ctx context.Context, gid, taskID string, index int, part []byte, ttl time.Duration) ([][]byte, bool, error) {
	keys := []string{b.groupKey(gid, ".j"), b.groupKey(gid, ".t"), b.groupKey(gid, ".s"), b.groupKey(gid, ".ids")}
	score := "+inf"
	if index >= 0 {
		score = fmt.Sprint(index)
	}
	res, err := b.opts.runScript(ctx, b.client, chordPartScript, keys, part, score, ttlSeconds(ttl), taskID).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("redis chord part to %s: %w", b.url, err)
	}
	if len(res) == 0 || res[0] != int64(1) {
		return nil, false, nil
	}
	parts := make([][]byte, 0, len(res)-1)
	for _, p := range res[1:] {
		s, _ := p.(string)
		parts = append(parts, []byte(s))
	}
	return parts, true, nil
}

// ChordDone deletes the chord's counting keys.
func (b *Backend) ChordDone(ctx context.Context, gid string) error {
	if err := b.client.Del(ctx, b.groupKey(gid, ".j"), b.groupKey(gid, ".t"), b.groupKey(gid, ".s"), b.groupKey(gid, ".ids")).Err(); err != nil {
		return fmt.Errorf("redis chord done on %s: %w", b.url, err)
	}
	return nil
}
