package runtime

import (
	"context"
	"fmt"

	"github.com/taskgen/taskgen/runtime/driver"
)

// GroupResult is the handle of a sent group: its id and the results of its
// members, in order (Celery's GroupResult).
type GroupResult[T any] struct {
	app     *App
	id      string
	results []*AsyncResult[T]
}

func newGroupResult[T any](app *App, gid string, ids []string) *GroupResult[T] {
	rs := make([]*AsyncResult[T], len(ids))
	for i, id := range ids {
		rs[i] = &AsyncResult[T]{app: app, id: id}
	}
	return &GroupResult[T]{app: app, id: gid, results: rs}
}

// RestoreGroup returns the handle of group gid as its producer saved it
// (Go's Group(...).Delay or Python's GroupResult.save), read from app's
// result backend; the members' results are decoded as T.
func RestoreGroup[T any](ctx context.Context, app *App, gid string) (*GroupResult[T], error) {
	gb, ok := app.backend.(driver.GroupBackend)
	if !ok {
		return nil, fmt.Errorf("taskgen: restore group %s: the result backend keeps no groups", gid)
	}
	doc, err := gb.LoadGroup(ctx, gid)
	if err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, fmt.Errorf("taskgen: restore group %s: no such group in the result backend", gid)
	}
	_, ids, err := driver.DecodeGroupDoc(app.cfg.ResultSerializer, doc)
	if err != nil {
		return nil, err
	}
	return newGroupResult[T](app, gid, ids), nil
}

// ID returns the group id.
func (g *GroupResult[T]) ID() string { return g.id }

// Results returns the handles of the members, in order.
func (g *GroupResult[T]) Results() []*AsyncResult[T] { return g.results }

// Get waits for every member and returns their results in order. It
// returns the first member's error (a *TaskError for a failed member) as
// soon as it is known.
func (g *GroupResult[T]) Get(ctx context.Context) ([]T, error) {
	out := make([]T, len(g.results))
	for i, r := range g.results {
		v, err := r.Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("taskgen: group %s member %d: %w", g.id, i, err)
		}
		out[i] = v
	}
	return out, nil
}

// Completed returns how many members succeeded.
func (g *GroupResult[T]) Completed(ctx context.Context) (int, error) {
	n := 0
	for _, r := range g.results {
		st, err := r.State(ctx)
		if err != nil {
			return n, err
		}
		if st == StateSuccess {
			n++
		}
	}
	return n, nil
}

// Ready reports whether every member is done (succeeded, failed or
// revoked).
func (g *GroupResult[T]) Ready(ctx context.Context) (bool, error) {
	for _, r := range g.results {
		st, err := r.State(ctx)
		if err != nil {
			return false, err
		}
		if !st.Ready() {
			return false, nil
		}
	}
	return true, nil
}
