package crontab

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// celeryCases is testdata/crontab_cases.json, written by
// testdata/crontab_cases.py from Celery 5.2.6's crontab.
type celeryCases struct {
	Celery string `json:"celery"`
	Parse  []struct {
		Field  string `json:"field"`
		Spec   string `json:"spec"`
		Values []int  `json:"values"`
		Error  string `json:"error"`
	} `json:"parse"`
	Next []struct {
		Expr   string  `json:"expr"`
		TZ     string  `json:"tz"`
		After  string  `json:"after"`
		Celery *string `json:"celery"`
		Fixed  *string `json:"fixed"`
	} `json:"next"`
	DST []struct {
		Name  string   `json:"name"`
		TZ    string   `json:"tz"`
		Expr  string   `json:"expr"`
		Start string   `json:"start"`
		Runs  []string `json:"runs"`
	} `json:"dst"`
}

func loadCeleryCases(t testing.TB) *celeryCases {
	t.Helper()
	b, err := os.ReadFile("testdata/crontab_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var c celeryCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func loadLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

func mustParseCron(t testing.TB, expr string) *Schedule {
	t.Helper()
	c, err := Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// fieldValues returns field i of c as a sorted list.
func (c *Schedule) fieldValues(i int) []int {
	sets := [5]uint64{c.minute, uint64(c.hour), uint64(c.dom), uint64(c.month), uint64(c.dow)}
	var out []int
	for s := sets[i]; s != 0; s &= s - 1 {
		out = append(out, bits.TrailingZeros64(s))
	}
	return out
}

func fieldIndex(name string) int {
	for i, f := range cronFields {
		if f.name == name {
			return i
		}
	}
	panic(name)
}

// cronDeviations are field specs Celery 5.2.6's crontab_parser accepts by
// accident and Parse rejects (see Parse's doc).
var cronDeviations = map[string]string{
	"minute 1-2-3":      "text after a range is ignored by Celery",
	"minute 1-5/2/3":    "text after a step is ignored by Celery",
	"minute +5":         "Python int() takes a sign",
	"minute mon":        "Celery takes day names in every field",
	"hour sun-sat":      "Celery takes day names in every field",
	"day_of_month mon":  "Celery takes day names in every field",
	"month_of_year mon": "Celery takes day names in every field",
}

// TestParseCronCelery checks every field spec of the Celery table: the set
// Celery expands it to, or an error where Celery raises.
func TestParseCronCelery(t *testing.T) {
	cases := loadCeleryCases(t)
	if cases.Celery != "5.2.6" {
		t.Fatalf("table from Celery %s", cases.Celery)
	}
	seen := 0
	for _, pc := range cases.Parse {
		if pc.Spec == "" {
			continue // five whitespace-separated fields cannot hold it
		}
		fields := []string{"*", "*", "*", "*", "*"}
		i := fieldIndex(pc.Field)
		fields[i] = pc.Spec
		expr := strings.Join(fields, " ")
		c, err := Parse(expr)
		key := pc.Field + " " + pc.Spec
		if why := cronDeviations[key]; why != "" {
			seen++
			if pc.Error != "" {
				t.Errorf("%s: listed as a deviation but Celery rejects it: %s", key, pc.Error)
			}
			if err == nil {
				t.Errorf("%s: accepted (%v); want rejected (%s)", key, c.fieldValues(i), why)
			}
			continue
		}
		switch {
		case pc.Error != "" && err == nil:
			t.Errorf("%s: accepted as %v; Celery: %s", key, c.fieldValues(i), pc.Error)
		case pc.Error == "" && err != nil:
			t.Errorf("%s: %v; Celery: %v", key, err, pc.Values)
		case err == nil && !slices.Equal(c.fieldValues(i), pc.Values):
			t.Errorf("%s: %v; Celery: %v", key, c.fieldValues(i), pc.Values)
		}
	}
	if seen != 7 {
		t.Errorf("%d deviations seen in the table, want 7", seen)
	}
}

func TestParseCronErrors(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"0 3 * * mon-fry", `cron "0 3 * * mon-fry": day_of_week: unknown day "fry" (want 0-6 or sun..sat)`},
		{"", `cron "": want 5 fields (minute hour day_of_month month_of_year day_of_week), got 0`},
		{"* * * *", `cron "* * * *": want 5 fields (minute hour day_of_month month_of_year day_of_week), got 4`},
		{"* * * * * *", `cron "* * * * * *": want 5 fields (minute hour day_of_month month_of_year day_of_week), got 6`},
		{"60 * * * *", `cron "60 * * * *": minute: 60 is out of range (want 0-59)`},
		{"0-100 * * * *", `cron "0-100 * * * *": minute: 100 is out of range (want 0-59)`},
		{"* 24 * * *", `cron "* 24 * * *": hour: 24 is out of range (want 0-23)`},
		{"* * 0 * *", `cron "* * 0 * *": day_of_month: 0 is out of range (want 1-31)`},
		{"* * 31,32 * *", `cron "* * 31,32 * *": day_of_month: 32 is out of range (want 1-31)`},
		{"* * * 13 *", `cron "* * * 13 *": month_of_year: 13 is out of range (want 1-12)`},
		{"* * * jan *", `cron "* * * jan *": month_of_year: "jan" is not a number (want 1-12)`},
		{"* * * * 7", `cron "* * * * 7": day_of_week: 7 is out of range (want 0-6 or sun..sat; Sunday is 0)`},
		{"* * * * 12", `cron "* * * * 12": day_of_week: 12 is out of range (want 0-6 or sun..sat)`},
		{"* * * * mo", `cron "* * * * mo": day_of_week: unknown day "mo" (want 0-6 or sun..sat)`},
		{"* * * * 1,4,foo", `cron "* * * * 1,4,foo": day_of_week: unknown day "foo" (want 0-6 or sun..sat)`},
		{"*/0 * * * *", `cron "*/0 * * * *": minute: bad step 0 in "*/0" (want a whole number from 1)`},
		{"*/ * * * *", `cron "*/ * * * *": minute: bad step "" in "*/" (want a whole number from 1)`},
		{"1-5/x * * * *", `cron "1-5/x * * * *": minute: bad step "x" in "1-5/x" (want a whole number from 1)`},
		{"1-5/2/3 * * * *", `cron "1-5/2/3 * * * *": minute: bad step "2/3" in "1-5/2/3" (want a whole number from 1)`},
		{"1,,2 * * * *", `cron "1,,2 * * * *": minute: empty list element (want 0-59)`},
		{"1,2, * * * *", `cron "1,2, * * * *": minute: empty list element (want 0-59)`},
		{"-5 * * * *", `cron "-5 * * * *": minute: negative numbers are not supported ("-5"; want 0-59)`},
		{"5/2 * * * *", `cron "5/2 * * * *": minute: a step needs * or a range before it, as in */2 or a-b/2 (got "5/2")`},
		{"1- * * * *", `cron "1- * * * *": minute: range "1-" has no end (want 0-59)`},
		{"1-2-3 * * * *", `cron "1-2-3 * * * *": minute: cannot parse "2-3" (want 0-59)`},
		{"*x * * * *", `cron "*x * * * *": minute: cannot parse "*x" (want 0-59)`},
		{"+5 * * * *", `cron "+5 * * * *": minute: cannot parse "+5" (want 0-59)`},
		{"mon * * * *", `cron "mon * * * *": minute: "mon" is not a number (want 0-59)`},
		{"@daily", `cron "@daily": want 5 fields (minute hour day_of_month month_of_year day_of_week), got 1`},
	} {
		c, err := Parse(tc.expr)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error %s", tc.expr, c, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.expr, err, tc.want)
		}
		if _, ok := err.(*Error); !ok {
			t.Errorf("Parse(%q): error is %T, want *Error", tc.expr, err)
		}
	}
}

