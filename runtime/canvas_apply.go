package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// What a worker does for the workflow a message belongs to, as Celery's
// tracer does (celery/app/trace.py): after a success it sends the
// callbacks (link) and the next step of the chain with the result as
// their first argument; after a failure for good it sends the errbacks
// (link_error) with the task's id; and a chord header member reports to
// the result backend, the last one sending the body with every result.

// workflow is the decoded embed of a message: {callbacks, errbacks, chain,
// chord}, each as Celery's signature dicts.
type workflow struct {
	callbacks []any
	errbacks  []any
	chain     []any // reversed: the next step is the last element
	chord     map[string]any
}

// decodeEmbed returns the workflow of a message's embed, or nil when it
// has none (the common case, recognised without decoding).
func decodeEmbed(contentType string, raw []byte) (*workflow, error) {
	if wire.IsEmptyEmbed(raw) {
		return nil, nil
	}
	ser, err := wire.SerializerOf(contentType)
	if err != nil {
		return nil, err
	}
	v, err := wire.DecodeGeneric(ser, raw)
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("embed is a %T, not a map", v)
	}
	wf := &workflow{callbacks: asList(m["callbacks"]), errbacks: asList(m["errbacks"]), chain: asList(m["chain"])}
	wf.chord, _ = m["chord"].(map[string]any)
	if len(wf.callbacks)+len(wf.errbacks)+len(wf.chain) == 0 && wf.chord == nil {
		return nil, nil
	}
	return wf, nil
}

// asList returns v as a list of signatures: a list, or one signature dict.
func asList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case map[string]any:
		return []any{x}
	}
	return nil
}

// workflowOf decodes m's embed; a bad one is logged and ignored (the task
// itself still runs).
func (w *Worker) workflowOf(m *driver.Message, embed []byte) *workflow {
	wf, err := decodeEmbed(m.ContentType, embed)
	if err != nil {
		w.log.Error("workflow of task ignored: cannot decode its embed", "task", m.Headers.Task, "id", m.Headers.ID, "err", err)
	}
	return wf
}

// afterSuccess sends the callbacks and the next step of the chain with
// result prepended to their arguments.
func (w *Worker) afterSuccess(ctx context.Context, m *driver.Message, wf *workflow, result any) {
	h := &m.Headers
	root := h.RootID
	if root == "" {
		root = h.ID
	}
	for _, cb := range wf.callbacks {
		if err := w.app.applySignature(ctx, cb, []any{result}, root, h.ID, nil, w.lookup); err != nil {
			w.log.Error("sending a callback failed", "task", h.Task, "id", h.ID, "err", err)
		}
	}
	if n := len(wf.chain); n > 0 {
		next, rest := wf.chain[n-1], wf.chain[:n-1]
		if err := w.app.applySignature(ctx, next, []any{result}, root, h.ID, rest, w.lookup); err != nil {
			w.log.Error("sending the next step of a chain failed", "task", h.Task, "id", h.ID, "err", err)
		}
	}
}

// afterFailure sends the errbacks with the failed task's id.
func (w *Worker) afterFailure(ctx context.Context, m *driver.Message, wf *workflow) {
	h := &m.Headers
	root := h.RootID
	if root == "" {
		root = h.ID
	}
	for _, eb := range wf.errbacks {
		if err := w.app.applySignature(ctx, eb, []any{h.ID}, root, h.ID, nil, w.lookup); err != nil {
			w.log.Error("sending an errback failed", "task", h.Task, "id", h.ID, "err", err)
		}
	}
}

// afterRevoke reports a revoked chord header member, so that the chord
// fails instead of waiting for it; wf is nil when the message was not
// decoded (revoked before it ran): its embed is read here then.
func (w *Worker) afterRevoke(ctx context.Context, m *driver.Message, wf *workflow) {
	if m.Headers.Group == "" {
		return
	}
	if wf == nil {
		embed, err := wire.BodyEmbed(m.ContentType, m.Headers.Compression, m.Body)
		if err != nil {
			return
		}
		if wf = w.workflowOf(m, embed); wf == nil {
			return
		}
	}
	w.chordPart(ctx, m, wf, StateRevoked, &driver.ExceptionInfo{Type: "TaskRevokedError", Message: []any{"revoked"}, Module: "celery.exceptions"})
}

