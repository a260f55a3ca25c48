// Package crontab parses and evaluates crontab expressions with the
// semantics of Celery 5.2.6's celery.schedules.crontab, time zones and DST
// included. runtime/beat's Cron entries use it; so does taskgen's generator,
// to check //task:schedule cron directives. It depends on the standard
// library only.
package crontab

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a crontab schedule with the semantics of Celery 5.2.6's
// celery.schedules.crontab: five sets (minute, hour, day of month, month of
// year, day of week) and a slot at every whole minute that is in all five.
//
// # Days
//
// Day of month and day of week are ANDed, as in Celery and unlike Vixie
// cron (which runs on either when both are restricted): "0 0 13 * fri" runs
// only on Friday the 13th, and "0 0 1-7 * mon" on the first Monday of each
// month. Celery's docstring says it: "any day on which execution should
// occur must be represented by entries in all three of the day and month
// attributes". Weekdays are 0-6 with Sunday = 0; 7 is rejected, as Celery
// rejects it.
//
// # Time zones and DST
//
// A Schedule is evaluated on the wall clock of a time zone (Celery's app
// timezone, conf.timezone, with enable_utc on). [Schedule.Next] returns the
// instant at which Celery beat would run the entry next when it last ran at
// after, that is the first instant after it at which
// crontab.is_due(last_run_at=after) answers due (beat notices at its next
// tick, at most beat_max_loop_interval later; a scheduler using Next can
// wake at the instant itself). Celery finds the first wall-clock slot W
// after the wall-clock time of after (remaining_delta), then, in
// celery.utils.time.remaining, reads W at the UTC offset in effect at now
// (it replaces last_run_at's offset with now's when they differ, and ffwd
// sets wall-clock fields only), and is due once that instant is not later
// than now. That is: the entry runs at the first instant after after at
// which loc's clock reads W or later. Outside transitions that is W
// itself. Across them:
//
//   - Spring forward (W in the skipped hour): the entry runs at the
//     transition instant, when the clock jumps. A daily 02:30 job in
//     America/New_York runs at 03:00 EDT on 2023-03-12 (not 03:30, which
//     Go's time.Date would give); an hourly job runs at 01:00 EST,
//     03:00 EDT, 04:00 EDT (the 02:00 slot runs at 03:00 and takes the
//     03:00 slot's place). This is Celery's behaviour, odd as it is.
//   - Fall back (W in the repeated hour): W is read at after's offset while
//     that offset lasts, so a slot in the repeated hour runs at its first
//     occurrence and not again: a daily 01:30 job runs at 01:30 EDT on
//     2023-11-05; an hourly job runs at 01:00 EDT and then 02:00 EST, two
//     hours later (the 01:00 EST slot is skipped); "*/15" runs at
//     01:45 EDT then 02:00 EST. When after is itself in the second
//     occurrence (01:10 EST), the rest of that hour's slots run (01:30 EST).
//
// # Differences from Celery 5.2.6
//
// Celery 5.2.6's crontab._delta_to_next (used when day_of_month or
// month_of_year is not "*") compares each candidate day's midnight UTC with
// the last run, so west of UTC a run late in the evening (after 20:00 in
// New York in summer) makes it skip the rest of the month: "0 22 1-31 * *"
// after 2023-06-10 22:00 EDT runs next on 2023-07-01. Celery 5.3 fixed it;
// Schedule does not reproduce it. For an impossible date (30 February, 31
// April) Celery raises RuntimeError when it computes the next run; Next
// returns the zero time. Parse is stricter than Celery's parser about
// malformed input: see [Parse].
type Schedule struct {
	minute uint64 // bit i: minute i, 0-59
	hour   uint32 // bit i: hour i, 0-23
	dom    uint32 // bit i: day i of the month, 1-31
	month  uint16 // bit i: month i, 1-12
	dow    uint8  // bit i: weekday i, Sunday = 0, 0-6

	// byFirst[w] holds the days of a month that are in dom and whose
	// weekday is in dow, for a month whose 1st is weekday w.
	byFirst [7]uint32
	// never is set when no month in month has a day in dom (30 February).
	never bool
}

// Error is the error Parse returns: which field of which
// expression is wrong, and how, in words that can be shown to a user.
type Error struct {
	Expr   string // the expression as given
	Field  string // "minute", "hour", "day_of_month", "month_of_year", "day_of_week"; "" for the expression as a whole
	Reason string // what is wrong, with the valid range
}

