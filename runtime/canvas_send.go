package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// freeze returns a copy of the tree n with a task id on every task (Celery's
// freeze): the ids of later steps and of the result are known before the
// first message is sent.
func freeze(n *node) *node {
	c := n.clone()
	switch c.kind {
	case kindTask:
		var co callOptions
		for _, o := range c.opts {
			o.apply(&co)
		}
		c.id = co.taskID
		if c.id == "" {
			c.id = driver.NewID()
		}
	case kindChain:
		// A chain's TaskID is its result's: the last step's id (Celery's
		// chain.apply_async(task_id=...)).
		if id, _ := splitTaskID(c.opts); id != "" {
			last := len(c.steps) - 1
			c.steps[last] = withOpts(c.steps[last], []Option{TaskID(id)})
		}
		for i, st := range c.steps {
			c.steps[i] = freeze(st)
		}
	case kindChord:
		// A chord's TaskID is its body's.
		if id, _ := splitTaskID(c.opts); id != "" {
			c.body = withOpts(c.body, []Option{TaskID(id)})
		}
		for i, m := range c.header {
			c.header[i] = freeze(m)
		}
		c.body = freeze(c.body)
	}
	for i, l := range c.links {
		c.links[i] = freeze(l)
	}
	for i, l := range c.errbacks {
		c.errbacks[i] = freeze(l)
	}
	return c
}

// resultID returns the id of the task whose result is the result of n.
func resultID(n *node) string {
	switch n.kind {
	case kindChain:
		return resultID(n.steps[len(n.steps)-1])
	case kindChord:
		return n.body.id
	}
	return n.id
}

