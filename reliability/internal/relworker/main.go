// Command relworker is the worker process of taskgen's reliability suite:
// it runs reliability/tasks with the settings of its RELIABILITY_*
// environment until SIGTERM/SIGINT (graceful shutdown) or SIGKILL, logging
// JSON to stderr. On a graceful exit it prints its counters as one line
// "STATS {json}" on stdout.
//
//	RELIABILITY_BROKER       broker URL (required)
//	RELIABILITY_BACKEND      result backend URL (default none)
//	RELIABILITY_SINK         file the tasks append their records to (required)
//	RELIABILITY_QUEUES       comma-separated queues (default "celery")
//	RELIABILITY_HOSTNAME     node name
//	RELIABILITY_CONCURRENCY  default 8
//	RELIABILITY_PREFETCH     default concurrency × 4
//	RELIABILITY_SHUTDOWN     ShutdownTimeout, a Go duration (default 30s)
//	RELIABILITY_MAX_BODY     MaxBodySize in bytes
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if os.Getenv("RELIABILITY_LOG_INFO") != "" {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if err := tasks.SetSink(os.Getenv("RELIABILITY_SINK")); err != nil {
		log.Error("sink", "err", err)
		os.Exit(1)
	}
	app, err := runtime.New(runtime.Config{Broker: os.Getenv("RELIABILITY_BROKER"), Backend: os.Getenv("RELIABILITY_BACKEND"), Logger: log,
		Hostname: os.Getenv("RELIABILITY_HOSTNAME"), PublishTimeout: 5 * time.Second})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer app.Close()
	opts := runtime.WorkerOptions{Concurrency: envInt("RELIABILITY_CONCURRENCY", 8), Prefetch: envInt("RELIABILITY_PREFETCH", 0),
		MaxBodySize: envInt("RELIABILITY_MAX_BODY", 0), WithoutEvents: true}
	if q := os.Getenv("RELIABILITY_QUEUES"); q != "" {
		opts.Queues = strings.Split(q, ",")
	}
	if d, err := time.ParseDuration(os.Getenv("RELIABILITY_SHUTDOWN")); err == nil {
		opts.ShutdownTimeout = d
	}
	w := app.NewWorker(opts)
	tasks.RegisterTasks(w)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := w.Run(ctx)
	b, _ := json.Marshal(w.Stats())
	fmt.Printf("STATS %s\n", b)
	if runErr != nil {
		log.Error("worker", "err", runErr)
		os.Exit(1)
	}
}
