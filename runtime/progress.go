package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// StateProgress is the state Progress stores: Celery's conventional custom
// state for self.update_state(state="PROGRESS", meta={...}). Like every
// custom state it is not ready: Get keeps waiting past it.
const StateProgress State = "PROGRESS"

// Errors of Progress and UpdateState.
var (
	// ErrNotInTask is returned by Progress and UpdateState given a context
	// that is not (derived from) the one a worker passed to a running task.
	ErrNotInTask = errors.New("taskgen: not inside a running task: pass the ctx the task function received (or one derived from it)")
	// ErrTaskFinished is returned by Progress and UpdateState once the task's
	// function has returned (from a goroutine it left running): the worker
	// stores the final state, which a late update must not replace.
	ErrTaskFinished = errors.New("taskgen: the task has returned; its final state is stored by the worker and no longer updated")
)

// progressMeta is the meta Progress stores, Celery's
// {"current": i, "total": n, "note": s} in that order.
type progressMeta struct {
	Current int    `json:"current"`
	Total   int    `json:"total"`
	Note    string `json:"note"`
}

// Progress records the running task's progress in the result backend, the
// Go counterpart of Celery's
//
//	self.update_state(state="PROGRESS", meta={"current": current, "total": total, "note": note})
//
// ctx must be the context the task function received (or derived from it).
// The stored document is Celery's: state PROGRESS, result
// {"current": current, "total": total, "note": note}, no date_done; a
// Python AsyncResult(id).state reads "PROGRESS" and .info the dict, and
// AsyncResult.Progress reads it in Go. Each call is one write (on Redis a
// SET and a PUBLISH to the task's waiters; on rpc:// one message to the
// caller's reply queue, which only the process that sent the task reads):
// call it every so many items, not for every one of a million. On rpc://
// a task whose message names no reply queue sends nothing and gets nil.
// The task may ignore the error; it is ErrNotInTask outside a task,
// ErrTaskFinished after the task returned, ErrNoBackend without a result
// backend, or the backend's.
func Progress(ctx context.Context, current, total int, note string) error {
	if total < 0 || current < 0 {
		return fmt.Errorf("taskgen: Progress(%d, %d): current and total must not be negative", current, total)
	}
	return updateState(ctx, StateProgress, progressMeta{Current: current, Total: total, Note: note})
}

// UpdateState stores a custom state and its meta for the running task, as
// Celery's Task.update_state(state=state, meta=meta) does: the document's
// status is state, its result is meta (encoded with the result serializer,
// as a task's return value is: maps, slices, structs by their json tags),
// date_done is null, and task_id, parent_id and group_id are the task's.
// Python reads it as AsyncResult(id).state and .info; Go as
// AsyncResult.Info. A custom state is not ready: Get keeps waiting until
// the task's final state.
//
// state must not be one the worker itself decides: PENDING, RETRY, SUCCESS,
// FAILURE, REVOKED (Celery would store a SUCCESS given to update_state,
// which then hides the real result; taskgen refuses it). Like Celery's, the
// update is stored even for a task with ignore_result. Errors as Progress's.
func UpdateState(ctx context.Context, state string, meta any) error {
	switch s := State(state); s {
	case "":
		return errors.New("taskgen: UpdateState: empty state name")
	case StatePending, StateRetry, StateSuccess, StateFailure, StateRevoked:
		return fmt.Errorf("taskgen: UpdateState(%q): the worker decides %s itself; use a state of your own (e.g. %q)", state, s, StateProgress)
	}
	return updateState(ctx, State(state), meta)
}

func updateState(ctx context.Context, state State, meta any) error {
	info, ok := TaskFromContext(ctx)
	if !ok || info.app == nil {
		return ErrNotInTask
	}
	if info.app.backend == nil {
		return fmt.Errorf("taskgen: task %s: store state %s: %w", info.ID, state, ErrNoBackend)
	}
	info.stateMu.Lock()
	defer info.stateMu.Unlock()
	if info.finished {
		return ErrTaskFinished
	}
	err := info.app.storeResult(ctx, &driver.ResultDoc{Status: state, Result: meta, TaskID: info.ID, ParentID: info.ParentID, GroupID: info.GroupID})
	if err != nil {
		return fmt.Errorf("taskgen: task %s: store state %s: %w", info.ID, state, err)
	}
	return nil
}

// finish makes later Progress and UpdateState calls fail with
// ErrTaskFinished; it waits for one in flight, so the worker's final
// document is stored after every update.
func (t *TaskInfo) finish() {
	t.stateMu.Lock()
	t.finished = true
	t.stateMu.Unlock()
}