func TestCronString(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"* * * * *", "* * * * *"},
		{"*/15 * * * *", "*/15 * * * *"},
		{"0,15,30,45 */1 1-31 * 0-6", "*/15 * * * *"},
		{"30 2 * * mon-fri", "30 2 * * 1-5"},
		{"0 22-2 * * fri-mon", "0 0-2,22-23 * * 0-1,5-6"},
		{"55-5/3 0,8-17/2 */5 */3 *", "1,4,55,58 0,8,10,12,14,16 */5 */3 *"},
		{"0 0 1 1 *", "0 0 1 1 *"},
		{"*/100 * * * *", "0 * * * *"},
		{"  1   2\t3 4 sunday ", "1 2 3 4 0"},
		{"0 0 * * tuesday,sunday,fri", "0 0 * * 0,2,5"},
		{"0 0 2-30/2 2-12/2 */2", "0 0 2,4,6,8,10,12,14,16,18,20,22,24,26,28,30 2,4,6,8,10,12 */2"},
	} {
		c := mustParseCron(t, tc.expr)
		if got := c.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.expr, got, tc.want)
		}
		c2 := mustParseCron(t, c.String())
		if *c2 != *c {
			t.Errorf("%q: String %q parses to another schedule", tc.expr, c.String())
		}
	}
}

