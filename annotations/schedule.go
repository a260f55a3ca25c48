package annotations

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Schedule is one //task:schedule directive: a periodic entry that sends the
// task, as an entry of Celery beat's schedule does. Exactly one of Every and
// Cron is set.
type Schedule struct {
	Every time.Duration // "every DURATION": at least a millisecond, whole milliseconds
	Cron  string        // `cron "EXPR"`: the crontab expression, unquoted, as written

	// Offset is the phase of an every schedule's slots ("offset=DURATION"),
	// meaningful when HasOffset: less than Every, whole milliseconds.
	// Without it the runtime derives the phase from the entry's name.
	Offset    time.Duration
	HasOffset bool

	// TimeZone is the IANA time zone the Cron fields are read in ("tz=ZONE");
	// "" means UTC. Parsing checks that time.LoadLocation knows it.
	TimeZone string
	// Name is the entry's name ("name=NAME"): its key in the schedule's
	// state. "" means the default, which the generator derives from the
	// task's Celery name.
	Name string

	Pos         token.Position // the directive
	ValuePos    token.Position // the interval or the quoted expression
	TimeZonePos token.Position // tz=, when given
	NamePos     token.Position // name=, when given
	OffsetPos   token.Position // offset=, when given
	// CronFieldPos holds the position of each whitespace-separated field
	// of Cron, for errors about one field (ValuePos when the quoted string
	// has escapes, so that its columns cannot be mapped).
	CronFieldPos []token.Position
}

// scheduleSyntax is the form of the directive, for messages.
const scheduleSyntax = `//task:schedule (every DURATION [offset=DURATION] | cron "EXPR" [tz=ZONE]) [name=NAME]`

// scheduleOptions lists the trailing options, for messages.
const scheduleOptions = "name=NAME, tz=ZONE for cron, offset=DURATION for every"

// repeatable lists the options that may appear more than once on a task.
var repeatable = map[string]bool{"schedule": true}

// cronMacros answers the @-shortcuts of some crontabs, which Celery's
// crontab does not have.
var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// scheduleKeyHints maps likely misspellings of the trailing options.
var scheduleKeyHints = map[string]string{
	"timezone": "tz", "time_zone": "tz", "zone": "tz", "location": "tz", "loc": "tz",
	"id": "name", "key": "name", "entry": "name",
	"phase": "offset", "at": "offset", "start": "offset",
}