// ResultInfo is a task's stored state and meta: Celery's AsyncResult.state
// and AsyncResult.info. The meta is the document's result field: a custom
// state's meta (UpdateState, Python's update_state), the progress dict of
// PROGRESS, the return value of SUCCESS, the exception document
// ({exc_type, exc_message, exc_module}) of FAILURE, RETRY and REVOKED, and
// nothing for PENDING.
type ResultInfo struct {
	State State
	doc   *driver.ResultDoc
}

// Decode decodes the meta into ptr: a pointer to the type the task stored
// (a struct by its json tags, a map, a slice), or *any for a generic value
// (maps as map[string]any, integers as int64). Without a meta (PENDING, or
// a null one) it leaves *ptr unchanged.
func (i ResultInfo) Decode(ptr any) error {
	if i.doc == nil {
		return nil
	}
	return i.doc.DecodeResult(ptr)
}

// Raw returns the meta as stored, in the app's result serializer (nil for
// PENDING).
func (i ResultInfo) Raw() []byte {
	if i.doc == nil {
		return nil
	}
	return i.doc.RawResult
}

// Info returns the task's current state and its meta (Celery's
// AsyncResult.state and .info) without waiting: PENDING with no meta when
// nothing is stored. On rpc:// it is the latest state this process's reply
// queue has received (a moment after the worker sent it); a process that
// did not send the task sees PENDING.
func (r *AsyncResult[R]) Info(ctx context.Context) (ResultInfo, error) {
	doc, err := r.app.loadResult(ctx, r.id)
	if err != nil {
		return ResultInfo{State: StatePending}, fmt.Errorf("taskgen: task %s: load state: %w", r.id, err)
	}
	if doc == nil {
		return ResultInfo{State: StatePending}, nil
	}
	return ResultInfo{State: doc.Status, doc: doc}, nil
}

// ProgressInfo is a task's progress as AsyncResult.Progress reads it.
type ProgressInfo struct {
	// State is the stored state: PROGRESS while the task reports progress,
	// PENDING before, SUCCESS, FAILURE... at the end.
	State State
	// Current, Total and Note are the meta's "current", "total" and "note"
	// (Progress's arguments, or a Python task's update_state meta) when the
	// state is PROGRESS or another custom state whose meta has them; zero
	// otherwise.
	Current, Total int
	Note           string
}

// Percent returns Current as a percentage of Total, between 0 and 100; 0
// when Total is 0; 100 once the state is SUCCESS.
func (p ProgressInfo) Percent() float64 {
	if p.State == StateSuccess {
		return 100
	}
	if p.Total <= 0 {
		return 0
	}
	return math.Max(0, math.Min(100, 100*float64(p.Current)/float64(p.Total)))
}

// Ready reports whether the task has reached its final state (SUCCESS,
// FAILURE or REVOKED): a poller stops there and calls Get.
func (p ProgressInfo) Ready() bool { return p.State.Ready() }

// Progress returns the task's latest progress without waiting (see
// ProgressInfo). A PROGRESS state whose meta is not a map with integer
// "current" and "total" (a Python task that stored something else) is an
// error that shows the meta.
func (r *AsyncResult[R]) Progress(ctx context.Context) (ProgressInfo, error) {
	info, err := r.Info(ctx)
	p := ProgressInfo{State: info.State}
	if err != nil || !isCustomState(info.State) {
		return p, err
	}
	var meta any
	if err := info.Decode(&meta); err != nil {
		return p, fmt.Errorf("taskgen: task %s: decode %s meta: %w", r.id, info.State, err)
	}
	m, _ := meta.(map[string]any)
	cur, okc := wire.AnyToInt(m["current"])
	tot, okt := wire.AnyToInt(m["total"])
	if !okc || !okt {
		if info.State == StateProgress {
			return p, fmt.Errorf("taskgen: task %s: PROGRESS meta %s has no integer current and total", r.id, wire.Repr(meta))
		}
		return p, nil
	}
	p.Current, p.Total = int(cur), int(tot)
	p.Note, _ = m["note"].(string)
	return p, nil
}

// isCustomState reports whether s is not one of Celery's own states.
func isCustomState(s State) bool {
	switch s {
	case StatePending, driver.StateReceived, StateStarted, StateSuccess, StateFailure, StateRevoked, driver.StateRejected, StateRetry, driver.StateIgnored:
		return false
	}
	return true
}
