package annotations_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/annotations"
)

// parseDoc parses lines as the doc comment of a function (the first line is
// line 3 of x.go) and returns the Options and errors of [annotations.Parse].
func parseDoc(t *testing.T, lines ...string) (annotations.Options, []annotations.Error) {
	t.Helper()
	src := "package p\n\n" + strings.Join(lines, "\n") + "\nfunc f() {}\n"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.ParseComments)
	require.NoError(t, err)
	fd := f.Decls[0].(*ast.FuncDecl)
	require.NotNil(t, fd.Doc)
	return annotations.Parse(fset, fd.Doc)
}

func errStrings(errs []annotations.Error) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// ref builds an expected ErrorRef at line 3 of x.go.
func ref(expr string, col int) annotations.ErrorRef {
	r := annotations.ErrorRef{Expr: expr, Pos: token.Position{Filename: "x.go", Line: 3, Column: col}}
	s, pointer := strings.CutPrefix(expr, "*")
	r.Pointer = pointer
	if pkg, ident, ok := strings.Cut(s, "."); ok {
		r.Pkg, r.Ident = pkg, ident
	} else {
		r.Ident = s
	}
	return r
}

// withoutOffsets clears what tests do not spell out: byte offsets of
// ErrorRef positions (line:col is checked) and Set (checked separately).
func withoutOffsets(o annotations.Options) annotations.Options {
	clean := func(refs []annotations.ErrorRef) []annotations.ErrorRef {
		out := make([]annotations.ErrorRef, len(refs))
		for i, r := range refs {
			r.Pos.Offset = 0
			out[i] = r
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	o.AutoretryFor = clean(o.AutoretryFor)
	o.DontAutoretryFor = clean(o.DontAutoretryFor)
	o.Set = nil
	return o
}

func TestParse_Options(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  func(o *annotations.Options)
	}{
		{"no directives", []string{"// f does things."}, func(o *annotations.Options) {}},
		{"name", []string{"//task:name signup.send_welcome_email"}, func(o *annotations.Options) { o.Name = "signup.send_welcome_email" }},
		{"name all characters", []string{"//task:name a-B:c_D.9"}, func(o *annotations.Options) { o.Name = "a-B:c_D.9" }},
		{"name quoted", []string{`//task:name "x.y"`}, func(o *annotations.Options) { o.Name = "x.y" }},
		{"name after prose", []string{"// f does things.", "//", "//task:name x"}, func(o *annotations.Options) { o.Name = "x" }},
		{"queue", []string{"//task:queue emails"}, func(o *annotations.Options) { o.Queue = "emails" }},
		{"queue raw quoted", []string{"//task:queue `emails`"}, func(o *annotations.Options) { o.Queue = "emails" }},
		{"queue trailing spaces", []string{"//task:queue   emails  "}, func(o *annotations.Options) { o.Queue = "emails" }},
		{"autoretry_for", []string{"//task:autoretry_for *HTTPError, io.ErrUnexpectedEOF"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("*HTTPError", 22), ref("io.ErrUnexpectedEOF", 34)}
		}},
		{"autoretry_for one qualified pointer", []string{"//task:autoretry_for *net.OpError"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("*net.OpError", 22)}
		}},
		{"autoretry_for no spaces", []string{"//task:autoretry_for A,B,ErrC"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("A", 22), ref("B", 24), ref("ErrC", 26)}
		}},
		{"autoretry_for wide spaces", []string{"//task:autoretry_for A ,   B"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("A", 22), ref("B", 28)}
		}},
		{"autoretry_for pointer and value of one type", []string{"//task:autoretry_for *E, E"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("*E", 22), ref("E", 26)}
		}},
		{"autoretry_for unicode", []string{"//task:autoretry_for ÉrrØ, x.Ÿ"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("ÉrrØ", 22), ref("x.Ÿ", 30)}
		}},
		{"dont_autoretry_for", []string{"//task:autoretry_for error", "//task:dont_autoretry_for *PermanentError"}, func(o *annotations.Options) {
			o.AutoretryFor = []annotations.ErrorRef{ref("error", 22)}
			r := ref("*PermanentError", 27)
			r.Pos.Line = 4
			o.DontAutoretryFor = []annotations.ErrorRef{r}
		}},
		{"retry_backoff bare", []string{"//task:retry_backoff"}, func(o *annotations.Options) { o.RetryBackoff = time.Second }},
		{"retry_backoff true", []string{"//task:retry_backoff true"}, func(o *annotations.Options) { o.RetryBackoff = time.Second }},
		{"retry_backoff false", []string{"//task:retry_backoff false"}, func(o *annotations.Options) {}},
		{"retry_backoff duration", []string{"//task:retry_backoff 1.5s"}, func(o *annotations.Options) { o.RetryBackoff = 1500 * time.Millisecond }},
		{"retry_backoff seconds", []string{"//task:retry_backoff 5"}, func(o *annotations.Options) { o.RetryBackoff = 5 * time.Second }},
		{"retry_backoff zero", []string{"//task:retry_backoff 0"}, func(o *annotations.Options) {}},
		{"retry_backoff_max", []string{"//task:retry_backoff_max 10m"}, func(o *annotations.Options) { o.RetryBackoffMax = 10 * time.Minute }},
		{"retry_backoff_max seconds", []string{"//task:retry_backoff_max 30"}, func(o *annotations.Options) { o.RetryBackoffMax = 30 * time.Second }},
		{"retry_jitter bare", []string{"//task:retry_jitter"}, func(o *annotations.Options) {}},
		{"retry_jitter false", []string{"//task:retry_jitter false"}, func(o *annotations.Options) { o.RetryJitter = false }},
		{"retry_jitter true", []string{"//task:retry_jitter true"}, func(o *annotations.Options) {}},
		{"max_retries", []string{"//task:max_retries 5"}, func(o *annotations.Options) { o.MaxRetries = 5 }},
		{"max_retries zero", []string{"//task:max_retries 0"}, func(o *annotations.Options) { o.MaxRetries = 0 }},
		{"max_retries none", []string{"//task:max_retries none"}, func(o *annotations.Options) { o.MaxRetries = -1 }},
		{"default_retry_delay", []string{"//task:default_retry_delay 30s"}, func(o *annotations.Options) { o.DefaultRetryDelay = 30 * time.Second }},
		{"default_retry_delay seconds", []string{"//task:default_retry_delay 60"}, func(o *annotations.Options) { o.DefaultRetryDelay = time.Minute }},
		{"time_limit", []string{"//task:time_limit 1h30m"}, func(o *annotations.Options) { o.TimeLimit = 90 * time.Minute }},
		{"time_limit seconds", []string{"//task:time_limit 300"}, func(o *annotations.Options) { o.TimeLimit = 5 * time.Minute }},
		{"soft_time_limit below time_limit", []string{"//task:soft_time_limit 4m", "//task:time_limit 300"}, func(o *annotations.Options) {
			o.SoftTimeLimit, o.TimeLimit = 4*time.Minute, 5*time.Minute
		}},
		{"soft_time_limit alone", []string{"//task:soft_time_limit 1h"}, func(o *annotations.Options) { o.SoftTimeLimit = time.Hour }},
		{"soft_time_limit with time_limit 0", []string{"//task:soft_time_limit 1h", "//task:time_limit 0"}, func(o *annotations.Options) { o.SoftTimeLimit = time.Hour }},
		{"rate_limit per second", []string{"//task:rate_limit 10/s"}, func(o *annotations.Options) { o.RateLimit = annotations.RateLimit{N: 10, Per: time.Second} }},
		{"rate_limit per minute", []string{"//task:rate_limit 100/m"}, func(o *annotations.Options) { o.RateLimit = annotations.RateLimit{N: 100, Per: time.Minute} }},
		{"rate_limit per hour", []string{"//task:rate_limit 1000/h"}, func(o *annotations.Options) { o.RateLimit = annotations.RateLimit{N: 1000, Per: time.Hour} }},
		{"rate_limit bare", []string{"//task:rate_limit 7"}, func(o *annotations.Options) { o.RateLimit = annotations.RateLimit{N: 7, Per: time.Second} }},
		{"expires", []string{"//task:expires 1h"}, func(o *annotations.Options) { o.Expires = time.Hour }},
		{"expires seconds", []string{"//task:expires 3600"}, func(o *annotations.Options) { o.Expires = time.Hour }},
		{"unique", []string{"//task:unique 10m"}, func(o *annotations.Options) { o.Unique = 10 * time.Minute }},
		{"unique seconds", []string{"//task:unique 90"}, func(o *annotations.Options) { o.Unique = 90 * time.Second }},
		{"acks_late bare", []string{"//task:acks_late"}, func(o *annotations.Options) { o.AcksLate = true }},
		{"acks_late true", []string{"//task:acks_late true"}, func(o *annotations.Options) { o.AcksLate = true }},
		{"acks_late false", []string{"//task:acks_late false"}, func(o *annotations.Options) {}},
		{"ignore_result bare", []string{"//task:ignore_result"}, func(o *annotations.Options) { o.IgnoreResult = true }},
		{"ignore_result false", []string{"//task:ignore_result false"}, func(o *annotations.Options) {}},
		{"priority", []string{"//task:priority 9"}, func(o *annotations.Options) { o.Priority, o.HasPriority = 9, true }},
		{"priority zero", []string{"//task:priority 0"}, func(o *annotations.Options) { o.Priority, o.HasPriority = 0, true }},
		{"priority max", []string{"//task:priority 255"}, func(o *annotations.Options) { o.Priority, o.HasPriority = 255, true }},
		{"spaced text that is not a directive", []string{"// task: remember to call f", "// tasks:queue x"}, func(o *annotations.Options) {}},
		{"other tools", []string{"//go:noinline", "//lint:ignore x"}, func(o *annotations.Options) {}},
		{"design example", []string{
			"// sendWelcomeEmail posts the welcome email through the provider's HTTP API.",
			"//",
			"//task:name signup.send_welcome_email",
			"//task:queue emails",
			"//task:autoretry_for *HTTPError, io.ErrUnexpectedEOF",
			"//task:retry_backoff",
			"//task:retry_backoff_max 10m",
			"//task:max_retries 5",
		}, func(o *annotations.Options) {
			o.Name, o.Queue = "signup.send_welcome_email", "emails"
			a, b := ref("*HTTPError", 22), ref("io.ErrUnexpectedEOF", 34)
			a.Pos.Line, b.Pos.Line = 7, 7
			o.AutoretryFor = []annotations.ErrorRef{a, b}
			o.RetryBackoff, o.RetryBackoffMax, o.MaxRetries = time.Second, 10*time.Minute, 5
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, errs := parseDoc(t, tt.lines...)
			require.Empty(t, errStrings(errs))
			want := annotations.Defaults()
			tt.want(&want)
			require.Equal(t, withoutOffsets(want), withoutOffsets(got))

			// Set holds exactly the options written, at their directives.
			var wantSet []string
			for i, l := range tt.lines {
				if name, ok := strings.CutPrefix(l, "//task:"); ok {
					name, _, _ = strings.Cut(name, " ")
					wantSet = append(wantSet, name+"@"+token.Position{Filename: "x.go", Line: 3 + i, Column: 1}.String())
				}
			}
			gotSet := []string{}
			for name, pos := range got.Set {
				gotSet = append(gotSet, name+"@"+pos.String())
			}
			sort.Strings(wantSet)
			sort.Strings(gotSet)
			require.ElementsMatch(t, wantSet, gotSet)
		})
	}
}

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		// Option names.
		{"unknown close", []string{"//task:retry_backof"}, []string{`x.go:3:8: unknown option "retry_backof" (did you mean retry_backoff?)`}},
		{"unknown upper case", []string{"//task:Queue emails"}, []string{`x.go:3:8: unknown option "Queue" (did you mean queue?)`}},
		{"unknown hyphen", []string{"//task:retry-backoff"}, []string{`x.go:3:8: unknown option "retry-backoff" (did you mean retry_backoff?)`}},
		{"unknown prefix", []string{"//task:autoretry *E"}, []string{`x.go:3:8: unknown option "autoretry" (did you mean autoretry_for?)`}},
		{"unknown part", []string{"//task:retries 5"}, []string{`x.go:3:8: unknown option "retries" (did you mean max_retries?)`}},
		{"unknown far", []string{"//task:frobnicate"}, []string{`x.go:3:8: unknown option "frobnicate" (valid options: name, queue, autoretry_for, dont_autoretry_for, retry_backoff, retry_backoff_max, retry_jitter, max_retries, default_retry_delay, time_limit, soft_time_limit, rate_limit, expires, unique, acks_late, ignore_result, priority, schedule)`}},
		{"unknown with equals", []string{"//task:queue=emails"}, []string{`x.go:3:8: unknown option "queue=emails" (write //task:queue emails)`}},
		{"celery bind", []string{"//task:bind"}, []string{`x.go:3:8: unknown option "bind" (a Go task reads its request with runtime.TaskFromContext(ctx))`}},
		{"celery serializer", []string{"//task:serializer json"}, []string{`x.go:3:8: unknown option "serializer" (the serializer is set for the app, in runtime.Config)`}},
		{"empty name", []string{"//task:"}, []string{`x.go:3:1: missing option name after //task:`}},
		{"space after colon", []string{"//task: queue emails"}, []string{`x.go:3:1: missing option name after //task: (remove the space: //task:queue)`}},
		{"duplicate", []string{"//task:queue a", "//task:max_retries 1", "//task:queue b"}, []string{`x.go:5:1: duplicate option "queue" (previous at x.go:3:1)`}},
		{"duplicate bare", []string{"//task:acks_late", "//task:acks_late"}, []string{`x.go:4:1: duplicate option "acks_late" (previous at x.go:3:1)`}},

		// Spaced directives.
		{"spaced", []string{"// task:queue emails"}, []string{`x.go:3:1: directive has a space after "//"; write //task:queue`}},
		{"spaced twice", []string{"//  task:name x"}, []string{`x.go:3:1: directive has a space after "//"; write //task:name`}},
		{"spaced tab", []string{"//\ttask:acks_late"}, []string{`x.go:3:1: directive has a space after "//"; write //task:acks_late`}},

		// name.
		{"name missing", []string{"//task:name"}, []string{`x.go:3:1: name: missing value (syntax: //task:name NAME)`}},
		{"name charset", []string{"//task:name sign/up"}, []string{`x.go:3:13: name: "sign/up" is not a task name: use letters, digits and _ . : - only`}},
		{"name two words", []string{"//task:name a b"}, []string{`x.go:3:13: name: expected one value, got "a b"`}},
		{"name empty quoted", []string{`//task:name ""`}, []string{`x.go:3:13: name: empty value (syntax: //task:name NAME)`}},
		{"name bad quote", []string{`//task:name "abc`}, []string{`x.go:3:13: name: malformed quoted string: "abc`}},

		// queue.
		{"queue missing", []string{"//task:queue"}, []string{`x.go:3:1: queue: missing value (syntax: //task:queue NAME)`}},
		{"queue spaces", []string{`//task:queue "a b"`}, []string{`x.go:3:14: queue: "a b" must not contain spaces or control characters`}},
		{"queue two words", []string{`//task:queue a b`}, []string{`x.go:3:14: queue: expected one value, got "a b"`}},

		// autoretry_for and dont_autoretry_for.
		{"autoretry_for missing", []string{"//task:autoretry_for"}, []string{`x.go:3:1: autoretry_for: missing value (syntax: //task:autoretry_for ERROR[, ERROR...])`}},
		{"autoretry_for empty element", []string{"//task:autoretry_for A,,B"}, []string{`x.go:3:24: autoretry_for: empty element in list "A,,B"`}},
		{"autoretry_for trailing comma", []string{"//task:autoretry_for A, "}, []string{`x.go:3:24: autoretry_for: empty element in list "A,"`}},
		{"autoretry_for leading comma", []string{"//task:autoretry_for ,A"}, []string{`x.go:3:22: autoretry_for: empty element in list ",A"`}},
		{"autoretry_for twice", []string{"//task:autoretry_for A, B, A"}, []string{`x.go:3:28: autoretry_for: "A" listed twice (previous at x.go:3:22)`}},
		{"autoretry_for double pointer", []string{"//task:autoretry_for **A"}, []string{`x.go:3:22: autoretry_for: "**A" is not an error type or value name ([*]Name or [*]pkg.Name)`}},
		{"autoretry_for three parts", []string{"//task:autoretry_for a.b.C"}, []string{`x.go:3:22: autoretry_for: "a.b.C" is not an error type or value name ([*]Name or [*]pkg.Name)`}},
		{"autoretry_for slice", []string{"//task:autoretry_for E, []error"}, []string{`x.go:3:25: autoretry_for: "[]error" is not an error type or value name ([*]Name or [*]pkg.Name)`}},
		{"autoretry_for keyword", []string{"//task:autoretry_for func"}, []string{`x.go:3:22: autoretry_for: "func" is not an error type or value name ([*]Name or [*]pkg.Name)`}},
		{"autoretry_for blank", []string{"//task:autoretry_for _"}, []string{`x.go:3:22: autoretry_for: "_" is not an error type or value name ([*]Name or [*]pkg.Name)`}},
		{"autoretry_for spaced pointer", []string{"//task:autoretry_for * E"}, []string{`x.go:3:22: autoretry_for: "* E" is not an error type or value name ([*]Name or [*]pkg.Name) (separate names with commas)`}},
		{"autoretry_for no commas", []string{"//task:autoretry_for A B"}, []string{`x.go:3:22: autoretry_for: "A B" is not an error type or value name ([*]Name or [*]pkg.Name) (separate names with commas)`}},
		{"autoretry_for quoted", []string{`//task:autoretry_for "E"`}, []string{`x.go:3:22: autoretry_for: "\"E\"" is not an error type or value name ([*]Name or [*]pkg.Name)`}},
		{"dont_autoretry_for missing", []string{"//task:dont_autoretry_for"}, []string{`x.go:3:1: dont_autoretry_for: missing value (syntax: //task:dont_autoretry_for ERROR[, ERROR...])`}},
		{"dont_autoretry_for trailing comma", []string{"//task:dont_autoretry_for A,"}, []string{`x.go:3:29: dont_autoretry_for: empty element in list "A,"`}},
		{"dont_autoretry_for also in autoretry_for", []string{"//task:autoretry_for A, *B", "//task:dont_autoretry_for *B"},
			[]string{`x.go:4:27: dont_autoretry_for: "*B" is also listed in autoretry_for (at x.go:3:25)`}},

		// retry_backoff.
		{"retry_backoff word", []string{"//task:retry_backoff x"}, []string{`x.go:3:22: retry_backoff: "x" is not true, false, a duration (such as 2s) or a whole number of seconds`}},
		{"retry_backoff True", []string{"//task:retry_backoff True"}, []string{`x.go:3:22: retry_backoff: "True" is not true, false, a duration (such as 2s) or a whole number of seconds (write true in lower case)`}},
		{"retry_backoff negative", []string{"//task:retry_backoff -1s"}, []string{`x.go:3:22: retry_backoff: "-1s" is negative`}},
		{"retry_backoff two values", []string{"//task:retry_backoff true 2s"}, []string{`x.go:3:22: retry_backoff: expected one value, got "true 2s"`}},

		// Durations.
		{"retry_backoff_max missing", []string{"//task:retry_backoff_max"}, []string{`x.go:3:1: retry_backoff_max: missing value (syntax: //task:retry_backoff_max DURATION)`}},
		{"retry_backoff_max negative seconds", []string{"//task:retry_backoff_max -5"}, []string{`x.go:3:26: retry_backoff_max: "-5" is negative`}},
		{"retry_backoff_max huge", []string{"//task:retry_backoff_max 99999999999999999999"}, []string{`x.go:3:26: retry_backoff_max: "99999999999999999999" is too large`}},
		{"expires huge seconds", []string{"//task:expires 9223372037"}, []string{`x.go:3:16: expires: "9223372037" is too large`}},
		{"expires largest seconds", []string{"//task:expires 9223372036", "//task:expires x"}, []string{`x.go:4:1: duplicate option "expires" (previous at x.go:3:1)`}},
		{"default_retry_delay words", []string{"//task:default_retry_delay 3 minutes"}, []string{`x.go:3:28: default_retry_delay: expected one value, got "3 minutes"`}},
		{"default_retry_delay unit", []string{"//task:default_retry_delay 3min"}, []string{`x.go:3:28: default_retry_delay: "3min" is not a duration (such as 90s, 10m or 1h30m) or a whole number of seconds`}},
		{"time_limit float", []string{"//task:time_limit 1.5"}, []string{`x.go:3:19: time_limit: "1.5" is not a duration (such as 90s, 10m or 1h30m) or a whole number of seconds (write 1.5s)`}},
		{"time_limit missing", []string{"//task:time_limit"}, []string{`x.go:3:1: time_limit: missing value (syntax: //task:time_limit DURATION)`}},
		{"soft_time_limit above time_limit", []string{"//task:time_limit 5m", "//task:soft_time_limit 10m"}, []string{`x.go:4:1: soft_time_limit 10m must be less than time_limit 5m`}},
		{"soft_time_limit equals time_limit", []string{"//task:soft_time_limit 300", "//task:time_limit 5m"}, []string{`x.go:3:1: soft_time_limit 5m must be less than time_limit 5m`}},
		{"soft_time_limit negative", []string{"//task:soft_time_limit -1m"}, []string{`x.go:3:24: soft_time_limit: "-1m" is negative`}},
		{"expires negative", []string{"//task:expires -1h"}, []string{`x.go:3:16: expires: "-1h" is negative`}},
		{"expires missing", []string{"//task:expires"}, []string{`x.go:3:1: expires: missing value (syntax: //task:expires DURATION)`}},
		{"unique zero", []string{"//task:unique 0s"}, []string{`x.go:3:15: unique: "0s" locks nothing; give how long a call stays unique at most, such as 10m`}},
		{"unique negative", []string{"//task:unique -1m"}, []string{`x.go:3:15: unique: "-1m" locks nothing; give how long a call stays unique at most, such as 10m`}},
		{"unique not a duration", []string{"//task:unique soon"}, []string{`x.go:3:15: unique: "soon" is not a duration (such as 90s, 10m or 1h30m) or a whole number of seconds`}},
		{"unique missing", []string{"//task:unique"}, []string{`x.go:3:1: unique: missing value (syntax: //task:unique DURATION)`}},
		{"unique misspelt", []string{"//task:uniqe 10m"}, []string{`x.go:3:8: unknown option "uniqe" (did you mean unique?)`}},

		// Booleans.
		{"retry_jitter yes", []string{"//task:retry_jitter yes"}, []string{`x.go:3:21: retry_jitter: "yes" is not true or false`}},
		{"acks_late True", []string{"//task:acks_late True"}, []string{`x.go:3:18: acks_late: "True" is not true or false (write true in lower case)`}},
		{"acks_late 1", []string{"//task:acks_late 1"}, []string{`x.go:3:18: acks_late: "1" is not true or false`}},
		{"ignore_result FALSE", []string{"//task:ignore_result FALSE"}, []string{`x.go:3:22: ignore_result: "FALSE" is not true or false (write false in lower case)`}},

		// max_retries.
		{"max_retries word", []string{"//task:max_retries x"}, []string{`x.go:3:20: max_retries: "x" is not a non-negative integer or none`}},
		{"max_retries negative", []string{"//task:max_retries -1"}, []string{`x.go:3:20: max_retries: "-1" is not a non-negative integer or none (use none for no limit)`}},
		{"max_retries None", []string{"//task:max_retries None"}, []string{`x.go:3:20: max_retries: "None" is not a non-negative integer or none (write none in lower case)`}},
		{"max_retries huge", []string{"//task:max_retries 99999999999"}, []string{`x.go:3:20: max_retries: "99999999999" is not a non-negative integer or none (it is too large; use none for no limit)`}},
		{"max_retries float", []string{"//task:max_retries 1.5"}, []string{`x.go:3:20: max_retries: "1.5" is not a non-negative integer or none`}},
		{"max_retries missing", []string{"//task:max_retries"}, []string{`x.go:3:1: max_retries: missing value (syntax: //task:max_retries N|none)`}},

		// rate_limit.
		{"rate_limit zero", []string{"//task:rate_limit 0"}, []string{`x.go:3:19: rate_limit: "0" must allow at least 1 task per period (leave rate_limit out for no limit)`}},
		{"rate_limit zero per minute", []string{"//task:rate_limit 0/m"}, []string{`x.go:3:19: rate_limit: "0/m" must allow at least 1 task per period (leave rate_limit out for no limit)`}},
		{"rate_limit period", []string{"//task:rate_limit 10/d"}, []string{`x.go:3:19: rate_limit: "10/d" has an unknown period "d": use /s, /m or /h`}},
		{"rate_limit long period", []string{"//task:rate_limit 10/min"}, []string{`x.go:3:19: rate_limit: "10/min" has an unknown period "min": use /s, /m or /h`}},
		{"rate_limit word", []string{"//task:rate_limit x/s"}, []string{`x.go:3:19: rate_limit: "x/s" is not a rate such as 10/s, 100/m or 1000/h`}},
		{"rate_limit negative", []string{"//task:rate_limit -1/s"}, []string{`x.go:3:19: rate_limit: "-1/s" is not a rate such as 10/s, 100/m or 1000/h`}},
		{"rate_limit float", []string{"//task:rate_limit 1.5/s"}, []string{`x.go:3:19: rate_limit: "1.5/s" is not a rate such as 10/s, 100/m or 1000/h`}},
		{"rate_limit huge", []string{"//task:rate_limit 99999999999/s"}, []string{`x.go:3:19: rate_limit: "99999999999/s" is too large`}},
		{"rate_limit missing", []string{"//task:rate_limit"}, []string{`x.go:3:1: rate_limit: missing value (syntax: //task:rate_limit N[/s|/m|/h])`}},

		// priority.
		{"priority high", []string{"//task:priority 256"}, []string{`x.go:3:17: priority: 256 is out of range 0..255`}},
		{"priority negative", []string{"//task:priority -1"}, []string{`x.go:3:17: priority: -1 is out of range 0..255`}},
		{"priority huge", []string{"//task:priority 99999999999"}, []string{`x.go:3:17: priority: 99999999999 is out of range 0..255`}},
		{"priority word", []string{"//task:priority high"}, []string{`x.go:3:17: priority: "high" is not an integer in 0..255`}},
		{"priority missing", []string{"//task:priority"}, []string{`x.go:3:1: priority: missing value (syntax: //task:priority N)`}},

		// Several at once, sorted.
		{"all reported sorted", []string{
			"//task:queue",
			"// task:name x",
			"//task:priority 300",
			"//task:retry_backof",
			"//task:autoretry_for A,,B, A",
		}, []string{
			`x.go:3:1: queue: missing value (syntax: //task:queue NAME)`,
			`x.go:4:1: directive has a space after "//"; write //task:name`,
			`x.go:5:17: priority: 300 is out of range 0..255`,
			`x.go:6:8: unknown option "retry_backof" (did you mean retry_backoff?)`,
			`x.go:7:24: autoretry_for: empty element in list "A,,B, A"`,
			`x.go:7:28: autoretry_for: "A" listed twice (previous at x.go:7:22)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, errs := parseDoc(t, tt.lines...)
			require.Equal(t, tt.want, errStrings(errs))
			for _, e := range errs {
				require.NotRegexp(t, `^[A-Z]|\.$`, e.Msg, "messages are lowercase without a trailing period")
			}
		})
	}
}

func TestParse_invalidOptionKeepsDefault(t *testing.T) {
	t.Parallel()
	got, errs := parseDoc(t, "//task:max_retries x", "//task:queue emails")
	require.Len(t, errs, 1)
	require.Equal(t, 3, got.MaxRetries)
	require.Equal(t, "emails", got.Queue)
	require.Contains(t, got.Set, "max_retries", "a malformed option was still given explicitly")
}

func TestParse_nil(t *testing.T) {
	t.Parallel()
	got, errs := annotations.Parse(token.NewFileSet(), nil)
	require.Empty(t, errs)
	require.Equal(t, annotations.Defaults(), got)
}

func TestParse_positionsWithoutFile(t *testing.T) {
	t.Parallel()
	// A synthetic comment with no position must not panic.
	doc := &ast.CommentGroup{List: []*ast.Comment{{Text: "//task:queue a b"}, {Text: "//task:priority 1"}}}
	got, errs := annotations.Parse(token.NewFileSet(), doc)
	require.Equal(t, []string{`queue: expected one value, got "a b"`}, errStrings(errs))
	require.Equal(t, 1, got.Priority)
	_, errs = annotations.Parse(nil, doc)
	require.Len(t, errs, 1)
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := annotations.Defaults()
	require.Equal(t, annotations.Options{
		RetryBackoffMax:   600 * time.Second,
		RetryJitter:       true,
		MaxRetries:        3,
		DefaultRetryDelay: 180 * time.Second,
		Set:               map[string]token.Position{},
	}, d)
	d.Set["queue"] = token.Position{}
	require.Empty(t, annotations.Defaults().Set, "each call returns a fresh Set")
}

func TestRateLimit_String(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    annotations.RateLimit
		want string
	}{
		{annotations.RateLimit{}, ""},
		{annotations.RateLimit{N: 10, Per: time.Second}, "10/s"},
		{annotations.RateLimit{N: 10, Per: time.Minute}, "10/m"},
		{annotations.RateLimit{N: 1000, Per: time.Hour}, "1000/h"},
		{annotations.RateLimit{N: 3, Per: 2 * time.Second}, "3/2s"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.r.String())
		require.Equal(t, tt.want == "", tt.r.IsZero())
	}
}

func TestError_Error(t *testing.T) {
	t.Parallel()
	e := annotations.Error{Pos: token.Position{Filename: "a/x.go", Line: 3, Column: 8}, Msg: "unknown option"}
	require.Equal(t, "a/x.go:3:8: unknown option", e.Error())
	require.Equal(t, "unknown option", annotations.Error{Msg: "unknown option"}.Error())
	var err error = e
	require.EqualError(t, err, "a/x.go:3:8: unknown option")
}

func TestVocabulary(t *testing.T) {
	t.Parallel()
	var names []string
	for _, d := range annotations.Vocabulary {
		names = append(names, d.Name)
		require.True(t, strings.HasPrefix(d.Syntax, "//task:"+d.Name), d.Name)
		require.NotEmpty(t, d.Default, d.Name)
		require.NotEmpty(t, d.Doc, d.Name)
		require.True(t, strings.HasSuffix(d.Doc, "."), "%s: Doc is prose ending with a period", d.Name)

		// Every option is understood by the parser.
		_, errs := parseDoc(t, "//task:"+d.Name+" 1")
		for _, e := range errs {
			require.NotContains(t, e.Msg, "unknown option", d.Name)
		}
	}
	require.Equal(t, []string{
		"name", "queue", "autoretry_for", "dont_autoretry_for", "retry_backoff", "retry_backoff_max",
		"retry_jitter", "max_retries", "default_retry_delay", "time_limit", "soft_time_limit",
		"rate_limit", "expires", "unique", "acks_late", "ignore_result", "priority", "schedule",
	}, names)
}
