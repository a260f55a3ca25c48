package monitor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/codegen"
	"github.com/taskgen/taskgen/runtime/driver"
)

// joinArgs is what taskgen generates for func join(ctx, xs []string).
type joinArgs struct{ xs []string }

var joinArgsNames = codegen.ArgNames{{"xs"}}

func (*joinArgs) ArgNames() codegen.ArgNames                   { return joinArgsNames }
func (a *joinArgs) EncodeArgs(w codegen.ArgWriter) error       { return w.Value(a.xs) }
func (a *joinArgs) DecodeArg(_ int, r codegen.ArgReader) error { return r.Value(&a.xs) }

// joinDef joins a chord header's results with "+".
var joinDef = &codegen.TaskDef{Name: "report.join", Retry: codegen.DefaultRetryPolicy(),
	NewArgs: func() codegen.Args { return new(joinArgs) },
	Run: func(ctx context.Context, a codegen.Args) (any, error) {
		return strings.Join(a.(*joinArgs).xs, "+"), nil
	}}

func stepIDs(steps []WorkflowStep) []string {
	ids := make([]string, len(steps))
	for i, s := range steps {
		ids[i] = s.UUID
	}
	return ids
}

func indexSize(ix relIndex) int {
	n := 0
	for _, m := range ix {
		n += len(m)
	}
	return n
}

func intp(i int) *int { return &i }

