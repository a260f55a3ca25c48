package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/taskgen/taskgen/monitor"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// run is main without the process: flags, the app, then monitor.Serve
// until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("taskmon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "", "broker `URL` (redis://…, amqp://…)")
	backend := fs.String("backend", "", "result backend `URL` for /api/task/result (optional)")
	addr := fs.String("addr", monitor.DefaultAddr, "listen `address`")
	maxTasks := fs.Int("max-tasks", 10000, "tasks kept in memory")
	queues := fs.String("queues", "", "comma-separated queues to poll (default: celery plus queues seen)")
	auth := fs.String("basic-auth", "", "`user:pass` for HTTP basic auth (or env TASKMON_BASIC_AUTH)")
	poll := fs.Duration("poll", 2*time.Second, "queue-depth and beat-schedule poll interval")
	level := fs.String("loglevel", "info", "log level: debug, info, warn, error")
	var beatKeys keyList
	fs.Var(&beatKeys, "beat-key", "periodic-task schedule `key` to show on /beat (repeatable or comma-separated; default \"default\")")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: taskmon -broker URL [-backend URL] [-addr %s] [-max-tasks N] [-queues a,b] [-basic-auth user:pass] [-beat-key default]\n\n", monitor.DefaultAddr)
		fmt.Fprintf(stderr, "taskmon serves a web monitor (Flower's API, Prometheus /metrics) over the Celery events of one broker.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *broker == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "taskmon: -loglevel: %v\n", err)
		return 2
	}
	if *auth == "" {
		*auth = getenv("TASKMON_BASIC_AUTH")
	}
	if *maxTasks <= 0 {
		fmt.Fprintln(stderr, "taskmon: -max-tasks must be positive")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	host, _ := os.Hostname()
	app, err := runtime.New(runtime.Config{Broker: *broker, Backend: *backend, Serializer: "json",
		Logger: log, Hostname: "taskmon@" + host})
	if err != nil {
		// runtime's errors redact the URL's password.
		fmt.Fprintf(stderr, "taskmon: %v\n", err)
		return 1
	}
	defer app.Close()
	var qs []string
	for _, q := range strings.Split(*queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			qs = append(qs, q)
		}
	}
	cfg := monitor.Config{App: app, MaxTasks: *maxTasks, Queues: qs, PollInterval: *poll, BasicAuth: *auth, Logger: log,
		BeatKeys: beatKeys}
	if err := monitor.Serve(ctx, *addr, cfg); err != nil {
		fmt.Fprintf(stderr, "taskmon: %v\n", err)
		return 1
	}
	return 0
}

// keyList is a repeatable flag of comma-separated names.
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }

func (k *keyList) Set(v string) error {
	n := len(*k)
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*k = append(*k, s)
		}
	}
	if len(*k) == n {
		return errors.New("empty key")
	}
	return nil
}
