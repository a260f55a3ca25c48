// Command beat runs the example's periodic tasks (signup.Schedules, from the
// //task:schedule directives) until SIGINT or SIGTERM; it is Celery's
// `celery beat`:
//
//	beat -broker redis://127.0.0.1:6379/0 -backend redis://127.0.0.1:6379/1
//
// Run it on as many hosts as you like: the schedulers elect a leader with a
// lease and each slot is sent exactly once; when the leader stops, another
// takes over within -lease. The state (lease, last run of each entry) lives
// in the Redis result backend, or the Redis broker when there is no
// backend; with RabbitMQ as broker, give -backend redis://....
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
	"github.com/taskgen/taskgen/runtime/beat"
)

func main() {
	broker := flag.String("broker", envOr("TASKGEN_BROKER", "memory://"), "broker URL (env TASKGEN_BROKER)")
	backend := flag.String("backend", envOr("TASKGEN_BACKEND", ""), "result backend URL, where the schedule's state lives if it can (env TASKGEN_BACKEND)")
	key := flag.String("key", beat.DefaultKey, "the schedule's name in the store: schedulers with one key share one schedule")
	lease := flag.Duration("lease", beat.DefaultLease, "leader lease: a follower takes over at most this long after the leader stops")
	list := flag.Bool("list", false, "print the entries and exit")
	loglevel := flag.String("loglevel", "info", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*loglevel)); err != nil {
		slog.Error("bad -loglevel", "err", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *list {
		for _, e := range signup.Schedules() {
			fmt.Println(e)
		}
		return
	}
	app, err := runtime.New(runtime.Config{Broker: *broker, Backend: *backend, Logger: log, PublishTimeout: 10 * time.Second})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer app.Close()
	s := beat.New(app, signup.Schedules()...)
	s.Key, s.Lease = *key, *lease
	for _, e := range s.Entries() {
		log.Info("beat: entry", "entry", e.String())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.Error("beat", "err", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
