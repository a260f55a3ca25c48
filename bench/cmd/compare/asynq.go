package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hibiken/asynq"

	"github.com/taskgen/taskgen/bench/tasks"
)

// asynqSys is hibiken/asynq with its defaults (one Client, one Server).
type asynqSys struct {
	opt    asynq.RedisClientOpt
	client *asynq.Client
	insp   *asynq.Inspector
	queue  string
}

func newAsynq() func(context.Context, *env, int) (goSystem, error) {
	return func(ctx context.Context, e *env, run int) (goSystem, error) {
		opt := asynq.RedisClientOpt{Addr: e.redisAddr, DB: dbAsynq, PoolSize: 128}
		s := &asynqSys{opt: opt, client: asynq.NewClient(opt), insp: asynq.NewInspector(opt), queue: fmt.Sprintf("bench%d", run)}
		return s, s.flush(ctx)
	}
}

func (s *asynqSys) flush(ctx context.Context) error { return flushDB(ctx, s.opt.Addr, s.opt.DB) }

func (s *asynqSys) sender(context.Context) (func(context.Context, string) error, func(), error) {
	return func(ctx context.Context, ts string) error {
		_, err := s.client.EnqueueContext(ctx, asynq.NewTask("bench.noop", []byte(ts)), asynq.Queue(s.queue))
		return err
	}, func() {}, nil
}

// purge deletes the pending tasks (FLUSHDB would also drop asynq's queue
// registry, which its Client caches).
func (s *asynqSys) purge(ctx context.Context) error {
	_, err := s.insp.DeleteAllPendingTasks(s.queue)
	return err
}

func (s *asynqSys) startWorker(ctx context.Context, conc int) (func(), error) {
	srv := asynq.NewServer(s.opt, asynq.Config{Concurrency: conc, Queues: map[string]int{s.queue: 1}, LogLevel: asynq.WarnLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench.noop", func(ctx context.Context, t *asynq.Task) error {
		tasks.Record(string(t.Payload()))
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return nil, err
	}
	return srv.Shutdown, nil
}

func (s *asynqSys) settled(context.Context) bool {
	qi, err := s.insp.GetQueueInfo(s.queue)
	if os.Getenv("BENCH_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "asynq %+v %v\n", qi, err)
	}
	return err == nil && qi.Active == 0 && qi.Pending == 0
}

func (s *asynqSys) close(ctx context.Context) {
	s.client.Close()
	s.insp.Close()
	s.flush(ctx)
}