// TestCronNextCelery checks Next against Celery's next run for Celery's own
// test cases and 1000 random expressions, times and zones.
func TestCronNextCelery(t *testing.T) {
	cases := loadCeleryCases(t)
	if len(cases.Next) < 1000 {
		t.Fatalf("%d next cases", len(cases.Next))
	}
	bugs := 0
	for _, nc := range cases.Next {
		c := mustParseCron(t, nc.Expr)
		loc := loadLoc(t, nc.TZ)
		after := mustTime(t, nc.After)
		got := c.Next(after, loc)
		name := fmt.Sprintf("%q in %s after %s", nc.Expr, nc.TZ, nc.After)
		if nc.Fixed == nil {
			if !got.IsZero() {
				t.Errorf("%s: %s; Celery raises RuntimeError (never)", name, got.Format(time.RFC3339))
			}
			continue
		}
		want := mustTime(t, *nc.Fixed)
		if !got.Equal(want) {
			t.Errorf("%s: %s, want %s", name, got.Format(time.RFC3339), want.Format(time.RFC3339))
		}
		if got.Location() != loc {
			t.Errorf("%s: result in %v, want %v", name, got.Location(), loc)
		}
		if *nc.Celery != *nc.Fixed {
			// Celery 5.2.6's midnight-UTC bug: only west of UTC, only with
			// a restricted day_of_month or month_of_year, and it skips.
			bugs++
			f := strings.Fields(nc.Expr)
			_, off := after.In(loc).Zone()
			if off >= 0 || (f[2] == "*" && f[3] == "*") || !mustTime(t, *nc.Celery).After(want) {
				t.Errorf("%s: Celery 5.2.6 says %s, taskgen %s: not the known bug", name, *nc.Celery, *nc.Fixed)
			}
		}
	}
	if bugs == 0 {
		t.Error("the table shows none of 5.2.6's midnight-UTC skips; the deliberate case is gone")
	}
}