// chordPart reports a finished chord header member (state SUCCESS with its
// result, or FAILURE/REVOKED with its exception) and, when it was the
// last, sends the body or fails it.
func (w *Worker) chordPart(ctx context.Context, m *driver.Message, wf *workflow, state State, result any) {
	h := &m.Headers
	if wf == nil || wf.chord == nil || h.Group == "" {
		return
	}
	gb, ok := w.app.backend.(driver.GroupBackend)
	if !ok {
		w.log.Error("chord member finished but the result backend counts no chords; the body will not run", "task", h.Task, "id", h.ID, "group", h.Group)
		return
	}
	if exc, ok := result.(*driver.ExceptionInfo); ok {
		result = exceptionMap(exc)
	}
	part, err := wire.AppendGeneric(nil, w.app.cfg.ResultSerializer, []any{int64(1), h.ID, string(state), result})
	if err != nil {
		w.log.Error("chord part does not encode", "task", h.Task, "id", h.ID, "err", err)
		return
	}
	idx := -1
	if h.GroupIndex != nil {
		idx = *h.GroupIndex
	}
	parts, complete, err := gb.ChordPartReturn(ctx, h.Group, h.ID, idx, part, w.app.resultTTL())
	if err != nil {
		w.log.Error("recording a chord member failed", "task", h.Task, "id", h.ID, "group", h.Group, "err", err)
		return
	}
	if !complete {
		return
	}
	root := h.RootID
	if root == "" {
		root = h.ID
	}
	if err := w.app.completeChord(ctx, h.Group, wf.chord, parts, root, h.ID, w.lookup); err != nil {
		w.log.Error("completing a chord failed", "group", h.Group, "err", err)
		return
	}
	if err := gb.ChordDone(ctx, h.Group); err != nil {
		w.log.Warn("clearing a completed chord failed", "group", h.Group, "err", err)
	}
}

func exceptionMap(e *driver.ExceptionInfo) map[string]any {
	msg := e.Message
	if msg == nil {
		msg = []any{}
	}
	return map[string]any{"exc_type": e.Type, "exc_message": msg, "exc_module": e.Module}
}

// completeChord sends the body of the chord of group gid with the header's
// results in order, or, when a member failed, stores the body's failure
// (Celery's ChordError) and sends the body's errbacks. parent is the
// member that completed the chord: the body's parent, as in Celery.
func (a *App) completeChord(ctx context.Context, gid string, body map[string]any, parts [][]byte, root, parent string, lookup func(string) *codegen.TaskDef) error {
	results := make([]any, 0, len(parts))
	for _, p := range parts {
		v, err := wire.DecodeGeneric(a.cfg.ResultSerializer, p)
		if err != nil {
			return a.failChord(ctx, body, root, fmt.Sprintf("Join error: %v", err), lookup)
		}
		t, _ := v.([]any)
		if len(t) != 4 {
			return a.failChord(ctx, body, root, fmt.Sprintf("Join error: chord part is not [1, id, state, result]: %s", wire.Repr(v)), lookup)
		}
		tid, _ := t[1].(string)
		switch st, _ := t[2].(string); State(st) {
		case StateFailure, StateRevoked:
			return a.failChord(ctx, body, root, fmt.Sprintf("Dependency %s raised %s", tid, pyExceptionRepr(t[3])), lookup)
		}
		results = append(results, t[3])
	}
	return a.applySignature(ctx, body, []any{results}, root, parent, nil, lookup)
}

// pyExceptionRepr writes an exception document as Python's repr of the
// exception: ValueError('boom').
func pyExceptionRepr(v any) string {
	m, _ := v.(map[string]any)
	typ, _ := m["exc_type"].(string)
	if typ == "" {
		return wire.Repr(v)
	}
	args, _ := m["exc_message"].([]any)
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = wire.Repr(a)
	}
	return typ + "(" + strings.Join(parts, ", ") + ")"
}

