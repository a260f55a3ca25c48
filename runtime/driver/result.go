package driver

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/taskgen/taskgen/runtime/internal/wire"
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

// Celery 5.2 writes date_done as naive UTC with microseconds.
const dateDoneLayout = "2006-01-02T15:04:05.000000"

func (e *ExceptionInfo) appendMsgpack(b []byte) ([]byte, error) {
	b = wire.MsgpackAppendMapLen(b, 3)
	b = wire.MsgpackAppendString(b, "exc_type")
	b = wire.MsgpackAppendString(b, e.Type)
	b = wire.MsgpackAppendString(b, "exc_message")
	b = wire.MsgpackAppendArrayLen(b, len(e.Message))
	for _, m := range e.Message {
		var err error
		if b, err = wire.MsgpackAppendValue(b, m); err != nil {
			return b, err
		}
	}
	b = wire.MsgpackAppendString(b, "exc_module")
	return wire.MsgpackAppendString(b, e.Module), nil
}

func (e *ExceptionInfo) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"exc_type": `...)
	b = wire.AppendJSONString(b, e.Type)
	b = append(b, `, "exc_message": [`...)
	for i, m := range e.Message {
		if i > 0 {
			b = append(b, ", "...)
		}
		var err error
		if b, err = wire.AppendJSONValue(b, m); err != nil {
			return b, err
		}
	}
	b = append(b, `], "exc_module": `...)
	b = wire.AppendJSONString(b, e.Module)
	return append(b, '}'), nil
}

type resultField struct {
	k string
	v any
}

// fields returns the document's fields in the order Celery 5.2 writes them:
// status, result, traceback, children, date_done, [group_id], [parent_id],
// [name, args, kwargs, worker, retries, queue], task_id.
func (doc *ResultDoc) fields() []resultField {
	fields := make([]resultField, 0, 14)
	fields = append(fields, resultField{"status", string(doc.Status)}, resultField{"result", doc.Result})
	if doc.Traceback != "" {
		fields = append(fields, resultField{"traceback", doc.Traceback})
	} else {
		fields = append(fields, resultField{"traceback", nil})
	}
	children := doc.Children
	if children == nil {
		children = []any{}
	}
	fields = append(fields, resultField{"children", children})
	if doc.DateDone.IsZero() {
		fields = append(fields, resultField{"date_done", nil})
	} else {
		fields = append(fields, resultField{"date_done", doc.DateDone.UTC().Format(dateDoneLayout)})
	}
	if doc.GroupID != "" {
		fields = append(fields, resultField{"group_id", doc.GroupID})
	}
	if doc.ParentID != "" {
		fields = append(fields, resultField{"parent_id", doc.ParentID})
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
		fields = append(fields, resultField{"name", doc.Name}, resultField{"args", args}, resultField{"kwargs", kwargs},
			resultField{"worker", doc.Worker}, resultField{"retries", int64(doc.Retries)}, resultField{"queue", doc.Queue})
	}
	return append(fields, resultField{"task_id", doc.TaskID})
}

// EncodeResultDoc serializes doc with serializer ("msgpack" or "json") as
// Celery's result backends store it: fields in Celery's order, date_done as
// naive UTC with microseconds (Celery 5.2), the extended fields (name, args,
// kwargs, worker, retries, queue) when Name is set, and an *ExceptionInfo (or
// ExceptionInfo) result as {exc_type, exc_message, exc_module}.
func EncodeResultDoc(serializer string, doc *ResultDoc) ([]byte, error) {
	fields := doc.fields()
	switch serializer {
	case "", wire.SerializerMsgpack:
		b := wire.MsgpackAppendMapLen(make([]byte, 0, 128), len(fields))
		for _, f := range fields {
			b = wire.MsgpackAppendString(b, f.k)
			var err error
			switch e := f.v.(type) {
			case *ExceptionInfo:
				b, err = e.appendMsgpack(b)
			case ExceptionInfo:
				b, err = e.appendMsgpack(b)
			default:
				b, err = wire.MsgpackAppendValue(b, f.v)
			}
			if err != nil {
				return nil, fmt.Errorf("encode result field %s: %w", f.k, err)
			}
		}
		return b, nil
	case wire.SerializerJSON:
		b := append(make([]byte, 0, 128), '{')
		for i, f := range fields {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = wire.AppendJSONString(b, f.k)
			b = append(b, ": "...)
			var err error
			switch e := f.v.(type) {
			case *ExceptionInfo:
				b, err = e.appendJSON(b)
			case ExceptionInfo:
				b, err = e.appendJSON(b)
			default:
				b, err = wire.AppendJSONValue(b, f.v)
			}
			if err != nil {
				return nil, fmt.Errorf("encode result field %s: %w", f.k, err)
			}
		}
		return append(b, '}'), nil
	}
	_, _, err := wire.ContentTypeOf(serializer)
	return nil, err
}

// docSerializer returns the serializer that wrote data, a result document
// read as def (msgpack or json), by its first byte that is not JSON white
// space ('{' for JSON, a map header for msgpack); def when that byte says
// neither or def is another serializer.
func docSerializer(def string, data []byte) string {
	if def != "" && def != wire.SerializerMsgpack && def != wire.SerializerJSON {
		return def
	}
	for _, c := range data {
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '{':
			return wire.SerializerJSON
		case c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf:
			return wire.SerializerMsgpack
		}
		break
	}
	return def
}

// DecodeResultDoc parses a result document as Celery or taskgen stored it,
// with serializer ("msgpack" or "json"). Redis stores no content type, and
// Celery reads with its own result serializer; taskgen also reads a
// document the other serializer wrote, which the first byte tells apart (a
// JSON document starts with '{', which no msgpack map does, and a msgpack
// map starts with a byte no JSON document does), so a Go app on msgpack
// reads what a Python app on json stored and the other way round. The
// result field is kept raw (RawResult; decode it with DecodeResult or
// Exception); children, args and kwargs are decoded generically (integers
// as int64). Unknown fields are ignored.
func DecodeResultDoc(serializer string, data []byte) (*ResultDoc, error) {
	serializer = docSerializer(serializer, data)
	doc := &ResultDoc{serializer: serializer}
	switch serializer {
	case "", wire.SerializerMsgpack:
		doc.serializer = wire.SerializerMsgpack
		d := wire.NewMsgpackDecoder(data)
		n, err := d.MapLen()
		if err != nil || n < 0 {
			return nil, errors.New("result document: want a map")
		}
		for ; n > 0; n-- {
			k, err := d.StrBytes(true)
			if err != nil {
				return nil, fmt.Errorf("result document: key: %w", err)
			}
			if string(k) == "result" {
				raw, err := d.Raw()
				if err != nil {
					return nil, fmt.Errorf("result document field result: %w", err)
				}
				doc.RawResult = bytes.Clone(raw)
				continue
			}
			v, err := d.AnyValue(0)
			if err != nil {
				return nil, fmt.Errorf("result document field %s: %w", k, err)
			}
			if err := doc.setField(string(k), v); err != nil {
				return nil, err
			}
		}
		if !d.Done() {
			return nil, errors.New("result document: extra data after the map")
		}
	case wire.SerializerJSON:
		d := wire.NewJSONDecoder(data)
		if !d.Expect('{') {
			return nil, errors.New("result document: want an object")
		}
		first := true
		for {
			more, err := d.More('}', &first)
			if err != nil {
				return nil, fmt.Errorf("result document: %w", err)
			}
			if !more {
				break
			}
			k, err := d.Key()
			if err != nil {
				return nil, fmt.Errorf("result document: %w", err)
			}
			if string(k) == "result" {
				raw, err := d.Raw()
				if err != nil {
					return nil, fmt.Errorf("result document field result: %w", err)
				}
				doc.RawResult = bytes.Clone(raw)
				continue
			}
			key := string(k)
			v, err := d.Value(0, wire.UntagGo)
			if err != nil {
				return nil, fmt.Errorf("result document field %s: %w", key, err)
			}
			if err := doc.setField(key, v); err != nil {
				return nil, err
			}
		}
		if !d.Done() {
			return nil, errors.New("result document: extra data after the object")
		}
	default:
		_, _, err := wire.ContentTypeOf(serializer)
		return nil, err
	}
	if doc.Status == "" {
		return nil, errors.New("result document: no status")
	}
	return doc, nil
}

func (doc *ResultDoc) setField(k string, v any) error {
	bad := func(want string) error {
		return fmt.Errorf("result document field %s: want %s, got %T", k, want, v)
	}
	str := func(p *string) error {
		switch x := v.(type) {
		case nil:
			*p = ""
		case string:
			*p = x
		case []byte:
			*p = string(x)
		default:
			return bad("a string")
		}
		return nil
	}
	switch k {
	case "status":
		var s string
		if err := str(&s); err != nil {
			return err
		}
		doc.Status = State(s)
	case "traceback":
		return str(&doc.Traceback)
	case "group_id":
		return str(&doc.GroupID)
	case "parent_id":
		return str(&doc.ParentID)
	case "name":
		return str(&doc.Name)
	case "worker":
		return str(&doc.Worker)
	case "queue":
		return str(&doc.Queue)
	case "task_id":
		return str(&doc.TaskID)
	case "date_done":
		var s string
		if err := str(&s); err != nil {
			return err
		}
		if s != "" {
			// Formats differ between Celery versions; an unparsable date
			// leaves DateDone zero rather than losing the document.
			if t, err := ParseTime(s); err == nil {
				doc.DateDone = t
			}
		}
	case "children":
		switch x := v.(type) {
		case nil:
		case []any:
			doc.Children = x
		default:
			return bad("a list")
		}
	case "args":
		switch x := v.(type) {
		case nil:
		case []any:
			doc.Args = x
		default:
			return bad("a list")
		}
	case "kwargs":
		switch x := v.(type) {
		case nil:
		case map[string]any:
			doc.Kwargs = x
		default:
			return bad("a map")
		}
	case "retries":
		if v == nil {
			return nil
		}
		n, ok := AnyToInt(v)
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			return bad("an integer")
		}
		doc.Retries = int(n)
	}
	return nil
}

// DecodeResult decodes the document's result value into ptr: generic
// destinations (*any, []any, map[string]any) with integers as int64, a
// *time.Time from an ISO-8601 string, other types by reflection.
func (d *ResultDoc) DecodeResult(ptr any) error {
	if d.RawResult == nil {
		return nil
	}
	switch d.serializer {
	case "", wire.SerializerMsgpack:
		return wire.MsgpackDecodeInto(d.RawResult, ptr)
	default:
		return wire.JSONDecodeInto(d.RawResult, ptr)
	}
}

// Exception decodes the result field as an exception document. A result that
// is not one gives a builtins.Exception carrying its repr.
func (d *ResultDoc) Exception() ExceptionInfo {
	var v any
	err := d.DecodeResult(&v)
	if err == nil {
		if m, ok := v.(map[string]any); ok {
			if t, ok := m["exc_type"].(string); ok && t != "" {
				e := ExceptionInfo{Type: t}
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
		}
		return ExceptionInfo{Type: "Exception", Message: []any{wire.Repr(v)}, Module: "builtins"}
	}
	return ExceptionInfo{Type: "Exception", Message: []any{fmt.Sprintf("undecodable result: %v", err)}, Module: "builtins"}
}