func TestState_WorkflowRelations(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	recv := func(uuid, name, root, parent string, ts float64, extra ...any) {
		f := []any{"uuid", uuid, "name", name, "root_id", root, "parent_id", parent, "timestamp", ts}
		s.Event(ev("task-received", append(f, extra...)...))
	}
	// A chain a → b → c whose root a has no parent (null), then a chord
	// header g1 of two members following c, the events of the second
	// member (index 1) arriving and received first, its body j, and an
	// unrelated task.
	s.Event(ev("task-received", "uuid", "a", "name", "add", "root_id", "a", "parent_id", nil, "timestamp", 10.0))
	recv("b", "mul", "a", "a", 11)
	s.Event(ev("task-started", "uuid", "c", "timestamp", 12.5)) // before its task-received
	recv("c", "add", "a", "b", 12)
	recv("y", "tsum", "a", "c", 13, "group", "g1", "group_index", 1, "chord", "j")
	recv("x", "tsum", "a", "c", 14, "group", "g1", "group_index", 0, "chord", "j")
	recv("z", "other", "z", "", 15)

	for _, id := range []string{"a", "b", "c", "x", "y"} {
		steps, total, root := s.Workflow(id, 0)
		require.Equal(t, 5, total, id)
		require.Equal(t, "a", root)
		require.Equal(t, []string{"a", "b", "c", "x", "y"}, stepIDs(steps),
			"every step lists the workflow in received order, a group's members by index (%s)", id)
	}
	steps, _, _ := s.Workflow("c", 0)
	require.Equal(t, WorkflowStep{UUID: "c", Name: "add", State: StateStarted, ParentID: "b", Received: 12, Worker: "w1@host"}, steps[2])
	require.Equal(t, WorkflowStep{UUID: "x", Name: "tsum", State: StateReceived, ParentID: "c", Group: "g1", GroupIndex: intp(0),
		Received: 14, Worker: "w1@host"}, steps[3])
	steps, total, _ := s.Workflow("a", 2)
	require.Equal(t, 5, total)
	require.Equal(t, []string{"a", "b"}, stepIDs(steps), "limit")
	steps, total, root := s.Workflow("z", 0)
	require.Equal(t, 1, total)
	require.Equal(t, "z", root)
	require.Equal(t, []string{"z"}, stepIDs(steps))
	steps, total, _ = s.Workflow("nope", 0)
	require.Zero(t, total)
	require.Empty(t, steps)

	require.Equal(t, []string{"b"}, s.Children("a"))
	require.Equal(t, []string{"c"}, s.Children("b"))
	require.Equal(t, []string{"x", "y"}, s.Children("c"), "group order, not arrival order")
	require.Empty(t, s.Children("x"))

	task, _ := s.Task("x")
	require.Equal(t, "g1", task.Group)
	require.Equal(t, 0, task.GroupIndex)
	require.Equal(t, "j", task.Chord)
	require.Equal(t, "c", task.ParentID)
	require.Equal(t, "a", task.RootID)

	// The group, before its chord body is seen, then after.
	g, ok := s.Group("g1", 0)
	require.True(t, ok)
	require.Equal(t, "g1", g.ID)
	require.Equal(t, "a", g.Root)
	require.Equal(t, "c", g.Parent)
	require.Equal(t, 2, g.Total)
	require.Equal(t, []string{"x", "y"}, stepIDs(g.Members))
	require.Equal(t, "j", g.Chord)
	require.Nil(t, g.ChordBody)
	recv("j", "join", "a", "", 16)
	g, _ = s.Group("g1", 1)
	require.Equal(t, 2, g.Total)
	require.Equal(t, []string{"x"}, stepIDs(g.Members), "limit")
	require.Equal(t, &WorkflowStep{UUID: "j", Name: "join", State: StateReceived, ChordOf: "g1", Received: 16, Worker: "w1@host"}, g.ChordBody)
	steps, _, _ = s.Workflow("j", 0)
	require.Equal(t, []string{"a", "b", "c", "x", "y", "j"}, stepIDs(steps))
	require.Equal(t, "g1", steps[5].ChordOf)
	rel := s.relations("j", 0)
	require.Equal(t, "g1", rel.ChordOf)
	require.True(t, rel.RootKnown)
	require.False(t, rel.ParentKnown)
	rel = s.relations("y", 0)
	require.Equal(t, 2, rel.GroupSize)
	require.True(t, rel.ChordKnown)
	require.Equal(t, 6, rel.Total)
	_, ok = s.Group("g2", 0)
	require.False(t, ok)

	// Later events without the fields keep them; a changed field moves
	// the task between indexes; a group without an index has -1.
	s.Event(ev("task-succeeded", "uuid", "x", "result", "1", "timestamp", 17.0))
	task, _ = s.Task("x")
	require.Equal(t, "g1", task.Group)
	require.Equal(t, 0, task.GroupIndex)
	recv("x", "tsum", "z", "z", 14, "group", "g2")
	task, _ = s.Task("x")
	require.Equal(t, -1, task.GroupIndex)
	require.Equal(t, []string{"y"}, s.Children("c"))
	require.Equal(t, []string{"x"}, s.Children("z"))
	g, _ = s.Group("g1", 0)
	require.Equal(t, []string{"y"}, stepIDs(g.Members))
	g, _ = s.Group("g2", 0)
	require.Equal(t, []string{"x"}, stepIDs(g.Members))
	require.Nil(t, g.Members[0].GroupIndex)
	require.Equal(t, "j", g.Chord, "x still names its chord body")
	require.Equal(t, "z", g.Root)
	steps, _, _ = s.Workflow("z", 0)
	require.Equal(t, []string{"x", "z"}, stepIDs(steps))
}

func TestState_WorkflowRootWithoutRootID(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	// The root is known only from events without root_id (task-started),
	// its steps name it.
	s.Event(ev("task-started", "uuid", "r", "timestamp", 1.0))
	s.Event(ev("task-received", "uuid", "s2", "root_id", "r", "parent_id", "r", "timestamp", 2.0))
	for _, id := range []string{"r", "s2"} {
		steps, total, root := s.Workflow(id, 0)
		require.Equal(t, 2, total)
		require.Equal(t, "r", root)
		require.Equal(t, []string{"r", "s2"}, stepIDs(steps))
	}
	// A task that is its own parent is not its own child.
	s.Event(ev("task-received", "uuid", "self", "root_id", "self", "parent_id", "self", "timestamp", 3.0))
	require.Empty(t, s.Children("self"))
}

func TestState_WorkflowBadGroupIndex(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 0)
	for i, idx := range []any{-3, 1e300, "2", nil} {
		s.Event(ev("task-received", "uuid", fmt.Sprint(i), "group", "g", "group_index", idx, "timestamp", float64(i)))
		task, _ := s.Task(fmt.Sprint(i))
		require.Equal(t, -1, task.GroupIndex, "%v", idx)
	}
	g, _ := s.Group("g", 0)
	require.Equal(t, []string{"0", "1", "2", "3"}, stepIDs(g.Members), "received order")
}

