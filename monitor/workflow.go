package monitor

import (
	"cmp"
	"slices"
)

// Workflows (Celery's canvas). Every message of a workflow step carries
// root_id (the workflow's first task) and parent_id (the task whose result
// it follows), which task-received and task-sent events repeat. Group
// membership is not in Celery's events: Go workers add "group" and
// "group_index" to a group member's task-received, and "chord", the id of
// the chord body, to a chord header member's; Task.Group and Task.Chord
// stay empty for Python workers' tasks. The state indexes the kept tasks
// by root, parent, group and chord body; an evicted task leaves every
// index, so no index holds more than MaxTasks entries.

// relIndex maps an id (parent, root, group or chord body) to the kept
// tasks that name it, by uuid.
type relIndex map[string]map[string]*Task

func (ix relIndex) add(key string, t *Task) {
	if key == "" {
		return
	}
	m := ix[key]
	if m == nil {
		m = map[string]*Task{}
		ix[key] = m
	}
	m[t.UUID] = t
}

func (ix relIndex) remove(key string, t *Task) {
	if key == "" {
		return
	}
	if m := ix[key]; m != nil {
		delete(m, t.UUID)
		if len(m) == 0 {
			delete(ix, key)
		}
	}
}

// move reindexes t from key old to key new.
func (ix relIndex) move(old, new string, t *Task) {
	if old != new {
		ix.remove(old, t)
		ix.add(new, t)
	}
}

// relations are the ids a task's events name.
type relations struct {
	root, parent, group, chord string
}

func (t *Task) relations() relations {
	return relations{root: t.RootID, parent: t.ParentID, group: t.Group, chord: t.Chord}
}

// setRelationsLocked sets t's root, parent, group and chord ids, keeping
// the indexes in step.
func (s *State) setRelationsLocked(t *Task, r relations) {
	s.byRoot.move(t.RootID, r.root, t)
	s.byParent.move(t.ParentID, r.parent, t)
	s.byGroup.move(t.Group, r.group, t)
	s.byChord.move(t.Chord, r.chord, t)
	t.RootID, t.ParentID, t.Group, t.Chord = r.root, r.parent, r.group, r.chord
}

// unindexLocked removes an evicted task from the indexes.
func (s *State) unindexLocked(t *Task) {
	s.byRoot.remove(t.RootID, t)
	s.byParent.remove(t.ParentID, t)
	s.byGroup.remove(t.Group, t)
	s.byChord.remove(t.Chord, t)
}

// receivedKey is when a task was received, else sent, else first seen in an
// event: the order workflow steps are listed in.
func (t *Task) receivedKey() float64 {
	switch {
	case t.Received != 0:
		return t.Received
	case t.Sent != 0:
		return t.Sent
	case len(t.Timeline) > 0:
		return t.Timeline[0].Timestamp
	}
	return 0
}

