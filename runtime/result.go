package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// State is a Celery task state, as AsyncResult.State reports it. The states
// a task passes through on a worker (RECEIVED, REJECTED, IGNORED) are in
// package driver.
type State = driver.State

// The task states an application sees.
const (
	StatePending = driver.StatePending // unknown to the backend: queued, or never sent
	StateStarted = driver.StateStarted // running (stored when task_track_started is set)
	StateRetry   = driver.StateRetry   // failed and scheduled to run again
	StateFailure = driver.StateFailure // failed for good; Get returns a *TaskError
	StateSuccess = driver.StateSuccess // finished; Get returns the result
	StateRevoked = driver.StateRevoked // revoked before or while it ran
)

// CeleryException is implemented by errors that choose the Python exception
// class a Python caller sees, e.g. ("builtins", "ValueError") to make Python
// raise ValueError, or ("myapp.errors", "QuotaExceeded") for a class of the
// caller's own module.
type CeleryException interface {
	CeleryException() (module, class string)
}

// exceptionFromError maps a Go error to the exception document
// ({exc_type, exc_message, exc_module}) stored for a failed or retried task,
// that is, the exception a Python caller of AsyncResult.get() sees. The first
// rule that applies wins:
//
//  1. an error in err's chain (errors.As) implementing CeleryException names
//     the module and class;
//  2. a *TaskError in the chain (a subtask's failure returned as is) keeps the
//     exception it carries, message included;
//  3. unless rule 4 finds a type outside the standard library, well-known
//     causes anywhere in the chain (errors.Is):
//     ErrTimeLimitExceeded → celery.exceptions.TimeLimitExceeded,
//     ErrSoftTimeLimitExceeded → celery.exceptions.SoftTimeLimitExceeded,
//     context.DeadlineExceeded → builtins.TimeoutError,
//     fs.ErrNotExist → builtins.FileNotFoundError,
//     fs.ErrExist → builtins.FileExistsError,
//     fs.ErrPermission → builtins.PermissionError (so a *fs.PathError for
//     a missing file is FileNotFoundError, as Python's open raises);
//  4. otherwise the outermost error of the chain (following Unwrap, the first
//     branch of a multi-error) whose type is not one of the standard
//     library's plain error and wrapper types (package errors or fmt: those
//     of errors.New, fmt.Errorf, errors.Join) gives the class: exc_type is its
//     Go type name without package or "*" (e.g. "NotFoundError"; generic type
//     arguments kept), exc_module its package import path (e.g.
//     "github.com/acme/shop/billing", "main"). Python finds no such module and
//     synthesises an exception class of that name (in celery.exceptions), so
//     `except Exception` and the class name both work;
//  5. an error with no such type (errors.New, fmt.Errorf without a typed
//     error) is builtins.Exception.
//
// exc_message (the Python exception's args) is [err.Error()]: the whole
// message, wrapping context included, except in rule 2.
func exceptionFromError(err error) *driver.ExceptionInfo {
	if err == nil {
		return &driver.ExceptionInfo{Type: "Exception", Message: []any{""}, Module: "builtins"}
	}
	msg := []any{err.Error()}
	var ce CeleryException
	if errors.As(err, &ce) {
		mod, cls := ce.CeleryException()
		if cls == "" {
			cls = "Exception"
		}
		return &driver.ExceptionInfo{Type: cls, Message: msg, Module: mod}
	}
	var te *TaskError
	if errors.As(err, &te) && te.Exception.Type != "" {
		return &driver.ExceptionInfo{Type: te.Exception.Type, Message: te.Exception.Message, Module: te.Exception.Module}
	}
	var class *driver.ExceptionInfo
	for e, n := err, 0; e != nil && n < 100; n++ {
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.PkgPath() {
		case "errors", "fmt", "":
		default:
			if t.Name() != "" {
				class = &driver.ExceptionInfo{Type: t.Name(), Message: msg, Module: t.PkgPath()}
			}
		}
		if class != nil {
			break
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			if l := u.Unwrap(); len(l) > 0 {
				e = l[0]
			} else {
				e = nil
			}
		default:
			e = nil
		}
	}
	if class == nil || isStdlibPackage(class.Module) {
		for _, k := range knownErrors {
			if errors.Is(err, k.err) {
				return &driver.ExceptionInfo{Type: k.class, Message: msg, Module: k.module}
			}
		}
	}
	if class != nil {
		return class
	}
	return &driver.ExceptionInfo{Type: "Exception", Message: msg, Module: "builtins"}
}

// isStdlibPackage reports whether path looks like a standard library import
// path (no dot in its first element).
func isStdlibPackage(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return path != "main" && !strings.Contains(first, ".")
}

