// Package schedule has //task:schedule directives taskgen rejects: a
// malformed one, crontab expressions the runtime's parser rejects, a
// scheduled task with arguments, entry names used twice, and Schedules
// declared by hand. Good schedules report nothing.
package schedule

import "context"

//task:schedule every 15m
//task:schedule cron "0 3 * * mon-fri" tz=Europe/Paris name=weekday-report
//task:schedule every 1h offset=0
func fine(ctx context.Context) (int, error) { return 0, nil }

// want +4 `^task crontabs: schedule: cron "0 24 \* \* \*": hour: 24 is out of range \(want 0-23\)$`
// want +4 `^task crontabs: schedule: cron "0 0 30 2 \*" never fires`
// want +4 `^task crontabs: schedule: quote the crontab expression: //task:schedule cron "0 3 \* \* \*"$`
//
//task:schedule cron "0 24 * * *"
//task:schedule cron "0 0 30 2 *"
//task:schedule cron 0 3 * * *
func crontabs(ctx context.Context) error { return nil }

// want +2 `^task digest: schedule: digest takes arguments \(userID int64\), but a schedule sends none`
//
//task:schedule every 1h
func digest(ctx context.Context, userID int64) error { return nil }

// want +2 `^task again: schedule: entry name "weekday-report" is already the name of a schedule of task fine \(at schedule.go:10:56\): set a distinct name=$`
//
//task:schedule every 1m name=weekday-report
func again(ctx context.Context) error { return nil }

// Schedules is written by hand.
func Schedules() {} // want `^func Schedules is declared here, but taskgen generates Schedules in tasks_gen.go: rename this declaration$`