func TestState_WorkflowIndexesBounded(t *testing.T) {
	t.Parallel()
	s := newTestState(newClock(), 10)
	// One long chain: every step's parent is the previous one.
	for i := range 100 {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("t%d", i-1)
		}
		s.Event(ev("task-received", "uuid", fmt.Sprintf("t%d", i), "root_id", "t0", "parent_id", parent,
			"group", fmt.Sprintf("g%d", i%3), "group_index", i, "chord", fmt.Sprintf("b%d", i%4), "timestamp", float64(i)))
		for _, ix := range []relIndex{s.byRoot, s.byParent, s.byGroup, s.byChord} {
			require.LessOrEqual(t, indexSize(ix), 10)
		}
	}
	require.Len(t, s.byRoot, 1)
	require.Len(t, s.byParent, 10, "only the parents of kept tasks")
	require.Len(t, s.byGroup, 3)
	require.Len(t, s.byChord, 4)
	steps, total, _ := s.Workflow("t99", 0)
	require.Equal(t, 10, total, "the evicted steps (and the evicted root) are gone")
	require.Equal(t, "t90", steps[0].UUID)
	require.Equal(t, "t99", steps[9].UUID)
	require.Equal(t, []string{"t90"}, s.Children("t89"), "a kept task whose parent was evicted")
	require.Empty(t, s.Children("t88"), "t89 was evicted: its entry went with it")
	require.Equal(t, []string{"t91"}, s.Children("t90"))
}

// TestPages_WorkflowOfARealChain runs a chain of two steps on a Go worker
// (memory://) and checks the relations in the JSON API and on the pages.
func TestPages_WorkflowOfARealChain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.worker("w1@test", 200*time.Millisecond)
	first, last := e.chain("ann@example.com")

	// /api/task/info of the last step.
	var info map[string]any
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/info/"+last, &info))
	require.Equal(t, first, info["parent_id"])
	require.Equal(t, first, info["parent"])
	require.Equal(t, first, info["root_id"])
	require.Nil(t, info["group"], "no group")
	require.Nil(t, info["chord"])
	require.Equal(t, []any{}, info["children"])
	require.NotContains(t, info, "workflow", "the steps are at /api/task/workflow")
	// ... of the first: its child.
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/info/"+first, &info))
	require.Equal(t, []any{last}, info["children"])
	require.Nil(t, info["parent_id"])
	// /api/tasks fills children too.
	var tasks map[string]map[string]any
	getJSON(t, e.url+"/api/tasks?taskname=signup.send_welcome_email", &tasks)
	require.Equal(t, []any{last}, tasks[first]["children"])
	require.Equal(t, []any{}, tasks[last]["children"])

	// /api/task/workflow of either step: both, in order.
	var wf map[string]any
	for _, id := range []string{first, last} {
		require.Equal(t, 200, getJSON(t, e.url+"/api/task/workflow/"+id, &wf))
		require.Equal(t, id, wf["uuid"])
		require.Equal(t, first, wf["root_id"])
		require.EqualValues(t, 2, wf["total"])
		steps := wf["steps"].([]any)
		require.Len(t, steps, 2)
		s0 := steps[0].(map[string]any)
		require.Equal(t, map[string]any{"uuid": first, "name": "signup.send_welcome_email", "state": "SUCCESS",
			"received": s0["received"], "worker": "w1@test"}, s0)
		require.IsType(t, float64(0), s0["received"])
		s1 := steps[1].(map[string]any)
		require.Equal(t, last, s1["uuid"])
		require.Equal(t, first, s1["parent_id"])
	}
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/workflow/"+last+"?limit=1", &wf))
	require.EqualValues(t, 2, wf["total"])
	require.Len(t, wf["steps"], 1)
	var jerr map[string]string
	require.Equal(t, 400, getJSON(t, e.url+"/api/task/workflow/"+last+"?limit=x", &jerr))
	require.Equal(t, 404, getJSON(t, e.url+"/api/task/workflow/nope", &jerr))
	require.Equal(t, "Unknown task 'nope'", jerr["error"])

	// The task page of the last step: parent link, root link, workflow.
	code, body := get(t, e.url+"/task/"+last)
	require.Equal(t, 200, code)
	require.Contains(t, body, `<dd class="mono" id="task-parent"><a href="/task/`+first+`">`+first+`</a></dd>`)
	require.Contains(t, body, `<dd class="mono" id="task-root"><a href="/task/`+first+`">`)
	require.Contains(t, body, `<h2>Workflow</h2>`)
	require.Contains(t, body, `<tr data-uuid="`+first+`">`)
	require.Contains(t, body, `<tr data-uuid="`+last+`" class="current">`)
	require.Less(t, strings.Index(body, `data-uuid="`+first+`"`), strings.Index(body, `data-uuid="`+last+`"`), "received order")
	require.Contains(t, body, `<a href="/api/task/workflow/`+last+`">workflow</a>`)
	// ... of the first: it is the root, with a child.
	_, body = get(t, e.url+"/task/"+first)
	require.Contains(t, body, first+` <span class="muted">(this task)</span></dd>`)
	require.Contains(t, body, `id="task-children"><a href="/task/`+last+`">`)
	require.Contains(t, body, `<h2>Workflow</h2>`)
	// A lone task has no Workflow section.
	lone := e.send("bob@example.com", 1)
	e.waitState(lone, StateSuccess)
	_, body = get(t, e.url+"/task/"+lone)
	require.NotContains(t, body, `<h2>Workflow</h2>`)
	require.NotContains(t, body, `id="task-group"`)
	require.NotContains(t, body, `/api/task/workflow/`)

	code, _ = get(t, e.url+"/group/nope")
	require.Equal(t, 404, code)
	require.Equal(t, 404, getJSON(t, e.url+"/api/group/info/nope", &jerr))
	require.Equal(t, "Unknown group 'nope'", jerr["error"])
}

