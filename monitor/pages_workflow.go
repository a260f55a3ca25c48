package monitor

import (
	"fmt"
	"net/http"
	"strconv"
)

// maxStepsShown bounds the rows of a workflow or group table (a group of
// thousands of tasks); the page says how many more there are.
const maxStepsShown = 500

// stepRow is one row of a workflow or group table.
type stepRow struct {
	WorkflowStep
	Index int    // GroupIndex + 1, 0 when not given
	At    string // received time, formatted
}

// stepsTable is what the "steps" template renders.
type stepsTable struct {
	ID      string // the table's element id
	Steps   []stepRow
	Total   int    // tasks kept, Steps being the first maxStepsShown
	Current string // the task whose page this is ("" on a group page)
}

func (m *Monitor) stepsTable(id, current string, steps []WorkflowStep, total int) stepsTable {
	rows := make([]stepRow, len(steps))
	for i, s := range steps {
		rows[i] = stepRow{WorkflowStep: s, At: m.ts(s.Received)}
		if s.GroupIndex != nil {
			rows[i].Index = *s.GroupIndex + 1
		}
	}
	return stepsTable{ID: id, Steps: rows, Total: total, Current: current}
}

// pageGroup is /group/<id>: the kept members of a group and its chord body.
func (m *Monitor) pageGroup(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	g, ok := m.state.Group(id, maxStepsShown)
	if !ok {
		m.render(w, http.StatusNotFound, "error", "Unknown group", fmt.Sprintf("Unknown group %q: no kept task's events named it (Go workers name the group of its members; Celery's events carry none).", id))
		return
	}
	var body stepsTable
	if g.ChordBody != nil {
		body = m.stepsTable("group-chord", "", []WorkflowStep{*g.ChordBody}, 1)
	}
	m.render(w, http.StatusOK, "group", "Group "+id, struct {
		G       GroupView
		Members stepsTable
		Body    stepsTable
	}{g, m.stepsTable("group-members", "", g.Members, g.Total), body})
}

// limitParam reads ?limit= (0, all, when absent).
func limitParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("limit: %q is not a non-negative integer", s)
	}
	return n, nil
}

// steps is a step list for JSON: [] rather than null.
func steps(s []WorkflowStep) []WorkflowStep {
	if s == nil {
		return []WorkflowStep{}
	}
	return s
}

// apiTaskWorkflow answers GET /api/task/workflow/<id>: the steps of the
// workflow task id belongs to (tasks sharing its root_id), in order, at
// most ?limit= of them.
func (m *Monitor) apiTaskWorkflow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	limit, err := limitParam(r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	st, total, root := m.state.Workflow(id, limit)
	if total == 0 {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("Unknown task '%s'", id))
		return
	}
	writeJSON(w, http.StatusOK, object{{"uuid", id}, {"root_id", root}, {"total", total}, {"steps", steps(st)}})
}

// apiGroupInfo answers GET /api/group/info/<id>: a group's kept members
// (at most ?limit=) and its chord body.
func (m *Monitor) apiGroupInfo(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	limit, err := limitParam(r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	g, ok := m.state.Group(id, limit)
	if !ok {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("Unknown group '%s'", id))
		return
	}
	var body any
	if g.ChordBody != nil {
		body = g.ChordBody
	}
	writeJSON(w, http.StatusOK, object{{"id", g.ID}, {"root_id", nullS(g.Root)}, {"parent_id", nullS(g.Parent)},
		{"total", g.Total}, {"members", steps(g.Members)}, {"chord", nullS(g.Chord)}, {"chord_body", body}})
}