// cronDSTCases are Celery 5.2.6's runs across the 2023 transitions: each run
// is Next of the one before (Celery beat's last_run_at), starting from
// start. TestCronDSTTable checks them against the generated table.
var cronDSTCases = []struct {
	name, tz, expr, start string
	runs                  []string
}{
	// America/New_York: 2023-03-12 02:00 EST -> 03:00 EDT; 2023-11-05
	// 02:00 EDT -> 01:00 EST.
	{"ny_spring_daily_0230", "America/New_York", "30 2 * * *", "2023-03-10T02:30:00-05:00",
		[]string{"2023-03-11T02:30:00-05:00", "2023-03-12T03:00:00-04:00", "2023-03-13T02:30:00-04:00", "2023-03-14T02:30:00-04:00"}},
	{"ny_spring_hourly", "America/New_York", "0 * * * *", "2023-03-12T00:00:00-05:00",
		[]string{"2023-03-12T01:00:00-05:00", "2023-03-12T03:00:00-04:00", "2023-03-12T04:00:00-04:00", "2023-03-12T05:00:00-04:00"}},
	{"ny_spring_quarter", "America/New_York", "*/15 * * * *", "2023-03-12T01:30:00-05:00",
		[]string{"2023-03-12T01:45:00-05:00", "2023-03-12T03:00:00-04:00", "2023-03-12T03:15:00-04:00", "2023-03-12T03:30:00-04:00", "2023-03-12T03:45:00-04:00"}},
	{"ny_fall_daily_0230", "America/New_York", "30 2 * * *", "2023-11-04T02:30:00-04:00",
		[]string{"2023-11-05T02:30:00-05:00", "2023-11-06T02:30:00-05:00", "2023-11-07T02:30:00-05:00"}},
	{"ny_fall_daily_0130", "America/New_York", "30 1 * * *", "2023-11-04T01:30:00-04:00",
		[]string{"2023-11-05T01:30:00-04:00", "2023-11-06T01:30:00-05:00", "2023-11-07T01:30:00-05:00"}},
	{"ny_fall_hourly", "America/New_York", "0 * * * *", "2023-11-05T00:00:00-04:00",
		[]string{"2023-11-05T01:00:00-04:00", "2023-11-05T02:00:00-05:00", "2023-11-05T03:00:00-05:00", "2023-11-05T04:00:00-05:00"}},
	{"ny_fall_quarter", "America/New_York", "*/15 * * * *", "2023-11-05T01:30:00-04:00",
		[]string{"2023-11-05T01:45:00-04:00", "2023-11-05T02:00:00-05:00", "2023-11-05T02:15:00-05:00", "2023-11-05T02:30:00-05:00"}},
	{"ny_fall_quarter_2nd", "America/New_York", "*/15 * * * *", "2023-11-05T01:30:00-05:00",
		[]string{"2023-11-05T01:45:00-05:00", "2023-11-05T02:00:00-05:00", "2023-11-05T02:15:00-05:00", "2023-11-05T02:30:00-05:00"}},
	{"ny_fall_daily_0130_2nd", "America/New_York", "30 1 * * *", "2023-11-05T01:10:00-05:00",
		[]string{"2023-11-05T01:30:00-05:00", "2023-11-06T01:30:00-05:00"}},
	// Europe/Berlin: 2023-03-26 02:00 CET -> 03:00 CEST; 2023-10-29
	// 03:00 CEST -> 02:00 CET.
	{"berlin_spring_daily_0230", "Europe/Berlin", "30 2 * * *", "2023-03-25T02:30:00+01:00",
		[]string{"2023-03-26T03:00:00+02:00", "2023-03-27T02:30:00+02:00", "2023-03-28T02:30:00+02:00"}},
	{"berlin_spring_hourly", "Europe/Berlin", "0 * * * *", "2023-03-26T00:00:00+01:00",
		[]string{"2023-03-26T01:00:00+01:00", "2023-03-26T03:00:00+02:00", "2023-03-26T04:00:00+02:00", "2023-03-26T05:00:00+02:00"}},
	{"berlin_fall_daily_0230", "Europe/Berlin", "30 2 * * *", "2023-10-28T02:30:00+02:00",
		[]string{"2023-10-29T02:30:00+02:00", "2023-10-30T02:30:00+01:00", "2023-10-31T02:30:00+01:00"}},
	{"berlin_fall_hourly", "Europe/Berlin", "0 * * * *", "2023-10-29T01:00:00+02:00",
		[]string{"2023-10-29T02:00:00+02:00", "2023-10-29T03:00:00+01:00", "2023-10-29T04:00:00+01:00", "2023-10-29T05:00:00+01:00"}},
	{"berlin_fall_quarter", "Europe/Berlin", "*/15 * * * *", "2023-10-29T02:30:00+02:00",
		[]string{"2023-10-29T02:45:00+02:00", "2023-10-29T03:00:00+01:00", "2023-10-29T03:15:00+01:00", "2023-10-29T03:30:00+01:00"}},
}

func TestCronDST(t *testing.T) {
	for _, tc := range cronDSTCases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParseCron(t, tc.expr)
			loc := loadLoc(t, tc.tz)
			at := mustTime(t, tc.start)
			for i, want := range tc.runs {
				at = c.Next(at, loc)
				if got := at.Format(time.RFC3339); got != want {
					t.Fatalf("run %d: %s, want %s", i+1, got, want)
				}
			}
		})
	}
}

// TestCronDSTTable checks that cronDSTCases is what Celery computed.
func TestCronDSTTable(t *testing.T) {
	cases := loadCeleryCases(t)
	if len(cases.DST) != len(cronDSTCases) {
		t.Fatalf("%d DST runs in the table, %d here", len(cases.DST), len(cronDSTCases))
	}
	for i, d := range cases.DST {
		tc := cronDSTCases[i]
		if d.Name != tc.name || d.TZ != tc.tz || d.Expr != tc.expr || d.Start != tc.start || !slices.Equal(d.Runs, tc.runs) {
			t.Errorf("DST case %d: Celery's table has %+v", i, d)
		}
	}
}