// TestPages_WorkflowOfARealChord runs chord([send a, send b, send c],
// join) then send on a Go worker (memory://): the members name their
// group and chord body in their events, and the pages and the API link
// members, group, body and the last step.
func TestPages_WorkflowOfARealChord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.worker("w1@test", 200*time.Millisecond)
	wf := e.chord("a@x", "b@x", "c@x")
	m, j, last := wf.members, wf.body, wf.last

	// /api/task/info of a member.
	var info map[string]any
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/info/"+m[1], &info))
	require.Equal(t, wf.group, info["group"])
	require.EqualValues(t, 1, info["group_index"])
	require.Equal(t, j, info["chord"])
	require.Equal(t, m[0], info["root_id"], "a Go chord's root is its first member")

	// /api/group/info.
	var g map[string]any
	require.Equal(t, 200, getJSON(t, e.url+"/api/group/info/"+wf.group, &g))
	require.Equal(t, wf.group, g["id"])
	require.Equal(t, m[0], g["root_id"])
	require.Nil(t, g["parent_id"])
	require.EqualValues(t, 3, g["total"])
	require.Equal(t, j, g["chord"])
	members := g["members"].([]any)
	require.Len(t, members, 3)
	for i, x := range members {
		mm := x.(map[string]any)
		require.Equal(t, m[i], mm["uuid"])
		require.EqualValues(t, i, mm["group_index"])
		require.Equal(t, wf.group, mm["group"])
		require.Equal(t, "SUCCESS", mm["state"])
	}
	cb := g["chord_body"].(map[string]any)
	require.Equal(t, j, cb["uuid"])
	require.Equal(t, "report.join", cb["name"])
	require.Equal(t, "SUCCESS", cb["state"])
	require.Equal(t, wf.group, cb["chord_of"])
	require.Equal(t, 200, getJSON(t, e.url+"/api/group/info/"+wf.group+"?limit=2", &g))
	require.Len(t, g["members"], 2)
	require.EqualValues(t, 3, g["total"])

	// /api/task/workflow of the root: members by index, body, last step.
	var w map[string]any
	require.Equal(t, 200, getJSON(t, e.url+"/api/task/workflow/"+m[0], &w))
	var ids []string
	for _, s := range w["steps"].([]any) {
		ids = append(ids, s.(map[string]any)["uuid"].(string))
	}
	require.Equal(t, []string{m[0], m[1], m[2], j, last}, ids)

	// The group page.
	code, body := get(t, e.url+"/group/"+wf.group)
	require.Equal(t, 200, code)
	require.Contains(t, body, `<dd class="mono" id="group-chord-body"><a href="/task/`+j+`">`+j+`</a>`)
	require.Contains(t, body, `<dd class="mono" id="group-root"><a href="/task/`+m[0]+`">`)
	for _, id := range m {
		require.Contains(t, body, `<tr data-uuid="`+id+`">`)
	}
	require.Less(t, strings.Index(body, `data-uuid="`+m[0]+`"`), strings.Index(body, `data-uuid="`+m[1]+`"`))
	require.Less(t, strings.Index(body, `data-uuid="`+m[1]+`"`), strings.Index(body, `data-uuid="`+m[2]+`"`))
	require.Contains(t, body, `<table class="grid steps" id="group-chord">`)
	// A member's page: group and chord body.
	_, body = get(t, e.url+"/task/"+m[2])
	require.Contains(t, body, `<dd class="mono" id="task-group"><a href="/group/`+wf.group+`">`+wf.group+`</a> <span class="muted">(member 3, 3 known)</span></dd>`)
	require.Contains(t, body, `<dd class="mono" id="task-chord"><a href="/task/`+j+`">`+j+`</a></dd>`)
	// The body's page: the group it follows, its child.
	_, body = get(t, e.url+"/task/"+j)
	require.Contains(t, body, `<dd class="mono" id="task-chord-of"><a href="/group/`+wf.group+`">`)
	require.Contains(t, body, `id="task-children"><a href="/task/`+last+`">`)
	require.Contains(t, body, `<tr data-uuid="`+j+`" class="current">`)
}

