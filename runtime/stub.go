package runtime

import (
	"context"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// Stub is the typed face of one task, embedded by the generated stub type
// (SendWelcomeEmail). R is the task's result type (struct{} for error-only
// tasks). A Stub is a value: With returns a copy.
type Stub[R any] struct {
	def  *codegen.TaskDef
	opts []Option
}

// NewStub returns the stub for def.
func NewStub[R any](def *codegen.TaskDef) Stub[R] { return Stub[R]{def: def} }

// Def returns the task definition.
func (s Stub[R]) Def() *codegen.TaskDef { return s.def }

// Name returns the Celery task name.
func (s Stub[R]) Name() string { return s.def.Name }

// Options returns the per-call options carried by s.
func (s Stub[R]) Options() []Option { return s.opts }

// With returns a copy of s carrying opts in addition to those it has
// (Celery's apply_async options).
func (s Stub[R]) With(opts ...Option) Stub[R] {
	all := make([]Option, 0, len(s.opts)+len(opts))
	all = append(all, s.opts...)
	all = append(all, opts...)
	return Stub[R]{def: s.def, opts: all}
}

// Send enqueues a call with already-built arguments; generated Delay methods
// call it. It returns once the broker accepted the message.
func (s Stub[R]) Send(ctx context.Context, args wire.Args) (*AsyncResult[R], error) {
	var co callOptions
	for _, o := range s.opts {
		o.apply(&co)
	}
	app := co.app
	if app == nil {
		app = defaultApp.Load()
		if app == nil {
			return nil, ErrNoApp
		}
	}
	id, err := app.send(ctx, s.def, &co, args)
	if err != nil {
		return nil, err
	}
	return &AsyncResult[R]{app: app, id: id}, nil
}
