package beat

import (
	"fmt"
	"time"
)

// TimeZoneName sets the time zone a [Cron] entry's fields are read in, by
// its IANA name ("Europe/Paris"), loaded with [time.LoadLocation] when the
// option is made. It is [TimeZone] for code that knows the zone by name, as
// the code taskgen generates for //task:schedule cron "..." tz=ZONE does.
//
// A name that does not load does not panic and does not fall back to
// another zone: the entry is invalid, so [New]'s scheduler fails in
// [Scheduler.Run] and [Scheduler.Validate] with the error. A program
// running where the system has no time zone database (a scratch container)
// can embed one by importing time/tzdata.
func TimeZoneName(name string) EntryOption {
	loc, err := time.LoadLocation(name)
	return func(e *Entry) {
		if err != nil {
			e.err = fmt.Errorf("beat: entry %q: time zone: %w (import _ \"time/tzdata\" to embed the time zone database)", e.name, err)
			return
		}
		e.loc = loc
	}
}
