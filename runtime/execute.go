package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

type outcome struct {
	value any
	err   error
	done  bool // the handler returned (not a hard time limit)
}

// execute runs one task and settles its message.
func (w *Worker) execute(taskCtx context.Context, abandon <-chan struct{}, j job) {
	m, def, d := j.m, j.def, j.d
	h := &m.Headers
	if m.ReplyTo != "" {
		// rpc:// sends every document of this task to the caller's queue.
		taskCtx = driver.WithReply(taskCtx, driver.Reply{To: m.ReplyTo, CorrelationID: m.CorrelationID})
	}
	now := w.app.now()
	if !h.Expires.IsZero() && now.After(h.Expires) {
		w.revokedTask(taskCtx, m, "expired", "task expired, revoked")
		w.afterRevoke(taskCtx, m, nil)
		w.ack(d, m)
		return
	}
	if w.ctl.isRevoked(h.ID) {
		w.revokedTask(taskCtx, m, "revoked", "task revoked, not run")
		w.afterRevoke(taskCtx, m, nil)
		w.ack(d, m)
		return
	}
	args := def.NewArgs()
	embed, err := wire.DecodeBody(m.ContentType, h.Compression, m.Body, args)
	if err != nil {
		reason := fmt.Sprintf("task %s: cannot decode arguments: %v", h.Task, err)
		w.failed.Add(1)
		w.deadLetter(d, m, reason)
		w.storeFailure(taskCtx, m, def, &driver.ExceptionInfo{Type: "DecodeError", Message: []any{reason}, Module: "kombu.exceptions"}, "")
		return
	}
	acked := false
	if !def.AcksLate {
		w.ack(d, m)
		acked = true
	}
	info := &TaskInfo{ID: h.ID, Name: h.Task, Retries: h.Retries, ETA: h.ETA, Expires: h.Expires, RootID: h.RootID,
		ParentID: h.ParentID, GroupID: h.Group, Queue: queueOf(m, def, w.app), Hostname: w.opts.Hostname,
		Headers: h.Extra, Redelivered: m.Redelivered, Received: j.received, def: def, args: args, app: w.app}

	w.active.Add(1)
	w.obs.TaskStarted(m)
	start := time.Now()
	info.Started = start
	out, abandoned := w.run(taskCtx, abandon, def, m, args, info)
	info.finish() // no Progress/UpdateState after this: the final document comes last
	runtime := time.Since(start)
	w.active.Add(-1)
	if n := w.perTask[def.Name]; n != nil {
		n.Add(1)
	}

	if abandoned {
		// The worker is stopping and the task did not finish in time: its
		// message goes back to the queue, never lost.
		w.log.Warn("task abandoned at shutdown, returned to the queue", "task", h.Task, "id", h.ID)
		defer info.settle("", nil)
		if acked {
			cp := *m
			cp.Redelivered = true
			if err := w.app.publishRaw(context.Background(), queueOf(m, def, w.app), &cp); err != nil {
				w.log.Error("re-publish of abandoned task failed", "id", h.ID, "err", err)
			}
		} else {
			w.requeue(d)
		}
		return
	}
	settleCtx := taskCtx
	if w.wrapped && out.done && info.runCtx != nil {
		// What the task's outcome sends (retry, next steps) carries what
		// the middleware put in the task's context (a span, say).
		settleCtx = valuesCtx{taskCtx, info.runCtx}
	}
	w.settle(settleCtx, m, def, info, out, runtime, w.workflowOf(m, embed))
	if !acked {
		w.ack(d, m)
	}
}

func (w *Worker) ack(d driver.Delivery, m *driver.Message) {
	if err := d.Ack(); err != nil {
		w.log.Error("ack failed", "task", m.Headers.Task, "id", m.Headers.ID, "err", err)
	}
}