// nodeErr returns the first construction error in the tree n.
func nodeErr(n *node) error {
	if n.err != nil {
		return n.err
	}
	for _, l := range [][]*node{n.steps, n.header, n.links, n.errbacks, {n.body}} {
		for _, c := range l {
			if c != nil {
				if err := nodeErr(c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// extras are what the enclosing workflow adds to a step's messages.
type extras struct {
	groupID    string
	groupIndex int            // -1: none
	chord      map[string]any // the chord body, for a chord header member
	chain      []any          // the rest of the chain, reversed
}

// canvasSender sends the messages of one workflow.
type canvasSender struct {
	app    *App
	rootID string // the first message's id: every message's root_id
	// parentID is the id of the task whose result a message follows, for
	// messages a worker sends (callbacks, the next step).
	parentID string
}

// send sends the first messages of n.
func (s *canvasSender) send(ctx context.Context, n *node, x extras) error {
	if err := nodeErr(n); err != nil {
		return err
	}
	switch n.kind {
	case kindChain:
		first, rest := n.steps[0], n.steps[1:]
		chain := make([]any, 0, len(rest)+len(x.chain))
		for i := len(rest) - 1; i >= 0; i-- {
			var sx *extras
			if i == len(rest)-1 {
				sx = &x // the group and chord of the chain go with its last step
			}
			chain = append(chain, s.dict(rest[i], sx))
		}
		first = withOpts(first, withoutTaskID(n.opts))
		if len(rest) == 0 {
			return s.send(ctx, first, x)
		}
		return s.send(ctx, first, extras{groupIndex: -1, chain: append(chain, x.chain...)})
	case kindChord:
		if x.groupID != "" {
			return fmt.Errorf("taskgen: a chord inside a group or another chord's header is not supported; chain the chords instead")
		}
		gb, ok := s.app.backend.(driver.GroupBackend)
		if !ok {
			return fmt.Errorf("taskgen: a chord needs a result backend that counts its members (redis:// or memory://), not %T", s.app.backend)
		}
		gid := driver.NewID()
		body := s.dict(n.body, &extras{groupIndex: -1, chain: x.chain})
		if err := gb.SetChordSize(ctx, gid, len(n.header), s.app.resultTTL()); err != nil {
			return err
		}
		if len(n.header) == 0 {
			return s.app.applySignature(ctx, body, []any{[]any{}}, s.rootOr(n.body.id), s.parentID, nil, nil)
		}
		for i, m := range n.header {
			mx := extras{groupID: gid, groupIndex: i, chord: body}
			if m.kind == kindTask {
				m = withOpts(m, withoutTaskID(n.opts))
			}
			if err := s.send(ctx, m, mx); err != nil {
				return err
			}
		}
		return nil
	}
	return s.publish(ctx, n, x)
}

func (s *canvasSender) rootOr(id string) string {
	if s.rootID == "" {
		s.rootID = id
	}
	return s.rootID
}

// publish sends the message of task n.
func (s *canvasSender) publish(ctx context.Context, n *node, x extras) error {
	a := s.app
	co := callOptions{}
	for _, o := range n.opts {
		o.apply(&co)
	}
	co.taskID = n.id
	co.rootID = s.rootOr(n.id)
	co.parentID = s.parentID
	def := n.def
	if def == nil {
		def = &codegen.TaskDef{Name: n.name}
	}
	wc := &workflowCall{args: n.args, kwargs: n.kwargs, embed: s.embed(n, x)}
	if x.groupID != "" {
		wc.group = x.groupID
		i := x.groupIndex
		wc.groupIndex = &i
	}
	m, err := a.newWorkflowMessage(def, &co, nil, wc)
	if err != nil {
		return err
	}
	return a.publish(ctx, a.queueFor(def, &co), m)
}

// embed returns the embed of task n's message, or nil when it is empty.
func (s *canvasSender) embed(n *node, x extras) map[string]any {
	if len(n.links) == 0 && len(n.errbacks) == 0 && len(x.chain) == 0 && x.chord == nil {
		return nil
	}
	e := map[string]any{"callbacks": s.dicts(n.links), "errbacks": s.dicts(n.errbacks), "chain": nil, "chord": nil}
	if len(x.chain) > 0 {
		e["chain"] = x.chain
	}
	if x.chord != nil {
		e["chord"] = x.chord
	}
	return e
}

func (s *canvasSender) dicts(ns []*node) any {
	if len(ns) == 0 {
		return nil
	}
	out := make([]any, len(ns))
	for i, n := range ns {
		out[i] = s.dict(n, nil)
	}
	return out
}

// dict returns task n as Celery's signature dict: {task, args, kwargs,
// options, subtask_type, immutable, chord_size}. x, when set, adds the
// group and chord of an enclosing workflow to its options.
func (s *canvasSender) dict(n *node, x *extras) map[string]any {
	switch n.kind {
	case kindChain: // Celery's celery.chain signature: the steps in order
		steps := make([]any, len(n.steps))
		for i, st := range n.steps {
			var sx *extras
			if i == len(n.steps)-1 {
				sx = x
			}
			steps[i] = s.dict(st, sx)
		}
		return map[string]any{"task": "celery.chain", "args": []any{}, "kwargs": map[string]any{"tasks": steps},
			"options": map[string]any{}, "subtask_type": "chain", "immutable": false, "chord_size": nil}
	case kindChord: // Celery's celery.chord signature
		header := make([]any, len(n.header))
		for i, m := range n.header {
			header[i] = s.dict(m, nil)
		}
		group := map[string]any{"task": "celery.group", "args": []any{}, "kwargs": map[string]any{"tasks": header},
			"options": map[string]any{}, "subtask_type": "group", "immutable": false, "chord_size": nil}
		return map[string]any{"task": "celery.chord", "args": []any{}, "kwargs": map[string]any{"header": group, "body": s.dict(n.body, x), "kwargs": map[string]any{}},
			"options": map[string]any{}, "subtask_type": "chord", "immutable": false, "chord_size": nil}
	}
	var co callOptions
	for _, o := range n.opts {
		o.apply(&co)
	}
	opts := map[string]any{"task_id": n.id}
	switch {
	case co.queue != "":
		opts["queue"] = co.queue
	case n.def != nil && n.def.Queue != "":
		// The worker that sends this step (Go or Python) may not know the
		// task's queue: name it.
		opts["queue"] = n.def.Queue
	}
	if co.priority != nil {
		opts["priority"] = int64(*co.priority)
	}
	if co.countdown > 0 {
		opts["countdown"] = co.countdown.Seconds()
	}
	if !co.eta.IsZero() {
		opts["eta"] = driver.FormatTime(co.eta)
	}
	if !co.expires.IsZero() {
		opts["expires"] = driver.FormatTime(co.expires)
	}
	if len(co.headers) > 0 {
		opts["headers"] = co.headers
	}
	if len(n.links) > 0 {
		opts["link"] = s.dicts(n.links)
	}
	if len(n.errbacks) > 0 {
		opts["link_error"] = s.dicts(n.errbacks)
	}
	if x != nil {
		if x.groupID != "" {
			opts["group_id"] = x.groupID
			opts["group_index"] = int64(x.groupIndex)
		}
		if x.chord != nil {
			opts["chord"] = x.chord
		}
		if len(x.chain) > 0 {
			opts["chain"] = x.chain
		}
	}
	args := n.args
	if args == nil {
		args = []any{}
	}
	kwargs := n.kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	return map[string]any{
		"task": n.name, "args": args, "kwargs": kwargs, "options": opts,
		"subtask_type": nil, "immutable": n.immutable, "chord_size": nil,
	}
}

// resultTTL is the expiry of results and workflow state.
func (a *App) resultTTL() time.Duration {
	return max(a.cfg.ResultExpires, 0)
}

// saveGroup stores the GroupResult of group gid with members ids in
// Celery's format, {"result": [[gid, null], [[[id, null], null], ...]]},
// when the backend keeps groups.
func (a *App) saveGroup(ctx context.Context, gid string, ids []string) error {
	gb, ok := a.backend.(driver.GroupBackend)
	if !ok {
		return nil
	}
	doc, err := driver.EncodeGroupDoc(a.cfg.ResultSerializer, gid, ids)
	if err != nil {
		return err
	}
	if err := gb.SaveGroup(ctx, gid, doc, a.resultTTL()); err != nil {
		return fmt.Errorf("taskgen: save group %s: %w", gid, err)
	}
	return nil
}