var knownErrors = []struct {
	err           error
	module, class string
}{
	{ErrTimeLimitExceeded, "celery.exceptions", "TimeLimitExceeded"},
	{ErrSoftTimeLimitExceeded, "celery.exceptions", "SoftTimeLimitExceeded"},
	{context.DeadlineExceeded, "builtins", "TimeoutError"},
	{fs.ErrNotExist, "builtins", "FileNotFoundError"},
	{fs.ErrExist, "builtins", "FileExistsError"},
	{fs.ErrPermission, "builtins", "PermissionError"},
}

// TaskError is the error AsyncResult.Get returns for a task that failed or was
// revoked: it carries the exception as the worker stored it.
type TaskError struct {
	TaskID    string
	State     State
	Exception driver.ExceptionInfo
	Traceback string
}

// Error reads "task <id> failed: <module>.<Type>: <message>" (or "was revoked").
func (e *TaskError) Error() string {
	var msg []string
	for _, m := range e.Exception.Message {
		if s, ok := m.(string); ok {
			msg = append(msg, s)
		} else {
			msg = append(msg, wire.Repr(m))
		}
	}
	typ := e.Exception.Type
	if e.Exception.Module != "" && e.Exception.Module != "builtins" {
		typ = e.Exception.Module + "." + typ
	}
	verb := "failed"
	if e.State == StateRevoked {
		verb = "was revoked"
	}
	return fmt.Sprintf("task %s %s: %s: %s", e.TaskID, verb, typ, strings.Join(msg, ", "))
}

// AsyncResult is the handle of a sent task: its id, and typed access to its
// state and result through the app's result backend.
type AsyncResult[R any] struct {
	app *App
	id  string
}

// NewAsyncResult returns the handle of task id on app, for a task sent
// elsewhere (another process, Python).
func NewAsyncResult[R any](app *App, id string) *AsyncResult[R] {
	return &AsyncResult[R]{app: app, id: id}
}

// ID returns the task id.
func (r *AsyncResult[R]) ID() string { return r.id }

// String returns the task id.
func (r *AsyncResult[R]) String() string { return r.id }

// State returns the task's current state (PENDING when nothing is stored).
func (r *AsyncResult[R]) State(ctx context.Context) (State, error) {
	doc, err := r.app.loadResult(ctx, r.id)
	if err != nil || doc == nil {
		return StatePending, err
	}
	return doc.Status, nil
}

// Get waits until the task is ready or ctx ends, and returns its typed result.
// A failed or revoked task returns a *TaskError.
func (r *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	var zero R
	doc, err := r.app.waitResult(ctx, r.id)
	if err != nil {
		return zero, err
	}
	if doc.Status != StateSuccess {
		return zero, &TaskError{TaskID: r.id, State: doc.Status, Exception: doc.Exception(), Traceback: doc.Traceback}
	}
	var v R
	if err := doc.DecodeResult(&v); err != nil {
		return zero, fmt.Errorf("taskgen: task %s: decode result as %T: %w", r.id, v, err)
	}
	return v, nil
}

func (a *App) loadResult(ctx context.Context, id string) (*driver.ResultDoc, error) {
	if a.backend == nil {
		return nil, ErrNoBackend
	}
	raw, err := a.backend.Load(ctx, id)
	if err != nil || raw == nil {
		return nil, err
	}
	return driver.DecodeResultDoc(a.cfg.ResultSerializer, raw)
}

func (a *App) waitResult(ctx context.Context, id string) (*driver.ResultDoc, error) {
	if a.backend == nil {
		return nil, ErrNoBackend
	}
	ser := a.cfg.ResultSerializer
	raw, err := a.backend.Wait(ctx, id, func(doc []byte) bool {
		d, err := driver.DecodeResultDoc(ser, doc)
		// A document that does not decode ends the wait: the error is
		// the caller's, not a reason to wait until ctx ends.
		return err != nil || d.Status.Ready()
	})
	if err != nil {
		return nil, fmt.Errorf("taskgen: wait for result of %s: %w", id, err)
	}
	return driver.DecodeResultDoc(ser, raw)
}

// storeResult writes doc for id, with the app's result expiry.
func (a *App) storeResult(ctx context.Context, doc *driver.ResultDoc) error {
	if a.backend == nil {
		return nil
	}
	raw, err := driver.EncodeResultDoc(a.cfg.ResultSerializer, doc)
	if err != nil {
		return err
	}
	ttl := a.cfg.ResultExpires
	if ttl < 0 {
		ttl = 0
	}
	return a.backend.Store(ctx, doc.TaskID, raw, ttl)
}
