package generator

import (
	"errors"
	"go/token"
	"go/types"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskgen/taskgen/annotations"
	"github.com/taskgen/taskgen/runtime/beat/crontab"
)

// schedulesFunc is the name of the generated function returning the
// periodic entries of a package's tasks.
const schedulesFunc = "Schedules"

// scheduleInfo is one checked //task:schedule directive of a task.
type scheduleInfo struct {
	annotations.Schedule
	name string // the entry's name: Schedule.Name or the default
}

// namePos is where an error about the entry's name points: its name= or,
// for a default name, the directive.
func (s *scheduleInfo) namePos() token.Position {
	if s.Name != "" {
		return s.NamePos
	}
	return s.Pos
}

// cronFields are the fields of a crontab expression in order, as
// crontab.Error names them.
var cronFields = []string{"minute", "hour", "day_of_month", "month_of_year", "day_of_week"}

// checkSchedules checks the schedules of t and names their entries: the
// name= of the directive, or else t's Celery name, with "#n" appended for
// the n-th schedule without name= (from the second on).
func (c *pkgChecker) checkSchedules(t *taskInfo) {
	unnamed := 0
	for _, s := range t.decl.Options.Schedules {
		ok := true
		if len(t.params) > 0 {
			params := make([]string, len(t.params))
			for i, v := range t.params {
				params[i] = displayName(v.Name()) + " " + types.TypeString(v.Type(), c.qualifier)
			}
			c.fail(s.Pos, t.name, "schedule: %s takes arguments (%s), but a schedule sends none: a scheduled task takes only a context; "+
				"remove the parameters, or schedule a task without them that calls %s",
				t.name, strings.Join(params, ", "), t.name)
			ok = false
		}
		if s.Cron != "" && !c.checkCron(t, s) {
			ok = false
		}
		name := s.Name
		if name == "" {
			unnamed++
			name = t.celeryName
			if unnamed > 1 {
				name += "#" + strconv.Itoa(unnamed)
			}
		}
		if ok && t.celeryName != "" {
			t.schedules = append(t.schedules, scheduleInfo{Schedule: s, name: name})
		}
	}
}

// checkCron checks the crontab expression of s with the runtime's parser,
// reporting an error about one field at that field.
func (c *pkgChecker) checkCron(t *taskInfo, s annotations.Schedule) bool {
	cron, err := crontab.Parse(s.Cron)
	if err != nil {
		pos := s.ValuePos
		if ce, ok := errors.AsType[*crontab.Error](err); ok {
			if i := slices.Index(cronFields, ce.Field); i >= 0 && i < len(s.CronFieldPos) {
				pos = s.CronFieldPos[i]
			}
		}
		c.fail(pos, t.name, "schedule: %v", err)
		return false
	}
	if cron.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC).IsZero() {
		c.fail(s.ValuePos, t.name, "schedule: cron %q never fires: the days of its day_of_month do not occur in the months of its month_of_year (such as 30 February)", s.Cron)
		return false
	}
	return true
}

// hasSchedules reports whether a task of the package has a schedule
// directive, so that the generated file declares Schedules.
func (c *pkgChecker) hasSchedules() bool {
	for _, t := range c.tasks {
		if _, ok := t.decl.Options.Set["schedule"]; ok {
			return true
		}
	}
	return false
}

// checkScheduleNames reports schedule entries of the run sharing a name:
// one beat schedule cannot hold both.
func checkScheduleNames(checks []*pkgChecker, errs *errorList) {
	type owner struct {
		task *taskInfo
		pos  token.Position
	}
	first := map[string]owner{}
	for _, c := range checks {
		for _, t := range c.tasks {
			for i := range t.schedules {
				s := &t.schedules[i]
				if prev, ok := first[s.name]; ok {
					errs.add(s.namePos(), t.name, "schedule: entry name %q is already the name of a schedule of task %s (at %s): set a distinct name=",
						s.name, prev.task.name, errs.relPos(prev.pos))
					c.failed = true
					continue
				}
				first[s.name] = owner{t, s.namePos()}
			}
		}
	}
}