// run calls the task with its time limits and panic recovery. abandoned is
// true when the worker gave up on it at shutdown.
func (w *Worker) run(taskCtx context.Context, abandon <-chan struct{}, def *codegen.TaskDef, m *driver.Message, args wire.Args, info *TaskInfo) (out outcome, abandoned bool) {
	h := &m.Headers
	hard, soft := def.TimeLimit, def.SoftTimeLimit
	if h.TimeLimit[0] > 0 {
		hard = time.Duration(h.TimeLimit[0] * float64(time.Second))
	}
	if h.TimeLimit[1] > 0 {
		soft = time.Duration(h.TimeLimit[1] * float64(time.Second))
	}
	ctx, cancel := context.WithCancelCause(withTaskInfo(taskCtx, info))
	defer cancel(nil)
	w.ctl.track(h.ID, &runningTask{info: info, m: m, cancel: cancel})
	defer w.ctl.untrack(h.ID)
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- outcome{err: &panicError{Value: r, Stack: string(debug.Stack())}}
			}
		}()
		v, err := w.handler(ctx, info)
		done <- outcome{value: v, err: err, done: true}
	}()
	var softC, hardC <-chan time.Time
	if soft > 0 {
		t := time.NewTimer(soft)
		defer t.Stop()
		softC = t.C
	}
	if hard > 0 {
		t := time.NewTimer(hard)
		defer t.Stop()
		hardC = t.C
	}
	for {
		select {
		case out = <-done:
			if errors.Is(context.Cause(ctx), ErrRevoked) {
				out = outcome{err: ErrRevoked}
			}
			return out, false
		case <-softC:
			w.softTimeLimited.Add(1)
			cancel(ErrSoftTimeLimitExceeded)
			softC = nil
		case <-hardC:
			w.timeLimited.Add(1)
			cancel(ErrTimeLimitExceeded)
			return outcome{err: celeryError("celery.exceptions", "TimeLimitExceeded", fmt.Errorf("%w: hard time limit (%s) exceeded", ErrTimeLimitExceeded, hard))}, false
		case <-abandon:
			return outcome{}, true
		}
	}
}

// settle records the outcome of a run: result, retry or failure.
// wf is the workflow the message belongs to (nil for most messages).
func (w *Worker) settle(ctx context.Context, m *driver.Message, def *codegen.TaskDef, info *TaskInfo, out outcome, runtime time.Duration, wf *workflow) {
	h := &m.Headers
	if out.err == nil {
		w.succeeded.Add(1)
		w.obs.TaskSucceeded(m, out.value, runtime)
		if w.log.Enabled(ctx, slog.LevelInfo) { // Repr formats the result: only when logged
			w.log.Info("task succeeded", "task", h.Task, "id", h.ID, "runtime", runtime.Round(time.Microsecond), "result", wire.Repr(out.value))
		}
		if wf != nil {
			w.afterSuccess(ctx, m, wf, out.value)
		}
		w.releaseUnique(ctx, m) // before the result: once Get returns, a new call is accepted
		if !def.IgnoreResult && !h.IgnoreResult {
			w.store(ctx, &driver.ResultDoc{Status: StateSuccess, Result: out.value, TaskID: h.ID, DateDone: w.app.now(), ParentID: h.ParentID, GroupID: h.Group})
		}
		w.chordPart(ctx, m, wf, StateSuccess, out.value)
		info.settle(StateSuccess, nil)
		return
	}
	err := out.err
	if errors.Is(err, ErrRevoked) {
		w.revokedTask(ctx, m, "terminated", "task terminated by revoke")
		w.afterRevoke(ctx, m, wf)
		info.settle(StateRevoked, err)
		return
	}
	var re *RetryError
	explicit := errors.As(err, &re)
	if explicit || def.Retry.ShouldAutoretry(err) {
		if w.retry(ctx, m, def, info, err, re) {
			info.settle(StateRetry, err)
			return
		}
		if explicit && re.Err != nil {
			err = re.Err
		} else if explicit {
			err = celeryError("celery.exceptions", "MaxRetriesExceededError", fmt.Errorf("can't retry %s[%s]: max retries exceeded", h.Task, h.ID))
		}
	}
	w.failed.Add(1)
	tb := ""
	var pe *panicError
	if errors.As(err, &pe) {
		tb = pe.Stack
	}
	w.log.Error("task failed", "task", h.Task, "id", h.ID, "runtime", runtime.Round(time.Microsecond), "err", err)
	exc := exceptionFromError(err)
	w.obs.TaskFailed(m, exc, tb)
	if hk := w.app.cfg.Hooks; hk != nil && hk.Failure != nil {
		hk.Failure(ctx, info, err)
	}
	w.releaseUnique(ctx, m)
	w.storeFailure(ctx, m, def, exc, tb)
	if wf != nil {
		w.chordPart(ctx, m, wf, StateFailure, exc)
		w.afterFailure(ctx, m, wf)
	}
	info.settle(StateFailure, err)
}

