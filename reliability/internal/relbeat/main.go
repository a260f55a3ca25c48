// Command relbeat is the scheduler process of taskgen's reliability suite:
// it runs a runtime/beat schedule of RELBEAT_ENTRIES entries until
// SIGTERM/SIGINT (it gives its lease up) or SIGKILL, logging JSON to
// stderr.
//
//	RELBEAT_BROKER    broker URL (required)
//	RELBEAT_BACKEND   result backend URL (default none: the broker holds the state)
//	RELBEAT_KEY       the schedule's key (required)
//	RELBEAT_HOLDER    the scheduler's name in the lease (required)
//	RELBEAT_QUEUE     the queue the entries send to (required)
//	RELBEAT_LEASE     lease time, a Go duration (default 3s)
//	RELBEAT_EVERY     the entries' interval (default 1s)
//	RELBEAT_ENTRIES   comma-separated name:policy pairs, policy skip, once
//	                  or all (default "tick:once")
//
// Each entry sends the task "rel.beat.<name>" by name (runtime.Named).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
	"github.com/taskgen/taskgen/runtime/beat"
)

func duration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("holder", os.Getenv("RELBEAT_HOLDER"))
	app, err := runtime.New(runtime.Config{Broker: os.Getenv("RELBEAT_BROKER"), Backend: os.Getenv("RELBEAT_BACKEND"), Logger: log,
		PublishTimeout: 5 * time.Second})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer app.Close()
	spec := os.Getenv("RELBEAT_ENTRIES")
	if spec == "" {
		spec = "tick:once"
	}
	var entries []beat.Entry
	for _, e := range strings.Split(spec, ",") {
		name, policy, _ := strings.Cut(e, ":")
		p := beat.Once
		switch policy {
		case "skip":
			p = beat.Skip
		case "all":
			p = beat.All(0)
		}
		entries = append(entries, beat.Every(name, duration("RELBEAT_EVERY", time.Second), runtime.Named[int]("rel.beat."+name),
			beat.CatchUp(p), beat.Offset(0), beat.Options(runtime.Queue(os.Getenv("RELBEAT_QUEUE")))))
	}
	s := beat.New(app, entries...)
	s.Key, s.Holder, s.Lease = os.Getenv("RELBEAT_KEY"), os.Getenv("RELBEAT_HOLDER"), duration("RELBEAT_LEASE", 3*time.Second)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.Error("beat", "err", err)
		os.Exit(1)
	}
}
