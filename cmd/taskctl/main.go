// Command taskctl is the operator's command line for taskgen and Celery
// workers: inspect and control workers over Celery's remote control, queue
// lengths, purges, dead letters, calls by task name and results.
//
//	taskctl [-broker URL] [-backend URL] [-json] [-timeout 1s] VERB ARGS…
//
// Run `taskctl -h` for the verbs and exit codes; the README's "taskctl"
// section documents each of them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskgen/taskgen/cmd/taskctl/internal/taskctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := taskctl.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
