package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// State is a Celery task state.
type State string

// Celery's task states.
const (
	StatePending  State = "PENDING"
	StateReceived State = "RECEIVED"
	StateStarted  State = "STARTED"
	StateSuccess  State = "SUCCESS"
	StateFailure  State = "FAILURE"
	StateRevoked  State = "REVOKED"
	StateRejected State = "REJECTED"
	StateRetry    State = "RETRY"
	StateIgnored  State = "IGNORED"
)

// Ready reports whether s is final: SUCCESS, FAILURE or REVOKED.
func (s State) Ready() bool { return s == StateSuccess || s == StateFailure || s == StateRevoked }

// ResultDoc is a Celery result document (celery-task-meta-<id>).
type ResultDoc struct {
	Status State
	// Result is the value to encode: the task's return value for SUCCESS, an
	// *ExceptionInfo for FAILURE, RETRY and REVOKED.
	Result any
	// RawResult is the serialized result field of a decoded document.
	RawResult []byte
	Traceback string
	// Children is kept as decoded (result tuples of subtasks).
	Children []any
	DateDone time.Time
	GroupID  string
	ParentID string
	// Extended fields (Celery's result_extended), written when Name is set.
	Name    string
	Args    []any
	Kwargs  map[string]any
	Worker  string
	Retries int
	Queue   string
	TaskID  string
	// serializer that decoded RawResult.
	serializer string
}

// ExceptionInfo is Celery's serialized exception: {exc_type, exc_message, exc_module}.
type ExceptionInfo struct {
	Type    string // exc_type: the class name, e.g. "ValueError"
	Message []any  // exc_message: the exception's args, usually [message]
	Module  string // exc_module, e.g. "builtins"
}

// CeleryException is implemented by errors that choose the Python exception
// class a Python caller sees, e.g. ("builtins", "ValueError").
type CeleryException interface {
	CeleryException() (module, class string)
}