// Error formats the error as `cron "EXPR": FIELD: REASON`.
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("cron %q: %s", e.Expr, e.Reason)
	}
	return fmt.Sprintf("cron %q: %s: %s", e.Expr, e.Field, e.Reason)
}

type cronField struct {
	name   string
	lo, hi int
}

var cronFields = [5]cronField{
	{"minute", 0, 59},
	{"hour", 0, 23},
	{"day_of_month", 1, 31},
	{"month_of_year", 1, 12},
	{"day_of_week", 0, 6},
}

const dowField = 4

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Parse parses a crontab expression of five whitespace-separated
// fields, in cron's order:
//
//	minute hour day_of_month month_of_year day_of_week
//
// (Celery's crontab() takes the same fields as keyword arguments, in the
// order minute, hour, day_of_week, day_of_month, month_of_year). Ranges
// are minute 0-59, hour 0-23, day_of_month 1-31, month_of_year 1-12,
// day_of_week 0-6 with Sunday = 0. Each field is a comma-separated list of
//
//   - every value
//     n        one value
//     a-b      a range; when b < a it wraps past the top ("22-2" is 22,23,0,1,2)
//     */n      every n-th value from the bottom ("*/15", day_of_month "*/5" is 1,6,...)
//     a-b/n    every n-th value of the range, wrapped ranges included
//
// as Celery's crontab_parser reads them. Day of week also takes English day
// names, case-insensitive, matched as Celery matches them on their first
// three letters ("mon", "Monday", "tues", "THURS"). Celery has no month
// names, and neither has Parse.
//
// Celery's parser also accepts, by accident of its regular expressions,
// things Parse rejects: day names in the other fields (minute "mon" is
// 1 there), text after a range or step ("1-2-3" is 1-2, "1-5/2/3" is
// 1-5/2), and numbers Python's int() takes ("+5", "1_0").
//
// An expression naming an impossible date (day_of_month 30 with
// month_of_year 2) parses, as in Celery; it never fires.
func Parse(expr string) (*Schedule, error) {
	parts := strings.Fields(expr)
	if len(parts) != 5 {
		return nil, &Error{Expr: expr, Reason: fmt.Sprintf(
			"want 5 fields (minute hour day_of_month month_of_year day_of_week), got %d", len(parts))}
	}
	var sets [5]uint64
	for i, f := range cronFields {
		set, reason := parseCronField(parts[i], f, i == dowField)
		if reason != "" {
			return nil, &Error{Expr: expr, Field: f.name, Reason: reason}
		}
		sets[i] = set
	}
	c := &Schedule{
		minute: sets[0],
		hour:   uint32(sets[1]),
		dom:    uint32(sets[2]),
		month:  uint16(sets[3]),
		dow:    uint8(sets[4]),
	}
	c.init()
	return c, nil
}

// init derives byFirst and never from the five sets.
func (c *Schedule) init() {
	for w := range 7 {
		var m uint32
		for d := 1; d <= 31; d++ {
			if c.dom&(1<<d) != 0 && c.dow&(1<<((w+d-1)%7)) != 0 {
				m |= 1 << d
			}
		}
		c.byFirst[w] = m
	}
	// Every date, 29 February included, falls on each weekday within the
	// 400-year Gregorian cycle, so the day of week cannot make a schedule
	// impossible; only the month and day of month can.
	c.never = true
	for mo := 1; mo <= 12; mo++ {
		if c.month&(1<<mo) != 0 && c.dom&monthMask(mo, 29) != 0 {
			c.never = false
		}
	}
}

// monthMask returns the bits 1..n of a month with n days, where n is the
// length of month mo in a year whose February has feb days.
func monthMask(mo, feb int) uint32 {
	n := 31
	switch mo {
	case 2:
		n = feb
	case 4, 6, 9, 11:
		n = 30
	}
	return (uint32(1)<<(n+1) - 1) &^ 1
}

func fieldWant(f cronField, dow bool) string {
	if dow {
		return "want 0-6 or sun..sat"
	}
	return fmt.Sprintf("want %d-%d", f.lo, f.hi)
}

// parseCronField parses one field. It returns the set, or a reason.
func parseCronField(spec string, f cronField, dow bool) (uint64, string) {
	var set uint64
	for _, part := range strings.Split(spec, ",") {
		s, reason := parseCronPart(part, f, dow)
		if reason != "" {
			return 0, reason
		}
		set |= s
	}
	return set, ""
}

