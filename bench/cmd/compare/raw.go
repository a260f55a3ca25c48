package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// tsLen is the length of a Unix-nanosecond time in decimal.
const tsLen = 19

// payload returns a message of size bytes that starts with ts.
func payload(ts string, pad []byte) []byte {
	b := make([]byte, len(pad))
	copy(b, pad)
	copy(b, ts)
	return b
}

// rawRedis is the raw go-redis loop: LPUSH, then BRPOP, or the reliable
// variant BLMOVE to a processing list and LREM after the task ran. Messages
// are as large as taskgen's kombu envelope.
type rawRedis struct {
	rdb      *goredis.Client
	reliable bool
	queue    string
	pad      []byte
}

func newRawRedis(reliable bool) func(context.Context, *env, int) (goSystem, error) {
	return func(ctx context.Context, e *env, run int) (goSystem, error) {
		db := dbRawBRPOP
		if reliable {
			db = dbRawReliable
		}
		rdb := goredis.NewClient(&goredis.Options{Addr: e.redisAddr, DB: db, PoolSize: 128})
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			return nil, err
		}
		// The envelope taskgen writes for the same call, for its size.
		app, err := runtime.New(runtime.Config{Broker: fmt.Sprintf("redis://%s/%d", e.redisAddr, db), Logger: logger()})
		if err != nil {
			return nil, err
		}
		defer app.Close()
		if _, err := tasks.Noop.With(runtime.WithApp(app), runtime.Queue("sample")).Delay(ctx, now()); err != nil {
			return nil, err
		}
		env, err := rdb.RPop(ctx, "sample").Bytes()
		if err != nil {
			return nil, err
		}
		rdb.FlushDB(ctx)
		return &rawRedis{rdb: rdb, reliable: reliable, queue: fmt.Sprintf("bench.raw.%d", run), pad: env}, nil
	}
}

func (s *rawRedis) sender(context.Context) (func(context.Context, string) error, func(), error) {
	return func(ctx context.Context, ts string) error {
		return s.rdb.LPush(ctx, s.queue, payload(ts, s.pad)).Err()
	}, func() {}, nil
}

func (s *rawRedis) purge(ctx context.Context) error { return s.rdb.FlushDB(ctx).Err() }

func (s *rawRedis) startWorker(ctx context.Context, conc int) (func(), error) {
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	proc := s.queue + ".processing"
	for range conc {
		wg.Go(func() {
			for wctx.Err() == nil {
				if s.reliable {
					v, err := s.rdb.BLMove(wctx, s.queue, proc, "RIGHT", "LEFT", 200*time.Millisecond).Result()
					if err != nil {
						if !errors.Is(err, goredis.Nil) && wctx.Err() == nil {
							fmt.Fprintln(os.Stderr, "blmove:", err)
						}
						continue
					}
					tasks.Record(v[:tsLen])
					if err := s.rdb.LRem(wctx, proc, 1, v).Err(); err != nil && wctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "lrem:", err)
					}
				} else {
					v, err := s.rdb.BRPop(wctx, 200*time.Millisecond, s.queue).Result()
					if err != nil {
						if !errors.Is(err, goredis.Nil) && wctx.Err() == nil {
							fmt.Fprintln(os.Stderr, "brpop:", err)
						}
						continue
					}
					tasks.Record(v[1][:tsLen])
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }, nil
}

func (s *rawRedis) settled(ctx context.Context) bool {
	return !s.reliable || s.rdb.LLen(ctx, s.queue+".processing").Val() == 0
}

func (s *rawRedis) close(ctx context.Context) {
	s.rdb.FlushDB(ctx)
	s.rdb.Close()
}

// rawAMQP is the raw amqp091-go loop: each producer goroutine publishes on a
// confirm-mode channel of its own and waits for the confirm; the consumer
// has one channel with prefetch 4×concurrency and acknowledges each message
// on its own. Queue, persistence and headers are taskgen's.
//
// With multiple set (the "raw multiple-ack" row) the consumer has prefetch
// multiplePrefetch and one acknowledger goroutine that acknowledges with
// multiple=true up to the highest contiguous finished delivery tag, never
// naming a delivery whose task has not finished.
type rawAMQP struct {
	url      string
	conn     *amqp.Connection
	queue    string
	headers  amqp.Table
	pad      []byte
	multiple bool
	ackedTo  atomic.Uint64 // multiple: the tag acknowledged up to, of the running consumer
}

// multiplePrefetch is the prefetch of the raw multiple-ack consumer.
const multiplePrefetch = 512

func newRawAMQP(multiple bool) func(context.Context, *env, int) (goSystem, error) {
	return func(ctx context.Context, e *env, run int) (goSystem, error) {
		conn, err := amqp.Dial(e.amqpURL)
		if err != nil {
			return nil, err
		}
		q := fmt.Sprintf("bench.raw.%d.%d", run, os.Getpid())
		if multiple {
			q = fmt.Sprintf("bench.raw-multiple.%d.%d", run, os.Getpid())
		}
		// Publish one message with taskgen to get its headers and body size.
		app, err := runtime.New(runtime.Config{Broker: e.amqpURL, Logger: logger()})
		if err != nil {
			return nil, err
		}
		defer app.Close()
		if _, err := tasks.Noop.With(runtime.WithApp(app), runtime.Queue(q)).Delay(ctx, now()); err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		defer ch.Close()
		var d amqp.Delivery
		for i := 0; ; i++ {
			var ok bool
			if d, ok, err = ch.Get(q, true); err != nil {
				return nil, err
			} else if ok {
				break
			}
			if i > 100 {
				return nil, errors.New("sample message not delivered")
			}
			time.Sleep(10 * time.Millisecond)
		}
		pad := d.Body
		if len(pad) < tsLen {
			pad = make([]byte, tsLen)
		}
		return &rawAMQP{url: e.amqpURL, conn: conn, queue: q, headers: d.Headers, pad: pad, multiple: multiple}, nil
	}
}

func (s *rawAMQP) sender(context.Context) (func(context.Context, string) error, func(), error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, ts string) error {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", s.queue, false, false, amqp.Publishing{
				ContentType: driver.ContentTypeMsgpack, ContentEncoding: "binary", DeliveryMode: amqp.Persistent,
				Headers: s.headers, Body: payload(ts, s.pad)})
			if err != nil {
				return err
			}
			ok, err := dc.WaitContext(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("nack")
			}
			return nil
		}, func() {
			ch.Close()
		}, nil
}