// retry re-publishes the task with retries+1 and a countdown. It returns false
// when the retries are exhausted or the re-publish failed.
func (w *Worker) retry(ctx context.Context, m *driver.Message, def *codegen.TaskDef, info *TaskInfo, cause error, re *RetryError) bool {
	h := &m.Headers
	max := def.Retry.MaxRetries
	if re != nil && re.MaxRetries != nil {
		max = *re.MaxRetries
	}
	if codegen.Exhausted(h.Retries, max) {
		w.log.Warn("task retries exhausted", "task", h.Task, "id", h.ID, "retries", h.Retries, "max_retries", max)
		return false
	}
	var countdown time.Duration
	if re != nil && re.HasCount {
		countdown = re.Countdown
	} else {
		countdown = def.Retry.Countdown(h.Retries, w.opts.Rand)
	}
	now := w.app.now()
	eta := now.Add(countdown)
	nm := *m
	nm.Redelivered = false
	nm.Headers.Retries = h.Retries + 1
	nm.Headers.ETA = eta
	if nm.Headers.ParentID == "" {
		nm.Headers.ParentID = h.ID
	}
	queue := queueOf(m, def, w.app)
	pctx := ctx
	if _, ok := w.app.broker.(driver.Delayer); ok && countdown > w.opts.DelayHorizon {
		pctx = context.WithValue(ctx, deferKey{}, eta) // parked in the broker until its ETA
	}
	err := w.app.publish(pctx, queue, &nm)
	if err != nil {
		w.log.Error("retry could not be published", "task", h.Task, "id", h.ID, "err", err)
		return false
	}
	w.retried.Add(1)
	cause0 := cause
	if re != nil && re.Err != nil {
		cause0 = re.Err
	}
	w.log.Warn("task retry", "task", h.Task, "id", h.ID, "retry", nm.Headers.Retries, "max_retries", max, "countdown", countdown.Round(time.Millisecond), "err", cause0)
	excInfo := exceptionFromError(cause0)
	w.obs.TaskRetried(m, excInfo, "")
	if hk := w.app.cfg.Hooks; hk != nil && hk.Retry != nil {
		hk.Retry(ctx, info, cause0, countdown)
	}
	w.store(ctx, &driver.ResultDoc{Status: StateRetry, Result: excInfo, TaskID: h.ID, ParentID: nm.Headers.ParentID,
		Children: []any{[]any{[]any{h.ID, nil}, nil}}})
	return true
}

// revokedTask records a task that was not run or was stopped: why is
// "expired", "revoked" (skipped) or "terminated", as the REVOKED document's
// TaskRevokedError message and the task-revoked event's flags say.
func (w *Worker) revokedTask(ctx context.Context, m *driver.Message, why, logMsg string) {
	h := &m.Headers
	w.revoked.Add(1)
	w.obs.TaskRevoked(m, why == "expired", why == "terminated")
	w.log.Info(logMsg, "task", h.Task, "id", h.ID)
	w.releaseUnique(ctx, m)
	w.store(ctx, &driver.ResultDoc{Status: StateRevoked, TaskID: h.ID, DateDone: w.app.now(), ParentID: h.ParentID,
		Result: &driver.ExceptionInfo{Type: "TaskRevokedError", Message: []any{why}, Module: "celery.exceptions"}})
}

func (w *Worker) storeFailure(ctx context.Context, m *driver.Message, def *codegen.TaskDef, exc *driver.ExceptionInfo, tb string) {
	if def != nil && def.IgnoreResult {
		return
	}
	w.store(ctx, &driver.ResultDoc{Status: StateFailure, Result: exc, Traceback: tb, TaskID: m.Headers.ID, DateDone: w.app.now(), ParentID: m.Headers.ParentID, GroupID: m.Headers.Group})
}

func (w *Worker) store(ctx context.Context, doc *driver.ResultDoc) {
	if err := w.app.storeResult(ctx, doc); err != nil {
		w.log.Error("storing result failed", "id", doc.TaskID, "state", doc.Status, "err", err)
	}
}

// rateWait reserves the next start slot of def under its rate limit (a token
// bucket of capacity one, per worker and task, as in Celery; the rate is
// the task's //task:rate_limit or the one the rate_limit command set) and
// returns how long the task must wait for it.
func (w *Worker) rateWait(def *codegen.TaskDef) time.Duration {
	interval, limited := w.ctl.rateInterval(def)
	if !limited {
		return 0
	}
	now := time.Now()
	w.limitMu.Lock()
	defer w.limitMu.Unlock()
	if w.limiters == nil {
		w.limiters = map[string]time.Time{}
	}
	next := w.limiters[def.Name]
	if next.Before(now) {
		next = now
	}
	w.limiters[def.Name] = next.Add(interval)
	return next.Sub(now)
}
