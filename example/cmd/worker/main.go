// Command worker runs the example's tasks (packages signup and gallery);
// its flags mirror `celery worker`:
//
//	worker -broker redis://127.0.0.1:6379/0 -backend redis://127.0.0.1:6379/1 \
//	       -queues emails -concurrency 8 -loglevel info -email-api https://provider.example/send
//
// -beat also runs the periodic tasks of signup.Schedules (Celery's worker
// -B); every worker may, since the schedulers elect a leader and each slot
// is sent once. The schedule's state needs a Redis or memory broker or
// result backend (with RabbitMQ: -backend redis://...).
//
// The workflows' steps go to the queues accounts (CreateAccount),
// emails, notifications (NotifySlack, AlertOps) and images (RenderThumbnail,
// BuildGallery); -queues lists those a worker takes, all by default.
//
// -metrics-addr (off by default) serves the worker's own Prometheus metrics
// at http://<addr>/metrics (package runtime/prom: tasks by name and state,
// runtime, in-flight and held tasks, reconnects, time-limit kills), with
// the Go runtime's and the process's.
//
// SIGINT or SIGTERM stops it gracefully: it takes no new tasks and lets running
// ones finish (up to -shutdown-timeout), returning the rest to the queue.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/taskgen/taskgen/example/gallery"
	"github.com/taskgen/taskgen/example/internal/tracing"
	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
	"github.com/taskgen/taskgen/runtime/beat"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
	"github.com/taskgen/taskgen/runtime/prom"
)

func main() {
	broker := flag.String("broker", envOr("TASKGEN_BROKER", "memory://"), "broker URL (env TASKGEN_BROKER)")
	backend := flag.String("backend", envOr("TASKGEN_BACKEND", ""), "result backend URL (env TASKGEN_BACKEND)")
	serializer := flag.String("serializer", "msgpack", "result serializer: msgpack or json")
	queues := flag.String("queues", "accounts,emails,notifications,images", "comma-separated queues to consume (celery worker -Q)")
	concurrency := flag.Int("concurrency", 0, "tasks run at once (default: number of CPUs)")
	loglevel := flag.String("loglevel", "info", "debug, info, warn or error")
	emailAPI := flag.String("email-api", envOr("EMAIL_API_URL", "http://127.0.0.1:8025/send"), "email provider endpoint (env EMAIL_API_URL)")
	slackURL := flag.String("slack-webhook", envOr("SLACK_WEBHOOK_URL", "http://127.0.0.1:8026/webhook"), "Slack incoming webhook (env SLACK_WEBHOOK_URL)")
	storeURL := flag.String("store", envOr("PHOTO_STORE_URL", "http://127.0.0.1:8027"), "photo store base URL, GET/PUT <url>/<name> (env PHOTO_STORE_URL)")
	hostname := flag.String("hostname", "", "node name, name@host (default taskgen@<hostname>)")
	shutdown := flag.Duration("shutdown-timeout", 30*time.Second, "how long running tasks may finish at shutdown")
	metricsAddr := flag.String("metrics-addr", "", "serve the worker's Prometheus metrics at http://ADDR/metrics, e.g. :9808 (default: off)")
	importDelay := flag.Duration("import-row-delay", 0, "time each row of signup.import_contacts takes, to watch its progress (e.g. 200ms; default 0)")
	withBeat := flag.Bool("beat", false, "also run the periodic-task scheduler (celery worker -B); safe on every worker: the schedulers elect a leader")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*loglevel)); err != nil {
		slog.Error("bad -loglevel", "err", err)
		os.Exit(2)
	}
	log := slog.New(taskotel.NewLogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	signup.Configure(signup.Provider{URL: *emailAPI})
	signup.ConfigureSlack(signup.Slack{WebhookURL: *slackURL})
	gallery.Configure(gallery.Store{URL: *storeURL})

	app, err := runtime.New(runtime.Config{Broker: *broker, Backend: *backend, Serializer: *serializer, Hostname: *hostname, Logger: log})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer app.Close()
	// With OTEL_EXPORTER_OTLP_ENDPOINT set, each task's run is a span, a
	// child of the request that sent it (see example/internal/tracing).
	shutdownTracing, err := tracing.Setup(context.Background(), "signup-worker", app)
	if err != nil {
		log.Error("tracing", "err", err)
		os.Exit(1)
	}
	defer shutdownTracing(context.Background())

	opts := runtime.WorkerOptions{Queues: strings.Split(*queues, ","), Concurrency: *concurrency, ShutdownTimeout: *shutdown}
	if *withBeat {
		opts.Beat = beat.New(app, signup.Schedules()...)
	}
	var metrics *prom.Metrics
	reg := prometheus.NewRegistry()
	if *metricsAddr != "" {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metrics = prom.Instrument(app, prom.WithRegisterer(reg))
	}
	w := app.NewWorker(opts)
	signup.RegisterTasks(w)
	signup.ConfigureImport(signup.Importer{RowDelay: *importDelay})
	gallery.RegisterTasks(w)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if metrics != nil {
		metrics.Watch(w)
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			log.Error("-metrics-addr: cannot listen (give a free host:port, e.g. :9808)", "addr", *metricsAddr, "err", err)
			os.Exit(1)
		}
		log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
		go func() {
			if err := prom.Serve(ctx, ln, reg); err != nil {
				log.Error("metrics server", "err", err)
			}
		}()
	}
	if err := w.Run(ctx); err != nil {
		log.Error("worker", "err", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