func (s *rawAMQP) purge(context.Context) error {
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueuePurge(s.queue, false)
	return err
}

func (s *rawAMQP) startWorker(ctx context.Context, conc int) (func(), error) {
	conn, err := amqp.Dial(s.url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	prefetch := 4 * conc
	if s.multiple {
		prefetch = multiplePrefetch
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return nil, err
	}
	ds, err := ch.ConsumeWithContext(ctx, s.queue, "bench", false, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	if s.multiple {
		return s.multipleWorker(conn, ch, ds, conc), nil
	}
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for d := range ds {
				tasks.Record(string(d.Body[:tsLen]))
				if err := d.Ack(false); err != nil {
					fmt.Fprintln(os.Stderr, "ack:", err)
				}
			}
		})
	}
	return func() {
		ch.Cancel("bench", false)
		conn.Close()
		wg.Wait()
	}, nil
}

// multipleWorker runs conc goroutines on ds that hand each finished
// delivery tag to one acknowledger; it keeps the finished tags above the
// contiguous watermark and, whenever no finish is waiting to be read,
// sends one basic.ack multiple=true up to the watermark if it moved.
func (s *rawAMQP) multipleWorker(conn *amqp.Connection, ch *amqp.Channel, ds <-chan amqp.Delivery, conc int) func() {
	done := make(chan uint64, multiplePrefetch)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for d := range ds {
				tasks.Record(string(d.Body[:tsLen]))
				done <- d.DeliveryTag
			}
		})
	}
	ackDone := make(chan struct{})
	s.ackedTo.Store(0)
	go func() {
		defer close(ackDone)
		var watermark, sent uint64
		pending := map[uint64]bool{}
		add := func(tag uint64) {
			if tag != watermark+1 {
				pending[tag] = true
				return
			}
			watermark = tag
			for pending[watermark+1] {
				delete(pending, watermark+1)
				watermark++
			}
		}
		for tag := range done {
			add(tag)
		more:
			for {
				select {
				case t, ok := <-done:
					if !ok {
						break more
					}
					add(t)
				default:
					break more
				}
			}
			if watermark > sent {
				if err := ch.Ack(watermark, true); err != nil {
					fmt.Fprintln(os.Stderr, "ack:", err)
				}
				sent = watermark
				s.ackedTo.Store(sent)
			}
		}
	}()
	return func() {
		ch.Cancel("bench", false)
		conn.Close()
		wg.Wait()
		close(done)
		<-ackDone
	}
}

// settled: per-message acks are sent as each task ends; the multiple-ack
// consumer has acknowledged every task that ran (each channel's tags start
// at 1, so the watermark counts the finished deliveries).
func (s *rawAMQP) settled(context.Context) bool {
	return !s.multiple || s.ackedTo.Load() >= uint64(tasks.Done.Load())
}

func (s *rawAMQP) close(context.Context) {
	if ch, err := s.conn.Channel(); err == nil {
		ch.QueueDelete(s.queue, false, false, false)
		ch.ExchangeDelete(s.queue, false, false)
	}
	s.conn.Close()
}

func flushDB(ctx context.Context, addr string, db int) error {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, DB: db})
	defer rdb.Close()
	return rdb.FlushDB(ctx).Err()
}