// ExceptionFromError maps a Go error to Celery's exception document:
//   - an error implementing CeleryException names its own module and class;
//   - context.DeadlineExceeded becomes builtins.TimeoutError;
//   - plain errors (errors.New, fmt.Errorf) become builtins.Exception;
//   - any other error becomes its Go type name (without "*") in a module named
//     after its Go package path; Python synthesises such a class.
//
// The message is err.Error().
func ExceptionFromError(err error) *ExceptionInfo {
	msg := []any{err.Error()}
	var ce CeleryException
	if errors.As(err, &ce) {
		mod, cls := ce.CeleryException()
		return &ExceptionInfo{Type: cls, Message: msg, Module: mod}
	}
	var te *TaskError
	if errors.As(err, &te) && te.Exception.Type != "" {
		return &ExceptionInfo{Type: te.Exception.Type, Message: te.Exception.Message, Module: te.Exception.Module}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &ExceptionInfo{Type: "TimeoutError", Message: msg, Module: "builtins"}
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.PkgPath() {
	case "errors", "fmt", "":
		return &ExceptionInfo{Type: "Exception", Message: msg, Module: "builtins"}
	}
	return &ExceptionInfo{Type: t.Name(), Message: msg, Module: t.PkgPath()}
}

// TaskError is the error AsyncResult.Get returns for a task that failed or was
// revoked: it carries the exception as the worker stored it.
type TaskError struct {
	TaskID    string
	State     State
	Exception ExceptionInfo
	Traceback string
}

func (e *TaskError) Error() string {
	var msg []string
	for _, m := range e.Exception.Message {
		if s, ok := m.(string); ok {
			msg = append(msg, s)
		} else {
			msg = append(msg, Repr(m))
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

// Celery writes date_done as naive UTC with microseconds (5.2).
const dateDoneLayout = "2006-01-02T15:04:05.000000"

func (e *ExceptionInfo) appendMsgpack(b []byte) []byte {
	b = mpAppendMapLen(b, 3)
	b = mpAppendString(b, "exc_type")
	b = mpAppendString(b, e.Type)
	b = mpAppendString(b, "exc_message")
	b = mpAppendArrayLen(b, len(e.Message))
	for _, m := range e.Message {
		b, _ = mpAppendValue(b, m)
	}
	b = mpAppendString(b, "exc_module")
	return mpAppendString(b, e.Module)
}

func (e *ExceptionInfo) appendJSON(b []byte) []byte {
	b = append(b, `{"exc_type": `...)
	b = appendJSONString(b, e.Type)
	b = append(b, `, "exc_message": `...)
	raw, err := json.Marshal(e.Message)
	if err != nil || e.Message == nil {
		raw = []byte("[]")
	}
	b = append(b, raw...)
	b = append(b, `, "exc_module": `...)
	b = appendJSONString(b, e.Module)
	return append(b, '}')
}

// EncodeResultDoc serializes doc with serializer, fields in Celery's order.
func EncodeResultDoc(serializer string, doc *ResultDoc) ([]byte, error) {
	type kv struct {
		k string
		v any
	}
	fields := []kv{{"status", string(doc.Status)}, {"result", doc.Result}}
	if doc.Traceback != "" {
		fields = append(fields, kv{"traceback", doc.Traceback})
	} else {
		fields = append(fields, kv{"traceback", nil})
	}
	children := doc.Children
	if children == nil {
		children = []any{}
	}
	fields = append(fields, kv{"children", children})
	if doc.DateDone.IsZero() {
		fields = append(fields, kv{"date_done", nil})
	} else {
		fields = append(fields, kv{"date_done", doc.DateDone.UTC().Format(dateDoneLayout)})
	}
	if doc.GroupID != "" {
		fields = append(fields, kv{"group_id", doc.GroupID})
	}
	if doc.ParentID != "" {
		fields = append(fields, kv{"parent_id", doc.ParentID})
	}
	if doc.Name != "" {
		args := doc.Args
		if args == nil {
			args = []any{}
		}
		kwargs := doc.Kwargs
		if kwargs == nil {
			kwargs = map[string]any{}
		}
		fields = append(fields, kv{"name", doc.Name}, kv{"args", args}, kv{"kwargs", kwargs},
			kv{"worker", doc.Worker}, kv{"retries", int64(doc.Retries)}, kv{"queue", doc.Queue})
	}
	fields = append(fields, kv{"task_id", doc.TaskID})

	switch serializer {
	case "", SerializerMsgpack:
		b := mpAppendMapLen(make([]byte, 0, 128), len(fields))
		for _, f := range fields {
			b = mpAppendString(b, f.k)
			if e, ok := f.v.(*ExceptionInfo); ok {
				b = e.appendMsgpack(b)
				continue
			}
			var err error
			if b, err = mpAppendValue(b, f.v); err != nil {
				return nil, fmt.Errorf("encode result field %s: %w", f.k, err)
			}
		}
		return b, nil
	case SerializerJSON:
		b := append(make([]byte, 0, 128), '{')
		for i, f := range fields {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendJSONString(b, f.k)
			b = append(b, ": "...)
			if e, ok := f.v.(*ExceptionInfo); ok {
				b = e.appendJSON(b)
				continue
			}
			raw, err := json.Marshal(f.v)
			if err != nil {
				return nil, fmt.Errorf("encode result field %s: %w", f.k, err)
			}
			b = append(b, raw...)
		}
		return append(b, '}'), nil
	}
	_, _, err := contentTypeOf(serializer)
	return nil, err
}

type jsonResultDoc struct {
	Status    State           `json:"status"`
	Result    json.RawMessage `json:"result"`
	Traceback *string         `json:"traceback"`
	Children  []any           `json:"children"`
	DateDone  *string         `json:"date_done"`
	GroupID   string          `json:"group_id"`
	ParentID  string          `json:"parent_id"`
	Name      string          `json:"name"`
	Args      []any           `json:"args"`
	Kwargs    map[string]any  `json:"kwargs"`
	Worker    string          `json:"worker"`
	Retries   int             `json:"retries"`
	Queue     string          `json:"queue"`
	TaskID    string          `json:"task_id"`
}

// DecodeResultDoc parses a serialized result document.
func DecodeResultDoc(serializer string, data []byte) (*ResultDoc, error) {
	var j jsonResultDoc
	switch serializer {
	case "", SerializerMsgpack:
		d := mpDec{b: data}
		n, err := d.mapLen()
		if err != nil {
			return nil, fmt.Errorf("result document: %w", err)
		}
		generic := make(map[string]any, n)
		for ; n > 0; n-- {
			k, err := d.strBytes(false)
			if err != nil {
				return nil, fmt.Errorf("result document: %w", err)
			}
			raw, err := d.raw()
			if err != nil {
				return nil, fmt.Errorf("result document: %w", err)
			}
			if string(k) == "result" {
				j.Result = raw
				continue
			}
			var v any
			if err := mpUnmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("result document field %s: %w", k, err)
			}
			generic[string(k)] = v
		}
		// Re-use the JSON struct mapping for the plain fields.
		buf, err := json.Marshal(generic)
		if err != nil {
			return nil, fmt.Errorf("result document: %w", err)
		}
		raw := j.Result
		if err := json.Unmarshal(buf, &j); err != nil {
			return nil, fmt.Errorf("result document: %w", err)
		}
		j.Result = raw
	case SerializerJSON:
		if err := json.Unmarshal(data, &j); err != nil {
			return nil, fmt.Errorf("result document: %w", err)
		}
	default:
		_, _, err := contentTypeOf(serializer)
		return nil, err
	}
	if j.Status == "" {
		return nil, errors.New("result document: no status")
	}
	doc := &ResultDoc{Status: j.Status, RawResult: j.Result, Children: j.Children, GroupID: j.GroupID,
		ParentID: j.ParentID, Name: j.Name, Args: j.Args, Kwargs: j.Kwargs, Worker: j.Worker,
		Retries: j.Retries, Queue: j.Queue, TaskID: j.TaskID, serializer: serializer}
	if j.Traceback != nil {
		doc.Traceback = *j.Traceback
	}
	if j.DateDone != nil && *j.DateDone != "" {
		t, err := ParseTime(*j.DateDone)
		if err == nil {
			doc.DateDone = t
		}
	}
	return doc, nil
}

// DecodeResult decodes the document's result value into ptr.
func (d *ResultDoc) DecodeResult(ptr any) error {
	if d.RawResult == nil {
		return nil
	}
	switch d.serializer {
	case "", SerializerMsgpack:
		return mpUnmarshal(d.RawResult, ptr)
	default:
		return json.Unmarshal(d.RawResult, ptr)
	}
}

// Exception decodes the result field as an exception document.
func (d *ResultDoc) Exception() ExceptionInfo {
	var m map[string]any
	if err := d.DecodeResult(&m); err != nil || m == nil {
		return ExceptionInfo{Type: "Exception", Message: []any{string(d.RawResult)}}
	}
	e := ExceptionInfo{}
	e.Type, _ = m["exc_type"].(string)
	e.Module, _ = m["exc_module"].(string)
	switch msg := m["exc_message"].(type) {
	case []any:
		e.Message = msg
	case nil:
	default:
		e.Message = []any{msg}
	}
	return e
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

func (a *App) loadResult(ctx context.Context, id string) (*ResultDoc, error) {
	if a.backend == nil {
		return nil, ErrNoBackend
	}
	raw, err := a.backend.Load(ctx, id)
	if err != nil || raw == nil {
		return nil, err
	}
	return DecodeResultDoc(a.cfg.ResultSerializer, raw)
}

func (a *App) waitResult(ctx context.Context, id string) (*ResultDoc, error) {
	if a.backend == nil {
		return nil, ErrNoBackend
	}
	ser := a.cfg.ResultSerializer
	raw, err := a.backend.Wait(ctx, id, func(doc []byte) bool {
		d, err := DecodeResultDoc(ser, doc)
		return err == nil && d.Status.Ready()
	})
	if err != nil {
		return nil, fmt.Errorf("taskgen: wait for result of %s: %w", id, err)
	}
	return DecodeResultDoc(ser, raw)
}

// storeResult writes doc for id, with the app's result expiry.
func (a *App) storeResult(ctx context.Context, doc *ResultDoc) error {
	if a.backend == nil {
		return nil
	}
	raw, err := EncodeResultDoc(a.cfg.ResultSerializer, doc)
	if err != nil {
		return err
	}
	ttl := a.cfg.ResultExpires
	if ttl < 0 {
		ttl = 0
	}
	return a.backend.Store(ctx, doc.TaskID, raw, ttl)
}

var _ = strconv.Itoa