func TestCronNextImpossible(t *testing.T) {
	after := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, expr := range []string{"0 0 30 2 *", "* * 31 4 *", "* * 31 2,4,6,9,11 *", "0 0 30,31 2 mon"} {
		c := mustParseCron(t, expr)
		if got := c.Next(after, nil); !got.IsZero() {
			t.Errorf("%q: Next = %v, want the zero time", expr, got)
		}
	}
	// Possible but rare: 29 February on a Monday (2044), at Feb 29 of
	// leap years only, and the 31st of months that have one.
	for _, tc := range []struct{ expr, want string }{
		{"0 0 29 2 mon", "2044-02-29T00:00:00Z"},
		{"30 14 29 2 *", "2024-02-29T14:30:00Z"},
		{"0 0 31 2-6 *", "2024-03-31T00:00:00Z"},
		{"0 12 13 * fri", "2024-09-13T12:00:00Z"},
	} {
		c := mustParseCron(t, tc.expr)
		if got := c.Next(after, nil).Format(time.RFC3339); got != tc.want {
			t.Errorf("%q: Next = %s, want %s", tc.expr, got, tc.want)
		}
	}
}

func TestCronNextDefaults(t *testing.T) {
	c := mustParseCron(t, "*/15 * * * *")
	ny := loadLoc(t, "America/New_York")
	after := time.Date(2024, 5, 1, 10, 7, 59, 999, ny)
	got := c.Next(after, nil)
	if want := time.Date(2024, 5, 1, 14, 15, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Next(nil loc) = %v, want %v in UTC", got, want)
	}
	// Strictly after: a slot equal to after is not returned.
	slot := time.Date(2024, 5, 1, 10, 15, 0, 0, ny)
	if got := c.Next(slot, ny); !got.Equal(slot.Add(15 * time.Minute)) {
		t.Errorf("Next(slot) = %v, want the slot after", got)
	}
	if got := c.Next(slot.Add(-time.Nanosecond), ny); !got.Equal(slot) {
		t.Errorf("Next(slot-1ns) = %v, want %v", got, slot)
	}
}

// refNext is a slow reference: it scans the wall clock for the first slot W
// after after, then the instants for the first whose wall clock reads W or
// later (Celery's rule).
func refNext(c *Schedule, after time.Time, loc *time.Location, years int) time.Time {
	a := after.In(loc)
	w := time.Date(a.Year(), a.Month(), a.Day(), a.Hour(), a.Minute(), 0, 0, time.UTC).Add(time.Minute)
	limit := w.AddDate(years, 0, 0)
	in := func(set uint64, v int) bool { return set&(1<<v) != 0 }
	for ; w.Before(limit); w = w.Add(time.Minute) {
		if !in(uint64(c.month), int(w.Month())) || !in(uint64(c.dom), w.Day()) || !in(uint64(c.dow), int(w.Weekday())) {
			w = time.Date(w.Year(), w.Month(), w.Day()+1, 0, -1, 0, 0, time.UTC)
			continue
		}
		if !in(uint64(c.hour), w.Hour()) {
			w = time.Date(w.Year(), w.Month(), w.Day(), w.Hour()+1, -1, 0, 0, time.UTC)
			continue
		}
		if in(c.minute, w.Minute()) {
			break
		}
	}
	if !w.Before(limit) {
		return time.Time{}
	}
	wall := func(t time.Time) time.Time {
		l := t.In(loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
	}
	t := time.Unix(w.Unix()-30*3600, 0)
	if !t.After(after) {
		t = after.Truncate(time.Minute).Add(time.Minute)
	}
	for wall(t).Before(w) {
		t = t.Add(time.Minute)
	}
	return t.In(loc)
}

func randCronField(r *rand.Rand, lo, hi int, names bool) string {
	num := func() string {
		v := lo + r.IntN(hi-lo+1)
		if names && r.IntN(3) == 0 {
			return []string{"Sun", "monday", "TUE", "wed", "thurs", "fri", "sat"}[v]
		}
		return fmt.Sprint(v)
	}
	if r.IntN(3) == 0 {
		return "*"
	}
	var parts []string
	for range 1 + r.IntN(3) {
		switch r.IntN(4) {
		case 0:
			parts = append(parts, num())
		case 1:
			parts = append(parts, num()+"-"+num())
		case 2:
			parts = append(parts, fmt.Sprintf("*/%d", 1+r.IntN(hi-lo+1)))
		default:
			parts = append(parts, fmt.Sprintf("%s-%s/%d", num(), num(), 1+r.IntN(5)))
		}
	}
	return strings.Join(parts, ",")
}

func randCron(r *rand.Rand) string {
	f := []string{randCronField(r, 0, 59, false), randCronField(r, 0, 23, false), "*", "*", "*"}
	if r.IntN(2) == 0 {
		f[2] = randCronField(r, 1, 31, false)
	}
	if r.IntN(3) == 0 {
		f[3] = randCronField(r, 1, 12, false)
	}
	if r.IntN(2) == 0 {
		f[4] = randCronField(r, 0, 6, true)
	}
	return strings.Join(f, " ")
}

// TestCronNextReference compares Next with refNext for random expressions,
// zones (30-minute DST in Australia/Lord_Howe, +05:45, no DST) and times,
// and chains of runs through DST transitions.
func TestCronNextReference(t *testing.T) {
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
		"Asia/Kathmandu", "America/Santiago", "Pacific/Apia", "America/Los_Angeles"}
	locs := make([]*time.Location, len(zones))
	for i, z := range zones {
		locs[i] = loadLoc(t, z)
	}
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		expr := randCron(r)
		c := mustParseCron(t, expr)
		loc := locs[r.IntN(len(locs))]
		after := time.Unix(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix()+r.Int64N(10*365*86400), 0)
		if r.IntN(2) == 0 {
			after = after.Add(time.Duration(r.Int64N(int64(time.Minute))))
		}
		for run := 0; run < 3; run++ {
			got := c.Next(after, loc)
			want := refNext(c, after, loc, 50)
			if !got.Equal(want) {
				t.Fatalf("%q in %v after %s: Next %s, reference %s", expr, loc, after.In(loc).Format(time.RFC3339Nano), got.Format(time.RFC3339), want.Format(time.RFC3339))
			}
			if got.IsZero() {
				break
			}
			if !got.After(after) {
				t.Fatalf("%q after %s: Next %s not after", expr, after, got)
			}
			after = got
		}
	}
}

