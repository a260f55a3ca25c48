package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// Workflows (Celery's canvas). A [Signature] is a call ready to send: a
// task with every argument bound (Add.Sig(2, 3)), a chain, or a chord. A
// [Partial] is a call missing its first argument, which the previous
// step's result fills (Mul.Partial(4)). [Chain], [Group] and [Chord]
// combine them, and the Go compiler checks that the steps fit: a chain
// whose next step takes another type than the previous one returns does
// not compile.
//
// On the wire a workflow is Celery's: a chain is its first task with the
// others in the message's embed (reversed), a group's members carry the
// group id and their index, a chord's header members carry the body, and
// the result backend counts them (Celery's keys), so Python and Go
// workers run each other's steps.

// Signature is a call whose result is an R: one task with its arguments
// bound, a chain whose last step returns R, or a chord whose body does. It
// is a value: With, OnSuccess and OnError return changed copies, and one
// Signature may be sent many times (each Delay is a new workflow with new
// task ids).
type Signature[R any] struct{ n *node }

// Partial is a call of a task missing its first argument, of type A, which
// the previous step's result fills; the task returns R. It is the next
// step of a [Chain], the body of a [Chord], or a callback ([Signature.OnSuccess]).
type Partial[A, R any] struct{ n *node }

// Callback is a step that takes an A as its first argument: a
// [Partial][A, R] for any R. [Signature.OnSuccess] takes one, so that the
// callback's parameter type is checked against the result type.
type Callback[A any] interface {
	callbackNode() *node
	takes(A)
}

// Errback is what [Signature.OnError] takes: a [Signature] (called as is)
// or a [Partial] whose first parameter is a string (called with the id of
// the task that failed, as Celery calls its errbacks).
type Errback interface {
	errbackNode() (*node, error)
}

// GroupSignature is a group of calls that run in parallel, each returning
// a T ([Group]). Delay sends them all; [Chord] runs a body after them.
type GroupSignature[T any] struct {
	members []*node
	opts    []Option
}

type nodeKind uint8

const (
	kindTask nodeKind = iota
	kindChain
	kindChord
)

// node is one step of a workflow tree. Nodes are never changed once built:
// the methods that derive signatures copy them.
type node struct {
	kind      nodeKind
	name      string           // kindTask: the Celery task name
	def       *codegen.TaskDef // kindTask: nil for a by-name signature
	args      []any            // kindTask: bound arguments (after the first for a partial)
	kwargs    map[string]any   // kindTask: keyword arguments (signatures from Python)
	immutable bool             // kindTask: the previous result is not prepended
	opts      []Option
	links     []*node // on success: called with the result
	errbacks  []*node // on failure: called with the task id (unless immutable)
	steps     []*node // kindChain: first step, then partial tasks
	header    []*node // kindChord
	body      *node   // kindChord: a partial task
	err       error   // reported by Delay (arguments that did not encode)
	id        string  // kindTask: the task id, set by freeze
}

func (n *node) clone() *node {
	c := *n
	c.opts = slices.Clone(n.opts)
	c.links = slices.Clone(n.links)
	c.errbacks = slices.Clone(n.errbacks)
	c.steps = slices.Clone(n.steps)
	c.header = slices.Clone(n.header)
	return &c
}

// Sig returns the call of the stub's task with args, every argument bound
// (Celery's add.si(2, 3)); generated Sig methods call it.
func (s Stub[R]) Sig(args wire.Args) Signature[R] {
	vals, err := wire.CollectArgs(args, 0)
	return Signature[R]{&node{kind: kindTask, name: s.def.Name, def: s.def, args: vals, immutable: true, opts: slices.Clone(s.opts), err: err}}
}

// NewPartial returns the call of the stub's task with args but the first
// (whose value in args is ignored), which the previous step's result
// fills; A is the type of that first parameter. Generated Partial methods
// call it: Mul.Partial(4) is NewPartial[int64](Mul.Stub, &MulArgs{Y: 4}).
func NewPartial[A, R any](s Stub[R], args wire.Args) Partial[A, R] {
	vals, err := wire.CollectArgs(args, 1)
	return Partial[A, R]{&node{kind: kindTask, name: s.def.Name, def: s.def, args: vals, opts: slices.Clone(s.opts), err: err}}
}

