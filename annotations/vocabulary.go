package annotations

// OptionDoc documents one directive.
type OptionDoc struct {
	Name    string // option name, as in //task:<Name>
	Syntax  string // the directive's form, e.g. "//task:queue NAME"
	Default string // what an undecorated task gets
	Doc     string // one paragraph, plain text
}

// Vocabulary lists every option, in a stable order: identity and routing,
// retries, limits, delivery, periodic sending. It is closed: any other option name is an error.
// The README's directive reference and error messages are made from it.
var Vocabulary = []OptionDoc{
	{
		Name:    "name",
		Syntax:  "//task:name NAME",
		Default: "<package>.<snake_case(function)>",
		Doc: "The Celery task name: the message's task header, which workers in any language use to find the handler. " +
			"Letters, digits and _ . : - only. Set it to match a name Python code already uses, " +
			"or to keep the name stable when the Go function is renamed.",
	},
	{
		Name:    "queue",
		Syntax:  "//task:queue NAME",
		Default: "celery",
		Doc: "The queue the task is sent to (the routing key on Celery's default direct exchange); " +
			"a worker runs it when the queue is among its queues. No spaces. " +
			"runtime.Queue(name) overrides it for one call.",
	},
	{
		Name:    "autoretry_for",
		Syntax:  "//task:autoretry_for ERROR[, ERROR...]",
		Default: "none (no automatic retry)",
		Doc: "Errors that retry the task automatically, as Celery's autoretry_for. Each element, written [*]Name or [*]pkg.Name " +
			"and resolved in the function's file scope, is an error type (*HTTPError, *net.OpError; matched with errors.As) " +
			"or a sentinel error value (io.ErrUnexpectedEOF; matched with errors.Is). " +
			"Retries count against max_retries and wait as retry_backoff or default_retry_delay say.",
	},
	{
		Name:    "dont_autoretry_for",
		Syntax:  "//task:dont_autoretry_for ERROR[, ERROR...]",
		Default: "none",
		Doc: "Errors never retried automatically even when they also match autoretry_for, " +
			"for example a permanent error that wraps a temporary one. Same element syntax as autoretry_for.",
	},
	{
		Name:    "retry_backoff",
		Syntax:  "//task:retry_backoff [true|false|DURATION]",
		Default: "false",
		Doc: "Exponential backoff between automatic retries: retry n (counting from 0) waits factor×2^n, " +
			"capped by retry_backoff_max and spread by retry_jitter. Bare or true means a factor of 1s, as in Celery; " +
			"a duration or whole seconds sets the factor; false or 0 turns backoff off, so retries wait default_retry_delay.",
	},
	{
		Name:    "retry_backoff_max",
		Syntax:  "//task:retry_backoff_max DURATION",
		Default: "10m (600 s)",
		Doc:     "The longest wait retry_backoff may produce.",
	},
	{
		Name:    "retry_jitter",
		Syntax:  "//task:retry_jitter [true|false]",
		Default: "true",
		Doc: "Full jitter for retry_backoff: each wait is drawn at random between 0 and the computed backoff, " +
			"so tasks failing together do not retry together. Bare means true.",
	},
	{
		Name:    "max_retries",
		Syntax:  "//task:max_retries N|none",
		Default: "3",
		Doc: "How many times the task is retried (automatically or with runtime.Retry) before it fails for good. " +
			"0 never retries; none (Celery's None) retries without limit and is stored as -1.",
	},
	{
		Name:    "default_retry_delay",
		Syntax:  "//task:default_retry_delay DURATION",
		Default: "3m (180 s)",
		Doc:     "The wait before a retry when retry_backoff is off and runtime.Retry gives no countdown.",
	},
	{
		Name:    "time_limit",
		Syntax:  "//task:time_limit DURATION",
		Default: "none",
		Doc: "Hard limit on one run: when it passes, the worker stops waiting for the run and records it as failed " +
			"(Celery's TimeLimitExceeded). Sent in the message's timelimit header, so a Python worker enforces it too.",
	},
	{
		Name:    "soft_time_limit",
		Syntax:  "//task:soft_time_limit DURATION",
		Default: "none",
		Doc: "Soft limit on one run: when it passes, the task's context is cancelled so the function can stop cleanly " +
			"(Celery's SoftTimeLimitExceeded). Must be less than time_limit when both are set.",
	},
	{
		Name:    "rate_limit",
		Syntax:  "//task:rate_limit N[/s|/m|/h]",
		Default: "none",
		Doc: "The most runs of this task a worker starts per second (/s), minute (/m) or hour (/h); a bare number is per second, " +
			"as in Celery. Like Celery's, the limit is per worker, not global. N must be at least 1.",
	},
	{
		Name:    "expires",
		Syntax:  "//task:expires DURATION",
		Default: "never",
		Doc: "A message not started within this time after it was sent is discarded as REVOKED instead of run. " +
			"Sent in the message's expires header; runtime.Expires(t) overrides it for one call.",
	},
	{
		Name:    "unique",
		Syntax:  "//task:unique DURATION",
		Default: "not unique",
		Doc: "While a call is pending or running, a second Delay with the same arguments returns an error matching " +
			"runtime.ErrDuplicate (a *runtime.DuplicateError with the first call's id) instead of enqueuing. The lock, keyed by " +
			"the task name and the encoded arguments, is released when the task ends (success, failure after its last retry, " +
			"revoke, dead letter; not on a retry) or when DURATION passes. Needs a result backend that holds locks (redis://, " +
			"memory://); runtime.Unique(key, ttl) sets the key and time for one call.",
	},
	{
		Name:    "acks_late",
		Syntax:  "//task:acks_late [true|false]",
		Default: "false",
		Doc: "Acknowledge the message after the run ends instead of when it starts, so a run cut short by a dying worker " +
			"is delivered again. The task must then be safe to run twice. Bare means true.",
	},
	{
		Name:    "ignore_result",
		Syntax:  "//task:ignore_result [true|false]",
		Default: "false",
		Doc: "Do not store the task's state and return value in the result backend, saving a write per task; " +
			"nothing can then wait for its result. Bare means true.",
	},
	{
		Name:    "priority",
		Syntax:  "//task:priority N",
		Default: "none (the broker's default)",
		Doc: "The default message priority, 0..255 as in Celery. Its meaning is the broker's: RabbitMQ needs a queue " +
			"declared with x-max-priority and runs higher first; Redis uses 0..9 and runs lower first. " +
			"runtime.Priority(n) overrides it for one call.",
	},
	{
		Name:    "schedule",
		Syntax:  scheduleSyntax,
		Default: "none (not periodic)",
		Doc: "Sends the task periodically, as an entry of Celery beat's schedule: every DURATION (at least 1ms), on a fixed grid of slots " +
			"whose phase within the interval comes from the entry's name, so that entries with one interval spread out, unless " +
			"offset=DURATION sets it (offset=0: every 15m runs at :00, :15, :30 and :45); or cron \"EXPR\", a quoted crontab expression " +
			"(minute hour day_of_month month_of_year day_of_week, with Celery's crontab semantics) read in UTC or in the IANA time zone tz=ZONE. " +
			"Repeatable. The generated Schedules() returns one beat.Entry per directive, for beat.New(app, Schedules()...). " +
			"name=NAME sets the entry's name, its key in the schedule's state; by default it is the task's name, with #2, #3... " +
			"appended for the second, third... schedule of the task without name=. " +
			"A scheduled task takes no arguments but its context.",
	},
}

// docOf returns the OptionDoc of a known option.
func docOf(name string) (OptionDoc, bool) {
	for _, d := range Vocabulary {
		if d.Name == name {
			return d, true
		}
	}
	return OptionDoc{}, false
}

// optionNames lists the names of the Vocabulary, in its order.
func optionNames() []string {
	names := make([]string, len(Vocabulary))
	for i, d := range Vocabulary {
		names[i] = d.Name
	}
	return names
}
