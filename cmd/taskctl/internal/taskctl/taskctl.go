// Package taskctl is the whole of the taskctl command, testable in process:
// [Run] parses the arguments, opens the app and runs one verb.
package taskctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskgen/taskgen/runtime"
	_ "github.com/taskgen/taskgen/runtime/all" // every transport
)

// Exit codes.
const (
	ExitOK      = 0 // done
	ExitError   = 1 // the broker, the backend or the operation failed
	ExitUsage   = 2 // bad arguments
	ExitNoReply = 3 // no worker answered within -timeout, or -wait ran out
	ExitAborted = 4 // a purge declined at the prompt, or refused without -y
)

const usage = `usage: taskctl [-broker URL] [-backend URL] [-json] [-timeout 1s] VERB ARGS…

Verbs:
  inspect [-d NODE,…] ping|stats|active|reserved|scheduled|registered|active_queues|revoked
                                      ask every worker (Go or Python) over remote control
  control revoke [-d NODE,…] [-terminate] ID…
                                      revoke tasks on every worker (or those of -d)
  control rate_limit [-d NODE,…] TASK RATE
                                      set a task's rate limit ("10/m", "5/s", "100/h";
                                      "0" or "" removes it) until the workers stop
  control shutdown [-d NODE,…]        warm shutdown: workers stop taking tasks, let
                                      running ones finish, exit (no reply)
  queues [QUEUE…]                     ready messages, consuming workers and dead letters
  purge [-y] QUEUE…                   discard the ready messages of queues (asks first)
  dead-letter list [-queue Q] [-limit N]
  dead-letter requeue [-queue Q] (-all | ID…)
  dead-letter drop [-queue Q] (-all | ID…)
  call [-queue Q] [-kwargs JSON] [-countdown D] [-id ID] [-wait D] TASK [ARG…]
                                      publish a task by name; each ARG is a JSON value
  result [-wait D] ID                 a task's state and result from the result backend

Environment: TASKGEN_BROKER and TASKGEN_BACKEND give -broker and -backend.

Exit codes: 0 ok, 1 error (broker, backend or operation failed), 2 usage,
3 no reply (no worker answered within -timeout, or -wait ran out),
4 aborted (purge declined, or stdin not a terminal and no -y).

Flags:
`

// cli is one invocation.
type cli struct {
	ctx     context.Context
	stdin   io.Reader
	out     io.Writer
	errw    io.Writer
	json    bool
	timeout time.Duration
	app     *runtime.App
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errNoReply means no worker answered (exit 3).
var errNoReply = errors.New("no reply")

// errAborted means the operator declined (exit 4).
var errAborted = errors.New("aborted")

// Run runs taskctl with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("taskctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", os.Getenv("TASKGEN_BROKER"), "broker `URL` (default $TASKGEN_BROKER)")
	backend := fs.String("backend", os.Getenv("TASKGEN_BACKEND"), "result backend `URL` for result and call -wait (default $TASKGEN_BACKEND)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", time.Second, "how long inspect and control wait for replies")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitUsage
	}
	if *broker == "" {
		fmt.Fprintln(stderr, "taskctl: no broker: pass -broker URL or set TASKGEN_BROKER (e.g. redis://127.0.0.1:6379/0)")
		return ExitUsage
	}
	verb, rest := fs.Arg(0), fs.Args()[1:]
	run, ok := verbs[verb]
	if !ok {
		fmt.Fprintf(stderr, "taskctl: unknown verb %q (want inspect, control, queues, purge, dead-letter, call or result; taskctl -h lists them)\n", verb)
		return ExitUsage
	}
	app, err := runtime.New(runtime.Config{Broker: *broker, Backend: *backend,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintf(stderr, "taskctl: %v\n", err)
		return ExitError
	}
	defer app.Close()
	c := &cli{ctx: ctx, stdin: stdin, out: stdout, errw: stderr, json: *asJSON, timeout: *timeout, app: app}
	err = run(c, rest)
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "taskctl %s: %s\n", verb, ue.msg)
		return ExitUsage
	case errors.Is(err, errNoReply):
		fmt.Fprintf(stderr, "taskctl %s: %v\n", verb, err)
		return ExitNoReply
	case errors.Is(err, errAborted):
		fmt.Fprintf(stderr, "taskctl %s: %v\n", verb, err)
		return ExitAborted
	}
	fmt.Fprintf(stderr, "taskctl %s: %v\n", verb, err)
	return ExitError
}

var verbs map[string]func(*cli, []string) error

func init() {
	verbs = map[string]func(*cli, []string) error{
		"inspect":     (*cli).inspect,
		"control":     (*cli).control,
		"queues":      (*cli).queues,
		"purge":       (*cli).purge,
		"dead-letter": (*cli).deadLetter,
		"call":        (*cli).call,
		"result":      (*cli).result,
	}
}

// flags returns a flag set for a verb whose errors go to stderr.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("taskctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.errw)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// table prints rows under header, aligned.
func (c *cli) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ask sends method to the destination workers (every worker when empty)
// and waits -timeout for replies (less once every destination answered);
// none is errNoReply.
func (c *cli) ask(method string, args map[string]any, destination []string) (map[string]any, error) {
	replies, err := c.app.Control(c.ctx, method, args, destination, c.timeout)
	if err != nil {
		return nil, err
	}
	if len(replies) == 0 {
		if len(destination) > 0 {
			return nil, fmt.Errorf("%w from %s within %v (check the node names with taskctl inspect ping; raise -timeout)", errNoReply, strings.Join(destination, ", "), c.timeout)
		}
		return nil, fmt.Errorf("%w from any worker within %v (are workers running on this broker? raise -timeout)", errNoReply, c.timeout)
	}
	return replies, nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// str formats a reply value for a table cell.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
		return fmt.Sprint(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// fmtTime formats a time for tables ("" when zero).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