// Named returns the call of the task called name with args, for tasks
// that have no Go stub (a Python task known by name only). The arguments
// are sent as they are (msgpack or JSON); R is the type the result is
// decoded into.
func Named[R any](name string, args ...any) Signature[R] {
	return Signature[R]{&node{kind: kindTask, name: name, args: slices.Clone(args), immutable: true}}
}

// NamedPartial is [Named] for a step missing its first argument, of type A.
func NamedPartial[A, R any](name string, args ...any) Partial[A, R] {
	return Partial[A, R]{&node{kind: kindTask, name: name, args: slices.Clone(args)}}
}

// Chain returns the workflow that runs first, then next with first's
// result as next's first argument (Celery's chain(add.s(2, 2), mul.s(4))).
// Longer chains feed a chain back in: Chain(Chain(a, b), c).
func Chain[A, B any](first Signature[A], next Partial[A, B]) Signature[B] {
	n := &node{kind: kindChain}
	if first.n.kind == kindChain {
		n.steps = slices.Clone(first.n.steps)
	} else {
		n.steps = []*node{first.n}
	}
	n.steps = append(n.steps, next.n)
	return Signature[B]{n}
}

// Group returns the calls sigs, to run in parallel (Celery's group).
func Group[T any](sigs ...Signature[T]) GroupSignature[T] {
	members := make([]*node, len(sigs))
	for i, s := range sigs {
		members[i] = s.n
	}
	return GroupSignature[T]{members: members}
}

// Chord returns the workflow that runs header's calls in parallel, then
// body with their results, in header order (Celery's chord). If a member
// fails, body does not run: it fails with Celery's ChordError and its
// errbacks are called.
func Chord[T, R any](header GroupSignature[T], body Partial[[]T, R]) Signature[R] {
	return Signature[R]{&node{kind: kindChord, header: slices.Clone(header.members), body: body.n, opts: slices.Clone(header.opts)}}
}

// With returns a copy of s with per-call options (queue, countdown,
// priority, ...). For a chain or a chord they apply to its first messages
// (Celery's chain.apply_async options), except WithApp, which picks the
// app of the whole workflow.
func (s Signature[R]) With(opts ...Option) Signature[R] {
	n := s.n.clone()
	n.opts = append(n.opts, opts...)
	return Signature[R]{n}
}

// OnSuccess returns a copy of s that, once it succeeded, calls next with
// its result (Celery's link). On a chain, next follows the last step.
func (s Signature[R]) OnSuccess(next Callback[R]) Signature[R] {
	return Signature[R]{withLink(s.n, next.callbackNode(), false)}
}

// OnError returns a copy of s that calls handler when a step of it fails
// for good (Celery's link_error): a Signature as is, a Partial with the
// failed task's id as its first argument. On a chain every step gets it;
// on a chord, the body.
func (s Signature[R]) OnError(handler Errback) Signature[R] {
	h, err := handler.errbackNode()
	n := withLink(s.n, h, true)
	if err != nil && n.err == nil {
		n = n.clone()
		n.err = err
	}
	return Signature[R]{n}
}

func withLink(n *node, l *node, errback bool) *node {
	c := n.clone()
	switch c.kind {
	case kindChain:
		if errback {
			for i, st := range c.steps {
				c.steps[i] = withLink(st, l, true)
			}
		} else {
			last := len(c.steps) - 1
			c.steps[last] = withLink(c.steps[last], l, false)
		}
	case kindChord:
		c.body = withLink(c.body, l, errback)
	default:
		if errback {
			c.errbacks = append(c.errbacks, l)
		} else {
			c.links = append(c.links, l)
		}
	}
	return c
}

// Delay sends the workflow and returns the handle of its result: the last
// step's for a chain, the body's for a chord.
func (s Signature[R]) Delay(ctx context.Context) (*AsyncResult[R], error) {
	app, err := appOf(s.n.opts)
	if err != nil {
		return nil, err
	}
	root := freeze(s.n)
	snd := &canvasSender{app: app}
	if err := snd.send(ctx, root, extras{groupIndex: -1}); err != nil {
		return nil, err
	}
	return &AsyncResult[R]{app: app, id: resultID(root)}, nil
}

// With returns a copy of g whose members are sent with opts too.
func (g GroupSignature[T]) With(opts ...Option) GroupSignature[T] {
	return GroupSignature[T]{members: slices.Clone(g.members), opts: append(slices.Clone(g.opts), opts...)}
}