// failChord stores the FAILURE of the chord's body with a ChordError and
// sends the body's errbacks (Celery's chord_error_from_stack).
func (a *App) failChord(ctx context.Context, body map[string]any, root, msg string, lookup func(string) *codegen.TaskDef) error {
	opts, _ := body["options"].(map[string]any)
	id, _ := opts["task_id"].(string)
	if id == "" {
		return fmt.Errorf("chord body has no task_id: %s", msg)
	}
	name, _ := body["task"].(string)
	a.log.Error("chord failed", "body", name, "id", id, "err", msg)
	err := a.storeResult(ctx, &driver.ResultDoc{Status: StateFailure, TaskID: id, DateDone: a.now(),
		Result: &driver.ExceptionInfo{Type: "ChordError", Message: []any{msg}, Module: "celery.exceptions"}})
	for _, eb := range asList(opts["link_error"]) {
		if e := a.applySignature(ctx, eb, []any{id}, root, id, nil, lookup); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// applySignature sends the call of a signature dict (Celery's
// signature(d).apply_async(prepend, chain=chain, parent_id=..., root_id=...)):
// prepend goes before its arguments unless it is immutable; chain, when not
// nil, replaces the chain in its options.
func (a *App) applySignature(ctx context.Context, sig any, prepend []any, root, parent string, chain []any, lookup func(string) *codegen.TaskDef) error {
	d, ok := sig.(map[string]any)
	if !ok {
		return fmt.Errorf("signature is a %T, not a map", sig)
	}
	opts, _ := d["options"].(map[string]any)
	x := extras{groupIndex: -1, chain: chain}
	if chain == nil {
		x.chain = asList(opts["chain"])
	}
	x.chord, _ = opts["chord"].(map[string]any)
	if g, _ := opts["group_id"].(string); g != "" {
		x.groupID = g
		if i, ok := wire.AnyToInt(opts["group_index"]); ok {
			x.groupIndex = int(i)
		}
	}
	if typ, _ := d["subtask_type"].(string); typ == "group" {
		return a.applyGroup(ctx, d, prepend, root, parent, lookup)
	}
	n, err := dictNode(d, prepend, lookup)
	if err != nil {
		return err
	}
	s := &canvasSender{app: a, rootID: root, parentID: parent}
	return s.send(ctx, freeze(n), x)
}

// applyGroup sends a group signature dict's members with prepend.
func (a *App) applyGroup(ctx context.Context, d map[string]any, prepend []any, root, parent string, lookup func(string) *codegen.TaskDef) error {
	kw, _ := d["kwargs"].(map[string]any)
	opts, _ := d["options"].(map[string]any)
	gid, _ := opts["task_id"].(string)
	if gid == "" {
		gid = driver.NewID()
	}
	tasks := asList(kw["tasks"])
	nodes := make([]*node, len(tasks))
	ids := make([]string, len(tasks))
	for i, t := range tasks {
		md, _ := t.(map[string]any)
		n, err := dictNode(md, prepend, lookup)
		if err != nil {
			return err
		}
		nodes[i] = freeze(n)
		ids[i] = resultID(nodes[i])
	}
	if err := a.saveGroup(ctx, gid, ids); err != nil {
		return err
	}
	s := &canvasSender{app: a, rootID: root, parentID: parent}
	for i, n := range nodes {
		if err := s.send(ctx, n, extras{groupID: gid, groupIndex: i}); err != nil {
			return err
		}
	}
	return nil
}

// dictNode turns a signature dict into a node: a task, or a chain or chord
// (subtask_type "chain", "chord") of them. prepend goes before the
// arguments of the task that receives the previous result: the task
// itself, a chain's first step, a chord's header members.
func dictNode(d map[string]any, prepend []any, lookup func(string) *codegen.TaskDef) (*node, error) {
	if d == nil {
		return nil, fmt.Errorf("signature is not a map")
	}
	kw, _ := d["kwargs"].(map[string]any)
	opts, _ := d["options"].(map[string]any)
	immutable, _ := d["immutable"].(bool)
	switch typ, _ := d["subtask_type"].(string); typ {
	case "chain":
		tasks := asList(kw["tasks"])
		if len(tasks) == 0 {
			return nil, fmt.Errorf("chain signature without tasks")
		}
		n := &node{kind: kindChain}
		for i, t := range tasks {
			td, _ := t.(map[string]any)
			var p []any
			if i == 0 {
				p = prepend
			}
			st, err := dictNode(td, p, lookup)
			if err != nil {
				return nil, err
			}
			n.steps = append(n.steps, st)
		}
		return n, nil
	case "chord":
		n := &node{kind: kindChord}
		header := kw["header"]
		if hd, ok := header.(map[string]any); ok { // a group signature
			hk, _ := hd["kwargs"].(map[string]any)
			header = hk["tasks"]
		}
		for _, t := range asList(header) {
			td, _ := t.(map[string]any)
			m, err := dictNode(td, prepend, lookup)
			if err != nil {
				return nil, err
			}
			n.header = append(n.header, m)
		}
		bd, _ := kw["body"].(map[string]any)
		body, err := dictNode(bd, nil, lookup)
		if err != nil {
			return nil, err
		}
		n.body = body
		return n, nil
	case "", "task":
	default:
		return nil, fmt.Errorf("signature of type %q is not supported in a workflow step", typ)
	}
	name, _ := d["task"].(string)
	if name == "" {
		return nil, fmt.Errorf("signature without a task name")
	}
	n := &node{kind: kindTask, name: name, immutable: immutable, kwargs: kw}
	if lookup != nil {
		n.def = lookup(name)
	}
	args, _ := d["args"].([]any)
	if !immutable && len(prepend) > 0 {
		n.args = append(append(make([]any, 0, len(prepend)+len(args)), prepend...), args...)
	} else {
		n.args = args
	}
	n.opts = dictOptions(opts)
	for _, l := range asList(opts["link"]) {
		ld, _ := l.(map[string]any)
		c, err := dictNode(ld, nil, lookup)
		if err != nil {
			return nil, err
		}
		n.links = append(n.links, c)
	}
	for _, l := range asList(opts["link_error"]) {
		ld, _ := l.(map[string]any)
		c, err := dictNode(ld, nil, lookup)
		if err != nil {
			return nil, err
		}
		n.errbacks = append(n.errbacks, c)
	}
	return n, nil
}

// dictOptions returns the options of a signature dict that taskgen sends
// with: task_id, queue, priority, countdown, eta, expires, headers.
func dictOptions(o map[string]any) []Option {
	var opts []Option
	if id, _ := o["task_id"].(string); id != "" {
		opts = append(opts, TaskID(id))
	}
	switch q := o["queue"].(type) {
	case string:
		if q != "" {
			opts = append(opts, Queue(q))
		}
	case map[string]any: // a kombu Queue, serialized
		if name, _ := q["name"].(string); name != "" {
			opts = append(opts, Queue(name))
		}
	}
	if p, ok := wire.AnyToInt(o["priority"]); ok && p >= 0 && p <= 255 {
		opts = append(opts, Priority(uint8(p)))
	}
	if c, ok := wire.AnyToFloat(o["countdown"]); ok && c > 0 {
		opts = append(opts, Countdown(time.Duration(c*float64(time.Second))))
	}
	if s, _ := o["eta"].(string); s != "" {
		if t, err := driver.ParseTime(s); err == nil {
			opts = append(opts, ETA(t))
		}
	}
	if s, _ := o["expires"].(string); s != "" {
		if t, err := driver.ParseTime(s); err == nil {
			opts = append(opts, Expires(t))
		}
	}
	if h, _ := o["headers"].(map[string]any); len(h) > 0 {
		clean := make(map[string]any, len(h))
		for k, v := range h {
			if !driver.IsKnownHeader(k) {
				clean[k] = v
			}
		}
		if len(clean) > 0 {
			opts = append(opts, Headers(clean))
		}
	}
	return opts
}