func parseCronPart(part string, f cronField, dow bool) (uint64, string) {
	if part == "" {
		return 0, fmt.Sprintf("empty list element (%s)", fieldWant(f, dow))
	}
	base, stepText, hasStep := strings.Cut(part, "/")
	step := 1
	if hasStep {
		if stepText == "" || !allDigits(stepText) {
			return 0, fmt.Sprintf("bad step %q in %q (want a whole number from 1)", stepText, part)
		}
		n, err := strconv.Atoi(stepText)
		if err != nil || n > 64 {
			n = 64 // as good as infinite: only the first value
		}
		if n == 0 {
			return 0, fmt.Sprintf("bad step 0 in %q (want a whole number from 1)", part)
		}
		step = n
	}
	var from, to int
	switch {
	case base == "*":
		from, to = f.lo, f.hi
	case strings.HasPrefix(base, "-"):
		return 0, fmt.Sprintf("negative numbers are not supported (%q; %s)", part, fieldWant(f, dow))
	case strings.Contains(base, "-"):
		a, b, _ := strings.Cut(base, "-")
		var reason string
		if from, reason = parseCronValue(a, f, dow); reason != "" {
			return 0, reason
		}
		if b == "" {
			return 0, fmt.Sprintf("range %q has no end (%s)", part, fieldWant(f, dow))
		}
		if to, reason = parseCronValue(b, f, dow); reason != "" {
			return 0, reason
		}
	default:
		if hasStep {
			return 0, fmt.Sprintf("a step needs * or a range before it, as in */%s or a-b/%s (got %q)", stepText, stepText, part)
		}
		v, reason := parseCronValue(base, f, dow)
		if reason != "" {
			return 0, reason
		}
		return 1 << v, ""
	}
	// Celery's _expand_range: from..to, or from..hi then lo..to when
	// to < from; then every step-th element of that list.
	var set uint64
	i := 0
	v := from
	for {
		if i%step == 0 {
			set |= 1 << v
		}
		if v == to {
			break
		}
		i++
		if v++; v > f.hi {
			v = f.lo
		}
	}
	return set, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return s != ""
}

// parseCronValue parses a number, or in day_of_week a day name.
func parseCronValue(s string, f cronField, dow bool) (int, string) {
	switch {
	case allDigits(s):
		v, err := strconv.Atoi(s)
		if err != nil || v < f.lo || v > f.hi {
			if dow && s == "7" {
				return 0, "7 is out of range (want 0-6 or sun..sat; Sunday is 0)"
			}
			return 0, fmt.Sprintf("%s is out of range (%s)", s, fieldWant(f, dow))
		}
		return v, ""
	case dow && allLetters(s):
		if len(s) >= 3 {
			abbr := strings.ToLower(s[:3])
			for i, name := range dayNames {
				if name == abbr {
					return i, ""
				}
			}
		}
		return 0, fmt.Sprintf("unknown day %q (want 0-6 or sun..sat)", s)
	case allLetters(s):
		return 0, fmt.Sprintf("%q is not a number (%s)", s, fieldWant(f, dow))
	default:
		return 0, fmt.Sprintf("cannot parse %q (%s)", s, fieldWant(f, dow))
	}
}

// String returns the normalized expression: each field is "*" when it has
// every value, "*/n" when it is every n-th value from the bottom, and else a
// list of numbers and ranges in ascending order (day of week as 0-6). It
// parses back to the same schedule.
func (c *Schedule) String() string {
	sets := [5]uint64{c.minute, uint64(c.hour), uint64(c.dom), uint64(c.month), uint64(c.dow)}
	var b strings.Builder
	for i, f := range cronFields {
		if i > 0 {
			b.WriteByte(' ')
		}
		formatCronField(&b, sets[i], f)
	}
	return b.String()
}