// Delay sends every member, tagged with one group id and its index, and
// saves the group (Celery's GroupResult.save) when the result backend
// keeps groups.
func (g GroupSignature[T]) Delay(ctx context.Context) (*GroupResult[T], error) {
	app, err := appOf(g.opts)
	if err != nil {
		return nil, err
	}
	gid := newGroupID(g.opts)
	frozen := make([]*node, len(g.members))
	ids := make([]string, len(g.members))
	for i, m := range g.members {
		frozen[i] = freeze(withOpts(m, withoutTaskID(g.opts)))
		ids[i] = resultID(frozen[i])
	}
	if err := app.saveGroup(ctx, gid, ids); err != nil {
		return nil, err
	}
	snd := &canvasSender{app: app}
	for i, m := range frozen {
		if err := snd.send(ctx, m, extras{groupID: gid, groupIndex: i}); err != nil {
			return nil, err
		}
	}
	return newGroupResult[T](app, gid, ids), nil
}

// appOf returns the app chosen by a WithApp among opts, or the default.
func appOf(opts []Option) (*App, error) {
	var co callOptions
	for _, o := range opts {
		o.apply(&co)
	}
	if co.app != nil {
		return co.app, nil
	}
	if app := defaultApp.Load(); app != nil {
		return app, nil
	}
	return nil, ErrNoApp
}

// newGroupID returns the TaskID option among opts (a group's own id, as in
// Celery's group.apply_async(task_id=...)) or a new id.
func newGroupID(opts []Option) string {
	var co callOptions
	for _, o := range opts {
		o.apply(&co)
	}
	if co.taskID != "" {
		return co.taskID
	}
	return driver.NewID()
}

// splitTaskID returns the id a TaskID option among opts sets (the last
// one), and the other options.
func splitTaskID(opts []Option) (id string, rest []Option) {
	for _, o := range opts {
		var co callOptions
		o.apply(&co)
		if co.taskID != "" {
			id = co.taskID
			continue
		}
		rest = append(rest, o)
	}
	return id, rest
}

func withoutTaskID(opts []Option) []Option {
	_, rest := splitTaskID(opts)
	return rest
}

func withOpts(n *node, opts []Option) *node {
	if len(opts) == 0 {
		return n
	}
	c := n.clone()
	c.opts = append(slices.Clone(opts), c.opts...)
	return c
}

// callbackNode and takes make a Partial a Callback.
func (p Partial[A, R]) callbackNode() *node { return p.n }
func (p Partial[A, R]) takes(A)             {}

// errbackNode makes a Partial an Errback; its first parameter receives the
// failed task's id, so it must be a string.
func (p Partial[A, R]) errbackNode() (*node, error) {
	if reflect.TypeFor[A]().Kind() != reflect.String {
		return p.n, fmt.Errorf("taskgen: OnError(%s.Partial(...)): the first parameter receives the failed task's id and must be a string, not %s; use a Sig for a handler that takes no id", p.n.name, reflect.TypeFor[A]())
	}
	return p.n, nil
}

// errbackNode makes a Signature an Errback, called as is.
func (s Signature[R]) errbackNode() (*node, error) {
	if s.n.kind != kindTask {
		return s.n, errors.New("taskgen: OnError takes a task's Sig or Partial, not a chain or chord")
	}
	return s.n, nil
}

// With returns a copy of p with per-call options.
func (p Partial[A, R]) With(opts ...Option) Partial[A, R] {
	n := p.n.clone()
	n.opts = append(n.opts, opts...)
	return Partial[A, R]{n}
}

// String describes s, arguments in Go syntax: tasks.add(2, 3) for a call,
// a(…) | b(…) for a chain (Celery's notation), chord([…], body) for a
// chord. Arguments a step receives from the previous one are not shown.
func (s Signature[R]) String() string {
	var b strings.Builder
	s.n.describe(&b)
	return b.String()
}

func (n *node) describe(b *strings.Builder) {
	switch n.kind {
	case kindChain:
		for i, st := range n.steps {
			if i > 0 {
				b.WriteString(" | ")
			}
			st.describe(b)
		}
	case kindChord:
		b.WriteString("chord([")
		for i, m := range n.header {
			if i > 0 {
				b.WriteString(", ")
			}
			m.describe(b)
		}
		b.WriteString("], ")
		n.body.describe(b)
		b.WriteByte(')')
	default:
		b.WriteString(n.name)
		b.WriteByte('(')
		for i, a := range n.args {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%#v", a)
		}
		b.WriteByte(')')
	}
}
