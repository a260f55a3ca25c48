// Command server is the sign-up web server of taskgen's example: GET or POST
// /sign-up?email=… enqueues SendWelcomeEmail and answers "Signed Up!" at once;
// /onboard?email=… sends the sign-up chain (signup.Onboarding) and
// /gallery?title=…&photo=… the thumbnails chord (gallery.Workflow);
// POST /contacts/import starts signup.ImportContacts and
// GET /contacts/import/{id} polls its progress.
//
//	server -broker redis://127.0.0.1:6379/0 -backend redis://127.0.0.1:6379/1 -addr 127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskgen/taskgen/example/gallery"
	"github.com/taskgen/taskgen/example/internal/tracing"
	"github.com/taskgen/taskgen/example/signup"
	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all"
	"github.com/taskgen/taskgen/runtime/driver"
	taskotel "github.com/taskgen/taskgen/runtime/otel"
)

func main() {
	broker := flag.String("broker", envOr("TASKGEN_BROKER", "memory://"), "broker URL (env TASKGEN_BROKER)")
	backend := flag.String("backend", envOr("TASKGEN_BACKEND", ""), "result backend URL (env TASKGEN_BACKEND)")
	serializer := flag.String("serializer", "msgpack", "task serializer: msgpack or json")
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	log := slog.New(taskotel.NewLogHandler(slog.NewTextHandler(os.Stderr, nil)))

	app, err := runtime.New(runtime.Config{Broker: *broker, Backend: *backend, Serializer: *serializer, Logger: log})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer app.Close()
	runtime.SetDefault(app)
	signup.ConfigureResults(app) // GET /contacts/import/{id} reads the backend

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// With OTEL_EXPORTER_OTLP_ENDPOINT set, each request's span parents
	// the Delay it makes, and the trace goes on in the worker.
	shutdownTracing, err := tracing.Setup(ctx, "signup-server", app)
	if err != nil {
		log.Error("tracing", "err", err)
		os.Exit(1)
	}
	defer shutdownTracing(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/gallery", gallery.Handler(log))
	mux.Handle("/", signup.Handler(log))
	var handler http.Handler = mux
	if tracing.Enabled() {
		handler = tracing.Handler(mux)
	}
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Info("listening", "addr", *addr, "broker", driver.Redact(*broker))
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