func TestWeekday(t *testing.T) {
	for d := time.Date(-800, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 3000; d = d.AddDate(0, 0, 13) {
		if got := weekday(d.Year(), d.Month(), d.Day()); got != int(d.Weekday()) {
			t.Fatalf("weekday(%v) = %d, want %d", d, got, d.Weekday())
		}
	}
}

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{
		"* * * * *", "*/15 * * * *", "0 3 * * mon-fri", "0 3 * * mon-fry",
		"55-5/3 22-2/2 25-5 11-2 fri-mon", "0 0 30 2 *", "1,2,3 4-5 */7 2-12/2 Sunday",
		"*/0 * * * *", "1-2-3 * * * *", "-1 * * * *", "60 * * * *", "* * * * 7",
		"0 0 29 2 mon", "*/100 * * * *", "0,,1 * * * *", "\t1 2 3 4 5\n",
	} {
		f.Add(s)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	after := time.Date(2023, 11, 4, 23, 59, 30, 0, ny)
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := Parse(expr)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse(%q) returned a Schedule and %v", expr, err)
			}
			if !strings.HasPrefix(err.Error(), "cron ") {
				t.Fatalf("Parse(%q): %v", expr, err)
			}
			return
		}
		s := c.String()
		c2, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q: %v", expr, s, err)
		}
		if *c2 != *c {
			t.Fatalf("Parse(%q).String() = %q parses to another schedule", expr, s)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("String not stable: %q then %q", s, s2)
		}
		if next := c.Next(after, ny); !next.IsZero() && !next.After(after) {
			t.Fatalf("%q: Next(%v) = %v", expr, after, next)
		}
	})
}

func BenchmarkCronNext(b *testing.B) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		b.Fatal(err)
	}
	for _, expr := range []string{
		"* * * * *",
		"*/15 9-17 * * mon-fri",
		"30 2 * * *",
		"0 12 13 * fri",
		"0 0 29 2 mon",
	} {
		c, err := Parse(expr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.ReplaceAll(expr, " ", "_"), func(b *testing.B) {
			at := time.Date(2023, 3, 1, 0, 0, 0, 0, ny)
			for b.Loop() {
				next := c.Next(at, ny)
				if next.IsZero() {
					b.Fatal("zero")
				}
				at = next
				if at.Year() >= 2050 {
					at = time.Date(2023, 3, 1, 0, 0, 0, 0, ny)
				}
			}
		})
	}
}
