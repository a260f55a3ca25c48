// Package annotations parses the //task: directives that make a Go function a
// Celery task, into typed, validated [Options] with positions.
//
// It owns the directive grammar and its closed [Vocabulary]; it knows nothing
// of types. Whether a function's signature can be a task and whether an
// autoretry_for name exists is decided by the generator with go/types.
//
// # Directives
//
// A directive is a line comment of the standard Go form
//
//	//task:option value
//
// with no space between "//" and "task:", one option per line, in the doc
// comment of the declaration (the comment group that ends on the line
// directly above it). Lines are read from the comment's list with
// [go/ast.ParseDirective], so directives need not follow the prose and are
// not shown by go doc:
//
//	// sendWelcomeEmail posts the welcome email through the provider's HTTP API.
//	//
//	//task:name signup.send_welcome_email
//	//task:queue emails
//	//task:autoretry_for *HTTPError, io.ErrUnexpectedEOF
//	//task:retry_backoff
//	//task:retry_backoff_max 10m
//	//task:max_retries 5
//	func sendWelcomeEmail(ctx context.Context, email string) (string, error) {
//
// The value is the rest of the line, leading and trailing spaces removed.
// Options taking one value accept it bare or as a Go quoted string
// ("emails" or `emails`); autoretry_for and dont_autoretry_for take a
// comma-separated list; schedule takes a kind, its value and options (see
// Schedules below). Option names are lower case and each may appear once,
// but for schedule, which may be repeated.
//
// # Where directives go
//
// Directives are read from the doc comment of:
//
//   - a function declaration: a task implemented in Go;
//   - a defined func type, type X func(ctx context.Context, ...) (R, error):
//     a stub for a task implemented elsewhere, for example in Python. The doc
//     comment may sit above "type X" or, in a grouped type declaration,
//     above the name X.
//
// A directive anywhere else is an error: on a method (tasks are plain
// functions), separated from its function by a blank line, inside a function
// body, on a var, const, struct type or type alias, at the end of a code
// line, or floating on its own. So is a directive written with a space,
// "// task:queue emails", which Go does not treat as a directive at all.
//
// # Values
//
// Durations are Go durations (90s, 1.5s, 10m, 1h30m) or a bare whole number
// of seconds, as Celery writes them (600 is 10m); they are never negative.
// Booleans are true or false, and a bare boolean option means true.
// Integers are decimal digits. A rate limit is N/s, N/m or N/h, or a bare N
// meaning per second, with N at least 1. An autoretry_for element is
// [*]Name or [*]pkg.Name: a Go error type (matched with errors.As) or a
// sentinel error value (matched with errors.Is) as the function's file would
// spell it.
//
// # Options
//
// The vocabulary follows Celery's task options, with Celery's defaults
// ([Defaults]):
//
//	name                 Celery task name                 default <package>.<snake_case(function)>
//	queue                queue to send to                 default celery
//	autoretry_for        errors that retry automatically  default none
//	dont_autoretry_for   errors that never do             default none
//	retry_backoff        exponential backoff factor       default false (bare: 1s)
//	retry_backoff_max    longest backoff                  default 10m
//	retry_jitter         randomise backoff                default true
//	max_retries          retries before failing, or none  default 3
//	default_retry_delay  wait when backoff is off         default 3m
//	time_limit           hard limit per run               default none
//	soft_time_limit      soft limit, below time_limit     default none
//	rate_limit           N/s, N/m or N/h per worker       default none
//	expires              discard if not started within    default never
//	unique               refuse duplicate calls for       default not unique
//	acks_late            acknowledge after the run        default false
//	ignore_result        store no result                  default false
//	priority             0..255                           default broker's
//	schedule             send periodically (repeatable)   default none
//
// [Vocabulary] documents each one; the README's reference is made from it.
//
// # Schedules
//
// A schedule directive makes the task periodic, as an entry of Celery beat's
// schedule ([Schedule]):
//
//	//task:schedule every 15m
//	//task:schedule cron "0 3 * * mon-fri" tz=Europe/Paris name=weekday-report
//
// every takes a duration of at least a millisecond, in whole milliseconds;
// cron a crontab expression as a Go quoted string, whose fields the
// generator checks with the runtime's crontab parser. The optional
// trailing options are name=NAME, the entry's name (letters, digits and
// _ . : -); for cron, tz=ZONE, an IANA time zone the fields are read in
// (default UTC); for every, offset=DURATION, the phase of the slots within
// the interval (default: derived from the entry's name; offset=0 puts them
// on the clock). A task may have several schedules, but not the same one
// twice.
//
// # Errors
//
// [ParseFile] reports every problem of a file in one call, sorted, each an
// [Error] printed as file:line:col: message, positioned at the directive or at
// the offending value or list element, with a hint where one helps:
//
//	x.go:12:8: unknown option "retry_backof" (did you mean retry_backoff?)
//	x.go:13:1: duplicate option "queue" (previous at x.go:11:1)
//	x.go:14:17: max_retries: "x" is not a non-negative integer or none
//	x.go:20:1: //task: directive is not attached to a function declaration (remove the blank line between the directive and func send)
//	x.go:30:1: directive has a space after "//"; write //task:queue
//
// [Error] is taskgen's one positioned error type: the generator reports its
// own errors as Errors too, with [Error.Task] set, collected in an
// [ErrorList]. [Nearest] finds the name a misspelling most likely meant,
// for the "did you mean" hints of both.
package annotations
