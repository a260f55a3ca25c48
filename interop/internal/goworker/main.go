// Command goworker is the Go worker process of the interop crash tests: it
// runs interop/gotasks on the queues given, with broker and backend from the
// INTEROP_* environment, until killed.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/taskgen/taskgen/interop/gotasks"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	app, err := runtime.New(runtime.Config{Broker: os.Getenv("INTEROP_BROKER"), Backend: os.Getenv("INTEROP_BACKEND"),
		Serializer: os.Getenv("INTEROP_SERIALIZER"), Logger: log, Hostname: os.Getenv("INTEROP_HOSTNAME")})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	w := app.NewWorker(runtime.WorkerOptions{Queues: strings.Split(os.Getenv("INTEROP_QUEUES"), ","), Concurrency: 2})
	gotasks.RegisterTasks(w)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Error("worker", "err", err)
		os.Exit(1)
	}
}