func formatCronField(b *strings.Builder, set uint64, f cronField) {
	var all uint64
	for v := f.lo; v <= f.hi; v++ {
		all |= 1 << v
	}
	if set == all {
		b.WriteByte('*')
		return
	}
	if bits.OnesCount64(set) >= 2 {
		for n := 2; n <= f.hi-f.lo; n++ {
			var m uint64
			for v := f.lo; v <= f.hi; v += n {
				m |= 1 << v
			}
			if m == set {
				fmt.Fprintf(b, "*/%d", n)
				return
			}
		}
	}
	first := true
	for v := f.lo; v <= f.hi; {
		if set&(1<<v) == 0 {
			v++
			continue
		}
		end := v
		for end < f.hi && set&(1<<(end+1)) != 0 {
			end++
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(strconv.Itoa(v))
		if end > v {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(end))
		}
		v = end + 1
	}
}

// Next returns the first slot strictly after after, evaluated on the wall
// clock of loc (nil means UTC), in loc: the instant at which Celery beat
// runs the entry when it last ran at after. Across DST transitions it
// follows Celery; see [Schedule]. A schedule that can never fire (30 February)
// returns the zero time.
func (c *Schedule) Next(after time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	if c.never {
		return time.Time{}
	}
	a := after.In(loc)
	// One zone lookup for after's offset, then its wall clock in UTC
	// (time.Time's Date and Clock would each look the zone up again).
	_, off := a.Zone()
	aw := time.Unix(a.Unix()+int64(off), 0).UTC()
	y, mo, d := aw.Date()
	h, mi, _ := aw.Clock()
	y, mo, d, h, mi, ok := c.nextWall(y, mo, d, h, mi)
	if !ok {
		return time.Time{}
	}
	wall := time.Date(y, mo, d, h, mi, 0, 0, time.UTC).Unix()

	// Celery is due at the first t > after at which wall, read at t's UTC
	// offset, is not after t (at which the clock reads wall or later). Walk
	// the zone's periods from after's: in each, that is wall minus the
	// period's offset, or the period's start when that is earlier. UTC
	// offsets are within a day, so before wall-26h the clock reads less
	// than wall: start there.
	t := a
	if s := wall - 26*3600; s > a.Unix() {
		t = time.Unix(s, 0).In(loc)
		_, off = t.Zone()
	}
	for i := 0; ; i++ {
		at := wall - int64(off)
		_, end := t.ZoneBounds()
		if end.IsZero() || at < end.Unix() || i >= 1000 {
			if i > 0 && at < t.Unix() {
				return t.In(loc) // the transition instant (spring forward)
			}
			return time.Unix(at, 0).In(loc)
		}
		t = end
		_, off = t.Zone()
	}
}

// nextWall returns the first wall-clock slot after the minute
// y-mo-d h:mi, or false when there is none within 400 years.
func (c *Schedule) nextWall(y int, mo time.Month, d, h, mi int) (int, time.Month, int, int, int, bool) {
	firstMinute := bits.TrailingZeros64(c.minute)
	firstHour := bits.TrailingZeros32(c.hour)
	if c.month&(1<<mo) != 0 && c.dom&(1<<d) != 0 &&
		c.dow&(1<<weekday(y, mo, d)) != 0 {
		if c.hour&(1<<h) != 0 {
			if m := c.minute &^ (uint64(2)<<mi - 1); m != 0 {
				return y, mo, d, h, bits.TrailingZeros64(m), true
			}
		}
		if hs := c.hour &^ (uint32(2)<<h - 1); hs != 0 {
			return y, mo, d, bits.TrailingZeros32(hs), firstMinute, true
		}
	}
	// The next matching day after y-mo-d.
	after := uint32(2)<<d - 1 // days 0..d are taken
	for range 400*12 + 1 {
		if c.month&(1<<mo) != 0 {
			feb := 28
			if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
				feb = 29
			}
			if days := c.byFirst[weekday(y, mo, 1)] & monthMask(int(mo), feb) &^ after; days != 0 {
				return y, mo, bits.TrailingZeros32(days), firstHour, firstMinute, true
			}
		}
		after = 0
		if mo++; mo > time.December {
			mo = time.January
			y++
		}
	}
	return 0, 0, 0, 0, 0, false
}

// weekday returns the day of the week of y-mo-d, Sunday = 0, in the
// proleptic Gregorian calendar.
func weekday(y int, mo time.Month, d int) int {
	m := int(mo)
	if m <= 2 {
		y--
		m += 12
	}
	// Days from 0000-03-01, a Wednesday, to y-m-d.
	days := 365*y + floorDiv(y, 4) - floorDiv(y, 100) + floorDiv(y, 400) + (153*(m-3)+2)/5 + d - 1
	return ((days+3)%7 + 7) % 7
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
