package annotations_test

import (
	"go/token"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/annotations"
)

// at is a position on line 3 of x.go, where parseDoc puts its first line.
func at(line, col int) token.Position {
	return token.Position{Filename: "x.go", Line: line, Column: col}
}

// withoutScheduleOffsets clears the byte offsets of a schedule's positions
// (line:col is checked).
func withoutScheduleOffsets(ss []annotations.Schedule) []annotations.Schedule {
	clear := func(p *token.Position) { p.Offset = 0 }
	for i := range ss {
		s := &ss[i]
		clear(&s.Pos)
		clear(&s.ValuePos)
		clear(&s.TimeZonePos)
		clear(&s.NamePos)
		clear(&s.OffsetPos)
		for j := range s.CronFieldPos {
			clear(&s.CronFieldPos[j])
		}
	}
	return ss
}

func TestParse_schedule(t *testing.T) {
	t.Parallel()
	o, errs := parseDoc(t,
		"//task:schedule every 15m",
		`//task:schedule cron "0 3 * * mon-fri" tz=Europe/Paris name=daily-report`,
		"//task:schedule every 90 name=x offset=30s",
		"//task:schedule cron `*/5  * * * *`",
		`//task:schedule cron "0\t4 * * *"`,
		"//task:queue q",
	)
	require.Empty(t, errs)
	require.Equal(t, []annotations.Schedule{
		{Every: 15 * time.Minute, Pos: at(3, 1), ValuePos: at(3, 23)},
		{
			Cron: "0 3 * * mon-fri", TimeZone: "Europe/Paris", Name: "daily-report",
			Pos: at(4, 1), ValuePos: at(4, 22), TimeZonePos: at(4, 40), NamePos: at(4, 56),
			CronFieldPos: []token.Position{at(4, 23), at(4, 25), at(4, 27), at(4, 29), at(4, 31)},
		},
		{
			Every: 90 * time.Second, Name: "x", Offset: 30 * time.Second, HasOffset: true,
			Pos: at(5, 1), ValuePos: at(5, 23), NamePos: at(5, 26), OffsetPos: at(5, 33),
		},
		{
			Cron: "*/5  * * * *", Pos: at(6, 1), ValuePos: at(6, 22),
			CronFieldPos: []token.Position{at(6, 23), at(6, 28), at(6, 30), at(6, 32), at(6, 34)},
		},
		{ // an escape: the columns of the fields are unknown, so all point at the string
			Cron: "0\t4 * * *", Pos: at(7, 1), ValuePos: at(7, 22),
			CronFieldPos: []token.Position{at(7, 22), at(7, 22), at(7, 22), at(7, 22), at(7, 22)},
		},
	}, withoutScheduleOffsets(o.Schedules))
	require.Equal(t, 3, o.Set["schedule"].Line, "Set holds the first schedule directive")
	require.Equal(t, "q", o.Queue)
}

