package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/amqp"
	_ "github.com/taskgen/taskgen/runtime/redis"
)

// Redis databases of the sections (flushed before and after).
const (
	dbProcs     = 1
	dbProcsA    = 2
	dbBacklog   = 3
	dbBacklogC  = 4
	dbBacklogA  = 5
	dbCountdown = 6
	dbQueues    = 7
	dbPayload   = 8
	dbPayloadA  = 9
	dbResult    = 10
	dbResultB   = 11
	dbProcsRaw  = 12
)

// produce calls send(i) for i in [0, n) from p goroutines and returns the
// elapsed time.
func produce(n, p int, send func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start := time.Now()
	for range p {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := send(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), first
}

// tgProducer is a taskgen app sending bench.noop to a queue.
type tgProducer struct {
	app *runtime.App
	st  tasks.NoopTask
}

func newTG(broker, queue string) (*tgProducer, error) {
	app, err := runtime.New(runtime.Config{Broker: broker, Logger: logger()})
	if err != nil {
		return nil, err
	}
	return &tgProducer{app: app, st: tasks.Noop.With(runtime.WithApp(app), runtime.Queue(queue))}, nil
}

// fill sends n tasks whose argument is arg(i) from p producers.
func (t *tgProducer) fill(ctx context.Context, n, p int, arg func(i int) string) (time.Duration, error) {
	return produce(n, p, func(i int) error { _, err := t.st.Delay(ctx, arg(i)); return err })
}

func (t *tgProducer) close() { t.app.Close() }

func tsArg(int) string { return now() }

// flushDB empties a Redis database.
func flushDB(ctx context.Context, addr string, db int) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DB: db})
	defer c.Close()
	return c.FlushDB(ctx).Err()
}

// usedMemory is INFO memory's used_memory of a Redis server.
func usedMemory(ctx context.Context, c *goredis.Client) (int64, error) {
	s, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

// asynqOpt parses redis://host:port/db.
func asynqOpt(broker string) (asynq.RedisClientOpt, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return asynq.RedisClientOpt{}, err
	}
	db, _ := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	return asynq.RedisClientOpt{Addr: u.Host, DB: db, PoolSize: 128}, nil
}

// asynqFill enqueues n asynq tasks with payload arg(i) from p producers.
func asynqFill(ctx context.Context, c *asynq.Client, queue string, n, p int, arg func(i int) string) (time.Duration, error) {
	return produce(n, p, func(i int) error {
		_, err := c.EnqueueContext(ctx, asynq.NewTask("bench.noop", []byte(arg(i))), asynq.Queue(queue))
		return err
	})
}

// deleteAMQPQueues deletes taskgen's queues (and their exchanges) on RabbitMQ.
func deleteAMQPQueues(amqpURL string, queues ...string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range queues {
		ch.QueueDelete(q, false, false, false)
		ch.ExchangeDelete(q, false, false)
		ch.QueueDelete(q+".dead_letter", false, false, false)
	}
}

// drainRun fills n tasks (send, from 64 producers), starts k worker
// children of spec and returns the drain rate (first to last task run).
func drainRun(k, n int, spec workerSpec, fill func(n int) error) (float64, []childResult, error) {
	if err := fill(n); err != nil {
		return 0, nil, fmt.Errorf("fill: %w", err)
	}
	ws, err := startWorkers(k, spec)
	if err != nil {
		return 0, nil, err
	}
	werr := waitTotal(ws, int64(n), 5*time.Minute)
	rs := stopAll(ws)
	if werr != nil {
		return 0, rs, werr
	}
	rate, err := span(rs)
	return rate, rs, err
}