// schedule parses one //task:schedule directive and appends it to o.
func (p *parser) schedule(o *Options, d *directive) {
	if d.ast.Args == "" {
		p.errorf(d.ast.Slash, "schedule: missing value (syntax: %s)", scheduleSyntax)
		return
	}
	args, err := d.ast.ParseArgs()
	if err != nil {
		p.errorf(d.ast.ArgsPos, "schedule: malformed quoted string: %s", d.ast.Args)
		return
	}
	if len(args) == 0 {
		p.errorf(d.ast.Slash, "schedule: missing value (syntax: %s)", scheduleSyntax)
		return
	}
	raw := func(a ast.DirectiveArg) string { // the argument as written, to the end of the line
		return d.ast.Args[int(a.Pos-d.ast.ArgsPos):]
	}
	quoted := func(a ast.DirectiveArg) bool {
		r := raw(a)
		return r != "" && (r[0] == '"' || r[0] == '`')
	}
	isOption := func(a ast.DirectiveArg) bool { return !quoted(a) && strings.Contains(a.Arg, "=") }

	s := Schedule{Pos: p.position(d.ast.Slash)}
	kind, rest := args[0], args[1:]
	switch {
	case kind.Arg == "every" && !quoted(kind):
		if len(rest) == 0 || isOption(rest[0]) {
			p.errorf(kind.Pos, "schedule: every needs an interval, as in //task:schedule every 15m")
			return
		}
		v := rest[0]
		rest = rest[1:]
		dur, ok := p.interval(v)
		if !ok {
			return
		}
		s.Every, s.ValuePos = dur, p.position(v.Pos)
	case kind.Arg == "cron" && !quoted(kind):
		if len(rest) == 0 || isOption(rest[0]) {
			p.errorf(kind.Pos, `schedule: cron needs a quoted crontab expression, as in //task:schedule cron "0 3 * * *"`)
			return
		}
		v := rest[0]
		if !quoted(v) {
			words := []string{}
			for _, a := range rest {
				if isOption(a) {
					break
				}
				words = append(words, a.Arg)
			}
			expr := strings.Join(words, " ")
			if m, ok := cronMacros[strings.ToLower(expr)]; ok {
				p.errorf(v.Pos, `schedule: Celery's crontab has no %s: write //task:schedule cron %q`, expr, m)
				return
			}
			p.errorf(v.Pos, "schedule: quote the crontab expression: //task:schedule cron %q", expr)
			return
		}
		rest = rest[1:]
		if strings.TrimSpace(v.Arg) == "" {
			p.errorf(v.Pos, `schedule: empty crontab expression (as in //task:schedule cron "0 3 * * *")`)
			return
		}
		if m, ok := cronMacros[strings.ToLower(strings.TrimSpace(v.Arg))]; ok {
			p.errorf(v.Pos, `schedule: Celery's crontab has no %s: write //task:schedule cron %q`, strings.TrimSpace(v.Arg), m)
			return
		}
		s.Cron, s.ValuePos = v.Arg, p.position(v.Pos)
		s.CronFieldPos = p.cronFieldPos(v, raw(v))
	default:
		p.errorf(kind.Pos, "schedule: %s", scheduleKindHint(kind.Arg, quoted(kind), args))
		return
	}

	seen := map[string]bool{}
	for _, a := range rest {
		key, value, ok := strings.Cut(a.Arg, "=")
		if !ok || quoted(a) {
			p.errorf(a.Pos, "schedule: unexpected %q after the schedule (options: %s)", a.Arg, scheduleOptions)
			return
		}
		if key != "tz" && key != "name" && key != "offset" {
			hint := "options: " + scheduleOptions
			if h, ok := scheduleKeyHints[strings.ToLower(key)]; ok {
				hint = "did you mean " + h + "=?"
			} else if n, dist := Nearest(key, []string{"tz", "name", "offset"}); dist >= 0 && dist <= 1 && len(key) > 1 {
				hint = "did you mean " + n + "=?"
			}
			p.errorf(a.Pos, "schedule: unknown option %q (%s)", key, hint)
			return
		}
		if seen[key] {
			p.errorf(a.Pos, "schedule: %s= given twice", key)
			return
		}
		seen[key] = true
		valuePos := a.Pos + token.Pos(len(key)+1)
		if value == "" {
			ex := map[string]string{"tz": "tz=Europe/Paris", "name": "name=daily-report", "offset": "offset=0"}[key]
			p.errorf(valuePos, "schedule: empty value for %s= (as in %s)", key, ex)
			return
		}
		switch key {
		case "tz":
			if s.Every != 0 {
				p.errorf(a.Pos, "schedule: tz has no effect on an every schedule, whose slots are the same instants in every zone: remove tz=%s, or use cron", value)
				return
			}
			if msg := checkTimeZone(value); msg != "" {
				p.errorf(valuePos, "schedule: %s", msg)
				return
			}
			s.TimeZone, s.TimeZonePos = value, p.position(a.Pos)
		case "name":
			if !validTaskName(value) {
				p.errorf(valuePos, "schedule: name %q is not an entry name: use letters, digits and _ . : - only", value)
				return
			}
			s.Name, s.NamePos = value, p.position(a.Pos)
		case "offset":
			if s.Every == 0 {
				p.errorf(a.Pos, "schedule: offset has no effect on a cron schedule, whose slots are the expression's: remove offset=%s", value)
				return
			}
			off, err := parseDuration(value)
			switch {
			case err != nil:
				p.errorf(valuePos, "schedule: offset %q is not a duration (such as 0, 90s or 5m) or a whole number of seconds%s", value, floatHint(value))
				return
			case off < 0 || off >= s.Every:
				p.errorf(valuePos, "schedule: offset %s is not in [0, %s), the phase of the slots within the interval", value, formatDuration(s.Every))
				return
			case off%time.Millisecond != 0:
				p.errorf(valuePos, "schedule: offset %s is not a whole number of milliseconds, the scheduler's resolution", value)
				return
			}
			s.Offset, s.HasOffset, s.OffsetPos = off, true, p.position(a.Pos)
		}
	}
	o.Schedules = append(o.Schedules, s)
}