func TestParse_scheduleErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want string
	}{
		{"//task:schedule", `x.go:3:1: schedule: missing value (syntax: //task:schedule (every DURATION [offset=DURATION] | cron "EXPR" [tz=ZONE]) [name=NAME])`},
		{"//task:schedule 15m", `x.go:3:17: schedule: write //task:schedule every 15m`},
		{`//task:schedule "0 3 * * *"`, `x.go:3:17: schedule: write //task:schedule cron "0 3 * * *"`},
		{`//task:schedule 0 3 * * *`, `x.go:3:17: schedule: write //task:schedule cron "0 3 * * *"`},
		{"//task:schedule evry 15m", `x.go:3:17: schedule: unknown schedule "evry" (did you mean every?)`},
		{"//task:schedule hourly", `x.go:3:17: schedule: unknown schedule "hourly" (syntax: //task:schedule (every DURATION [offset=DURATION] | cron "EXPR" [tz=ZONE]) [name=NAME])`},
		{"//task:schedule every", `x.go:3:17: schedule: every needs an interval, as in //task:schedule every 15m`},
		{"//task:schedule every name=x", `x.go:3:17: schedule: every needs an interval, as in //task:schedule every 15m`},
		{"//task:schedule every soon", `x.go:3:23: schedule: "soon" is not a duration (such as 30s, 15m or 1h30m) or a whole number of seconds`},
		{"//task:schedule every 1.5", `x.go:3:23: schedule: "1.5" is not a duration (such as 30s, 15m or 1h30m) or a whole number of seconds (write 1.5s)`},
		{"//task:schedule every 0", `x.go:3:23: schedule: interval 0 is shorter than a millisecond, the scheduler's resolution`},
		{"//task:schedule every -5m", `x.go:3:23: schedule: interval -5m is shorter than a millisecond, the scheduler's resolution`},
		{"//task:schedule every 500us", `x.go:3:23: schedule: interval 500us is shorter than a millisecond, the scheduler's resolution`},
		{"//task:schedule every 1500us", `x.go:3:23: schedule: interval 1500us is not a whole number of milliseconds, the scheduler's resolution`},
		{"//task:schedule every 99999999999999999999", `x.go:3:23: schedule: interval "99999999999999999999" is too large`},
		{"//task:schedule cron", `x.go:3:17: schedule: cron needs a quoted crontab expression, as in //task:schedule cron "0 3 * * *"`},
		{"//task:schedule cron 0 3 * * mon-fri tz=UTC", `x.go:3:22: schedule: quote the crontab expression: //task:schedule cron "0 3 * * mon-fri"`},
		{"//task:schedule cron @daily", `x.go:3:22: schedule: Celery's crontab has no @daily: write //task:schedule cron "0 0 * * *"`},
		{`//task:schedule cron "@hourly"`, `x.go:3:22: schedule: Celery's crontab has no @hourly: write //task:schedule cron "0 * * * *"`},
		{`//task:schedule cron " "`, `x.go:3:22: schedule: empty crontab expression (as in //task:schedule cron "0 3 * * *")`},
		{`//task:schedule cron "0 3 * * *`, `x.go:3:17: schedule: malformed quoted string: cron "0 3 * * *`},
		{`//task:schedule cron "0 3 * * *" tz=Mars/Olympus`, `x.go:3:37: schedule: unknown time zone "Mars/Olympus": want an IANA name such as Europe/Paris, America/New_York or UTC`},
		{`//task:schedule cron "0 3 * * *" tz=Local`, `x.go:3:37: schedule: tz=Local is the time zone of whichever machine runs the scheduler: name the zone, such as Europe/Paris`},
		{`//task:schedule cron "0 3 * * *" tz=`, `x.go:3:37: schedule: empty value for tz= (as in tz=Europe/Paris)`},
		{`//task:schedule cron "0 3 * * *" timezone=UTC`, `x.go:3:34: schedule: unknown option "timezone" (did you mean tz=?)`},
		{`//task:schedule cron "0 3 * * *" nam=x`, `x.go:3:34: schedule: unknown option "nam" (did you mean name=?)`},
		{`//task:schedule cron "0 3 * * *" queue=x`, `x.go:3:34: schedule: unknown option "queue" (options: name=NAME, tz=ZONE for cron, offset=DURATION for every)`},
		{`//task:schedule cron "0 3 * * *" daily`, `x.go:3:34: schedule: unexpected "daily" after the schedule (options: name=NAME, tz=ZONE for cron, offset=DURATION for every)`},
		{`//task:schedule cron "0 3 * * *" name=a name=b`, `x.go:3:41: schedule: name= given twice`},
		{`//task:schedule cron "0 3 * * *" name=a/b`, `x.go:3:39: schedule: name "a/b" is not an entry name: use letters, digits and _ . : - only`},
		{"//task:schedule every 1m offset=1m", `x.go:3:33: schedule: offset 1m is not in [0, 1m), the phase of the slots within the interval`},
		{"//task:schedule every 1m offset=-1s", `x.go:3:33: schedule: offset -1s is not in [0, 1m), the phase of the slots within the interval`},
		{"//task:schedule every 1m offset=1.5", `x.go:3:33: schedule: offset "1.5" is not a duration (such as 0, 90s or 5m) or a whole number of seconds (write 1.5s)`},
		{"//task:schedule every 1m offset=10us", `x.go:3:33: schedule: offset 10us is not a whole number of milliseconds, the scheduler's resolution`},
		{"//task:schedule every 1m phase=0", `x.go:3:26: schedule: unknown option "phase" (did you mean offset=?)`},
		{`//task:schedule cron "0 3 * * *" offset=0`, `x.go:3:34: schedule: offset has no effect on a cron schedule, whose slots are the expression's: remove offset=0`},
		{"//task:schedule every 1m tz=Europe/Paris", `x.go:3:26: schedule: tz has no effect on an every schedule, whose slots are the same instants in every zone: remove tz=Europe/Paris, or use cron`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			o, errs := parseDoc(t, tt.line)
			require.Equal(t, []string{tt.want}, errStrings(errs))
			require.Empty(t, o.Schedules, "a malformed schedule is left out")
		})
	}
}

func TestParse_scheduleRepeated(t *testing.T) {
	t.Parallel()
	o, errs := parseDoc(t,
		"//task:schedule every 1h",
		`//task:schedule cron "0 3 * * *"`,
		"//task:schedule every 60m name=again",
		"//task:schedule every 1h offset=0",
		`//task:schedule cron "0  3 * * *" tz=Europe/Paris`,
		`//task:schedule cron "0  3 * * *"`,
	)
	require.Equal(t, []string{
		"x.go:5:1: schedule: repeats the schedule of the directive at x.go:3:1: remove one",
		"x.go:8:1: schedule: repeats the schedule of the directive at x.go:4:1: remove one",
	}, errStrings(errs))
	require.Len(t, o.Schedules, 6)
}

func TestParse_scheduleNearMisses(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]string{
		`//task:cron "0 3 * * *"`: `x.go:3:8: unknown option "cron" (write //task:schedule cron "EXPR")`,
		"//task:every 15m":        `x.go:3:8: unknown option "every" (write //task:schedule every DURATION)`,
		"//task:run_every 15m":    `x.go:3:8: unknown option "run_every" (write //task:schedule every DURATION)`,
		"//task:schedul every 1m": `x.go:3:8: unknown option "schedul" (did you mean schedule?)`,
	} {
		_, errs := parseDoc(t, line)
		require.Equal(t, []string{want}, errStrings(errs), line)
	}
}