// sortReceived orders tasks by receivedKey, then by when the monitor first
// saw them; then the members of each group among them trade places so
// that they follow their group_index (members run in parallel: the order
// they were received in says nothing).
func sortReceived(ts []*Task) {
	slices.SortFunc(ts, func(a, b *Task) int {
		if c := cmp.Compare(a.receivedKey(), b.receivedKey()); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	var slots map[string][]int // group → positions of its members in ts
	for i, t := range ts {
		if t.Group != "" && t.GroupIndex >= 0 {
			if slots == nil {
				slots = map[string][]int{}
			}
			slots[t.Group] = append(slots[t.Group], i)
		}
	}
	for _, pos := range slots {
		if len(pos) < 2 {
			continue
		}
		members := make([]*Task, len(pos))
		for j, p := range pos {
			members[j] = ts[p]
		}
		slices.SortStableFunc(members, func(a, b *Task) int { return cmp.Compare(a.GroupIndex, b.GroupIndex) })
		for j, p := range pos {
			ts[p] = members[j]
		}
	}
}

// membersLocked returns the tasks of ix[key] (plus the task extra, when
// kept and not among them) in workflow order (sortReceived).
func (s *State) membersLocked(ix relIndex, key string, extra string) []*Task {
	m := ix[key]
	ts := make([]*Task, 0, len(m)+1)
	for _, t := range m {
		ts = append(ts, t)
	}
	if t := s.tasks[extra]; t != nil && extra != "" && m[extra] == nil {
		ts = append(ts, t)
	}
	sortReceived(ts)
	return ts
}

// Children returns the ids of the kept tasks whose parent is uuid, in
// workflow order.
func (s *State) Children(uuid string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.childrenLocked(uuid)
}

func (s *State) childrenLocked(uuid string) []string {
	var ids []string
	for _, t := range s.membersLocked(s.byParent, uuid, "") {
		if t.UUID != uuid {
			ids = append(ids, t.UUID)
		}
	}
	return ids
}

// chordOfLocked returns the group whose chord body uuid is, as its header
// members' events say, or "".
func (s *State) chordOfLocked(uuid string) string {
	var gid string
	for _, t := range s.byChord[uuid] {
		if t.Group != "" && (gid == "" || t.Group < gid) {
			gid = t.Group // the smallest, for a stable answer
		}
	}
	return gid
}

// WorkflowStep is one task of a workflow or group as the pages and the
// JSON API list it.
type WorkflowStep struct {
	UUID       string  `json:"uuid"`                  // task id
	Name       string  `json:"name"`                  // task name, "" if not yet known
	State      string  `json:"state"`                 // one of States
	ParentID   string  `json:"parent_id,omitempty"`   // parent_id, "" for a first step
	Group      string  `json:"group,omitempty"`       // the group it is a member of
	GroupIndex *int    `json:"group_index,omitempty"` // its position in Group, when given
	ChordOf    string  `json:"chord_of,omitempty"`    // the group whose chord body it is
	Received   float64 `json:"received,omitempty"`    // task-received time, 0 if not seen
	Worker     string  `json:"worker,omitempty"`      // nodename of the worker
}

func (s *State) stepLocked(t *Task) WorkflowStep {
	st := WorkflowStep{UUID: t.UUID, Name: t.Name, State: t.State, ParentID: t.ParentID, Group: t.Group,
		ChordOf: s.chordOfLocked(t.UUID), Received: t.Received, Worker: t.Worker}
	if t.Group != "" && t.GroupIndex >= 0 {
		i := t.GroupIndex
		st.GroupIndex = &i
	}
	return st
}

// stepsLocked returns the first limit (all when limit ≤ 0) of ts as steps.
func (s *State) stepsLocked(ts []*Task, limit int) []WorkflowStep {
	if limit > 0 && len(ts) > limit {
		ts = ts[:limit]
	}
	steps := make([]WorkflowStep, len(ts))
	for i, t := range ts {
		steps[i] = s.stepLocked(t)
	}
	return steps
}

// Workflow returns the kept tasks of the workflow task uuid belongs to —
// those whose root_id is uuid's root (uuid itself when it has none), and
// the root task itself — in received order, a group's members by their
// index, at most limit of them (limit ≤ 0: all), with the number of tasks
// kept and the root's id. An unknown uuid has none.
func (s *State) Workflow(uuid string, limit int) (steps []WorkflowStep, total int, root string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tasks[uuid]
	if t == nil {
		return nil, 0, ""
	}
	root = cmp.Or(t.RootID, t.UUID)
	ts := s.membersLocked(s.byRoot, root, root)
	return s.stepsLocked(ts, limit), len(ts), root
}

// GroupView is what the monitor knows of one group: its kept members and,
// for a chord, the body.
type GroupView struct {
	ID string
	// Root is the members' root_id (the workflow's first task) and Parent
	// their parent_id (the task whose result the group follows), when the
	// members agree on one.
	Root, Parent string
	Members      []WorkflowStep // by group index, then received order
	Total        int            // members kept (Members may be the first of them)
	// Chord is the id of the chord body, "" for a plain group; ChordBody
	// is that task, nil until its events arrive.
	Chord     string
	ChordBody *WorkflowStep
}

// Group returns group gid with at most limit members (limit ≤ 0: all);
// false when no kept task is a member.
func (s *State) Group(gid string, limit int) (GroupView, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ts := s.membersLocked(s.byGroup, gid, "")
	if len(ts) == 0 {
		return GroupView{}, false
	}
	g := GroupView{ID: gid, Root: ts[0].RootID, Parent: ts[0].ParentID, Total: len(ts), Members: s.stepsLocked(ts, limit)}
	for _, t := range ts {
		if t.RootID != g.Root {
			g.Root = ""
		}
		if t.ParentID != g.Parent {
			g.Parent = ""
		}
		if g.Chord == "" || t.Chord != "" && t.Chord < g.Chord {
			g.Chord = t.Chord
		}
	}
	if b := s.tasks[g.Chord]; b != nil {
		st := s.stepLocked(b)
		g.ChordBody = &st
	}
	return g, true
}

// taskRelations is the workflow part of the task page: what the ids of
// its parent, root, group and chord lead to, its children and the steps
// of its workflow.
type taskRelations struct {
	ParentKnown, RootKnown, RootIsSelf bool
	GroupSize                          int // kept members of the task's group
	ChordKnown                         bool
	ChordOf                            string // the group whose chord body the task is
	Children                           []string
	Steps                              []WorkflowStep
	Total                              int // tasks of the workflow kept
}

// relations returns the relations of task uuid, with at most limit steps.
func (s *State) relations(uuid string, limit int) taskRelations {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tasks[uuid]
	if t == nil {
		return taskRelations{}
	}
	root := cmp.Or(t.RootID, t.UUID)
	ts := s.membersLocked(s.byRoot, root, root)
	r := taskRelations{
		ParentKnown: s.tasks[t.ParentID] != nil, RootKnown: s.tasks[t.RootID] != nil, RootIsSelf: t.RootID == t.UUID,
		GroupSize: len(s.byGroup[t.Group]), ChordKnown: s.tasks[t.Chord] != nil, ChordOf: s.chordOfLocked(uuid),
		Children: s.childrenLocked(uuid), Steps: s.stepsLocked(ts, limit), Total: len(ts),
	}
	return r
}