// interval parses the duration of an every schedule.
func (p *parser) interval(v ast.DirectiveArg) (time.Duration, bool) {
	dur, err := parseDuration(v.Arg)
	switch {
	case errors.Is(err, strconv.ErrRange):
		p.errorf(v.Pos, "schedule: interval %q is too large", v.Arg)
	case err != nil:
		p.errorf(v.Pos, "schedule: %q is not a duration (such as 30s, 15m or 1h30m) or a whole number of seconds%s", v.Arg, floatHint(v.Arg))
	case dur < time.Millisecond:
		p.errorf(v.Pos, "schedule: interval %s is shorter than a millisecond, the scheduler's resolution", v.Arg)
	case dur%time.Millisecond != 0:
		p.errorf(v.Pos, "schedule: interval %s is not a whole number of milliseconds, the scheduler's resolution", v.Arg)
	default:
		return dur, true
	}
	return 0, false
}

// cronFieldPos returns the position of each field of the quoted expression
// v, written raw (quote included) in the comment.
func (p *parser) cronFieldPos(v ast.DirectiveArg, raw string) []token.Position {
	expr := v.Arg
	// The columns of the expression are those of the comment unless an
	// escape sequence made the unquoted text differ from what is written.
	exact := len(raw) > len(expr)+1 && raw[1:1+len(expr)] == expr && raw[1+len(expr)] == raw[0]
	var out []token.Position
	start := -1
	for i, r := range expr + " " {
		switch {
		case unicode.IsSpace(r) && start >= 0:
			pos := v.Pos
			if exact {
				pos += token.Pos(1 + start)
			}
			out = append(out, p.position(pos))
			start = -1
		case !unicode.IsSpace(r) && start < 0:
			start = i
		}
	}
	return out
}

// checkTimeZone explains why name cannot be a schedule's time zone, or
// returns "".
func checkTimeZone(name string) string {
	if name == "Local" {
		return "tz=Local is the time zone of whichever machine runs the scheduler: name the zone, such as Europe/Paris"
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Sprintf("unknown time zone %q: want an IANA name such as Europe/Paris, America/New_York or UTC", name)
	}
	return ""
}

// scheduleKindHint explains a schedule that starts with neither every nor
// cron.
func scheduleKindHint(first string, quoted bool, args []ast.DirectiveArg) string {
	if quoted || len(strings.Fields(first)) > 1 {
		return fmt.Sprintf("write //task:schedule cron %q", first)
	}
	if len(args) >= 5 {
		words := make([]string, 5)
		for i, a := range args[:5] {
			words[i] = a.Arg
		}
		return fmt.Sprintf("write //task:schedule cron %q", strings.Join(words, " "))
	}
	if _, err := parseDuration(first); err == nil {
		return fmt.Sprintf("write //task:schedule every %s", first)
	}
	if n, dist := Nearest(first, []string{"every", "cron"}); dist >= 0 && dist <= 2 {
		return fmt.Sprintf("unknown schedule %q (did you mean %s?)", first, n)
	}
	return fmt.Sprintf("unknown schedule %q (syntax: %s)", first, scheduleSyntax)
}

// checkSchedules reports schedules of one task that repeat another.
func (p *parser) checkSchedules(opts *Options) {
	first := map[string]token.Position{}
	for _, s := range opts.Schedules {
		key := "every " + s.Every.String()
		if s.HasOffset {
			key += " offset " + s.Offset.String()
		}
		if s.Cron != "" {
			key = "cron " + strings.Join(strings.Fields(s.Cron), " ") + " " + s.TimeZone
		}
		if prev, ok := first[key]; ok {
			p.errs.Add(s.Pos, "", "schedule: repeats the schedule of the directive at %s: remove one", prev)
			continue
		}
		first[key] = s.Pos
	}
}