// chain runs send_welcome_email(email, 1) then send_welcome_email(<its
// result>, 1) as a chain and waits for both; it returns the steps' ids.
func (e *env) chain(email string) (first, last string) {
	e.t.Helper()
	stub := runtime.NewStub[string](sendDef)
	first, last = driver.NewID(), driver.NewID()
	c := runtime.Chain(stub.Sig(&emailArgs{email: email, n: 1}).With(runtime.TaskID(first)), runtime.NewPartial[string](stub, &emailArgs{n: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.With(runtime.WithApp(e.app), runtime.TaskID(last)).Delay(ctx)
	require.NoError(e.t, err)
	require.Equal(e.t, last, res.ID())
	got, err := res.Get(ctx)
	require.NoError(e.t, err)
	require.Equal(e.t, "msg-msg-"+email, got)
	e.waitState(last, StateSuccess)
	e.waitState(first, StateSuccess)
	return first, last
}

// chordRun is the ids of a workflow chord(members, body) | last.
type chordRun struct {
	members           []string
	group, body, last string
}

// chord runs chord([send(email, 1) for each email], join) then
// send(<joined>, 1) and waits for every step; the group id is read from
// the monitor (the runtime picks it).
func (e *env) chord(emails ...string) chordRun {
	e.t.Helper()
	stub := runtime.NewStub[string](sendDef)
	r := chordRun{body: driver.NewID(), last: driver.NewID()}
	sigs := make([]runtime.Signature[string], len(emails))
	for i, em := range emails {
		id := driver.NewID()
		r.members = append(r.members, id)
		sigs[i] = stub.Sig(&emailArgs{email: em, n: 1}).With(runtime.TaskID(id))
	}
	join := runtime.NewPartial[[]string](runtime.NewStub[string](joinDef), &joinArgs{})
	c := runtime.Chain(runtime.Chord(runtime.Group(sigs...), join).With(runtime.TaskID(r.body)), runtime.NewPartial[string](stub, &emailArgs{n: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.With(runtime.WithApp(e.app), runtime.TaskID(r.last)).Delay(ctx)
	require.NoError(e.t, err)
	got, err := res.Get(ctx)
	require.NoError(e.t, err)
	want := make([]string, len(emails))
	for i, em := range emails {
		want[i] = "msg-" + em
	}
	require.Equal(e.t, "msg-"+strings.Join(want, "+"), got)
	for _, id := range append(append([]string{}, r.members...), r.body, r.last) {
		e.waitState(id, StateSuccess)
	}
	t, _ := e.mon.State().Task(r.members[0])
	require.NotEmpty(e.t, t.Group)
	r.group = t.Group
	return r
}
