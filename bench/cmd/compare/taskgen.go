package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/taskgen/taskgen/bench/tasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/amqp"
	_ "github.com/taskgen/taskgen/runtime/redis"
)

// Redis databases: each system its own, flushed before and after.
const (
	dbTaskgen         = 1
	dbTaskgenLate     = 2
	dbRawBRPOP        = 3
	dbRawReliable     = 4
	dbAsynq           = 5
	dbCelery          = 6
	dbTaskgenNoEvents = 7
	dbCeleryStats     = 15 // Celery's counters and latencies (both brokers)
)

var flagPrefetch = flag.Int("prefetch", 0, "taskgen worker prefetch (default: the worker's, 4×concurrency; experiments)")

var flagTaskgenOpts = flag.String("taskgen-opts", "", "extra transport options for taskgen's broker URLs, e.g. publish_channels=8 (experiments)")

// withOpts appends -taskgen-opts to a broker URL.
func withOpts(u string) string {
	if *flagTaskgenOpts == "" {
		return u
	}
	if strings.Contains(u, "?") {
		return u + "&" + *flagTaskgenOpts
	}
	return u + "?" + *flagTaskgenOpts
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// taskgenSys is taskgen on either broker: the generated stubs of
// bench/tasks, a runtime.Worker.
type taskgenSys struct {
	// app sends; wapp, an App of its own (its own connections), runs the
	// worker, as a worker process apart from the producers does: the
	// worker's events and acknowledgements do not share the producers'
	// connection.
	app, wapp *runtime.App
	queue     string
	late      bool
	// noEvents runs the worker WithoutEvents (the "events off" variant
	// rows); the headline rows run it as users do, task events on.
	noEvents bool
	send     func(ctx context.Context, ts string) error
	// Redis: the kombu bookkeeping to wait for; RabbitMQ: a connection to
	// delete the queue.
	rdb  *goredis.Client
	conn *amqp.Connection
}

func (s *taskgenSys) init() {
	if s.late {
		st := tasks.NoopLate.With(runtime.WithApp(s.app), runtime.Queue(s.queue))
		s.send = func(ctx context.Context, ts string) error { _, err := st.Delay(ctx, ts); return err }
	} else {
		st := tasks.Noop.With(runtime.WithApp(s.app), runtime.Queue(s.queue))
		s.send = func(ctx context.Context, ts string) error { _, err := st.Delay(ctx, ts); return err }
	}
}

func newTaskgenRedis(late, noEvents bool) func(context.Context, *env, int) (goSystem, error) {
	return func(ctx context.Context, e *env, run int) (goSystem, error) {
		db := dbTaskgen
		if late {
			db = dbTaskgenLate
		}
		if noEvents {
			db = dbTaskgenNoEvents
		}
		rdb := goredis.NewClient(&goredis.Options{Addr: e.redisAddr, DB: db})
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			return nil, err
		}
		cfg := runtime.Config{Broker: withOpts(fmt.Sprintf("redis://%s/%d", e.redisAddr, db)), Logger: logger()}
		app, err := runtime.New(cfg)
		if err != nil {
			return nil, err
		}
		wapp, err := runtime.New(cfg)
		if err != nil {
			app.Close()
			return nil, err
		}
		s := &taskgenSys{app: app, wapp: wapp, queue: fmt.Sprintf("bench.taskgen.%d", run), late: late, noEvents: noEvents, rdb: rdb}
		s.init()
		return s, nil
	}
}

func newTaskgenAMQP(late, noEvents bool) func(context.Context, *env, int) (goSystem, error) {
	return func(ctx context.Context, e *env, run int) (goSystem, error) {
		conn, err := amqp.Dial(e.amqpURL)
		if err != nil {
			return nil, err
		}
		cfg := runtime.Config{Broker: withOpts(e.amqpURL), Logger: logger()}
		app, err := runtime.New(cfg)
		if err != nil {
			return nil, err
		}
		wapp, err := runtime.New(cfg)
		if err != nil {
			app.Close()
			return nil, err
		}
		q := fmt.Sprintf("bench.taskgen.%d.%d", run, os.Getpid())
		if late {
			q = fmt.Sprintf("bench.taskgen-late.%d.%d", run, os.Getpid())
		}
		s := &taskgenSys{app: app, wapp: wapp, queue: q, late: late, noEvents: noEvents, conn: conn}
		s.init()
		return s, nil
	}
}

func (s *taskgenSys) sender(context.Context) (func(context.Context, string) error, func(), error) {
	return s.send, func() {}, nil
}

func (s *taskgenSys) purge(ctx context.Context) error {
	if s.rdb != nil {
		return s.rdb.FlushDB(ctx).Err()
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueuePurge(s.queue, false)
	return err
}

func (s *taskgenSys) startWorker(ctx context.Context, conc int) (func(), error) {
	w := s.wapp.NewWorker(runtime.WorkerOptions{Queues: []string{s.queue}, Concurrency: conc, Prefetch: *flagPrefetch,
		WithoutEvents: s.noEvents, ShutdownTimeout: 10 * time.Second})
	tasks.RegisterTasks(w)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
	}, nil
}

func (s *taskgenSys) settled(ctx context.Context) bool {
	if s.rdb == nil {
		return true // RabbitMQ: acknowledgements are sent within 1 ms of Ack
	}
	return s.rdb.HLen(ctx, "unacked").Val() == 0
}

func (s *taskgenSys) close(ctx context.Context) {
	s.app.Close()
	s.wapp.Close()
	if s.rdb != nil {
		s.rdb.FlushDB(ctx)
		s.rdb.Close()
	}
	if s.conn != nil {
		if ch, err := s.conn.Channel(); err == nil {
			ch.QueueDelete(s.queue, false, false, false)
			ch.ExchangeDelete(s.queue, false, false)
			ch.QueueDelete(s.queue+".dead_letter", false, false, false)
		}
		s.conn.Close()
	}
}
