package annotations

import (
	"go/ast"
	"go/token"
	"strconv"
	"time"
)

// Decl is one declaration carrying //task: directives.
//
// Exactly one of Func and TypeSpec is non-nil: Func for a task implemented in
// Go, TypeSpec for a remote task stub (a defined func type whose task is
// implemented elsewhere, for example in Python).
type Decl struct {
	Func     *ast.FuncDecl  // a task implemented in Go
	TypeSpec *ast.TypeSpec  // or a remote task stub: type X func(ctx context.Context, ...) (R, error)
	Pos      token.Position // position of the declaration's name
	Options  Options
}

// Name returns the Go name of the declaration (function or type name).
func (d Decl) Name() string {
	switch {
	case d.Func != nil && d.Func.Name != nil:
		return d.Func.Name.Name
	case d.TypeSpec != nil && d.TypeSpec.Name != nil:
		return d.TypeSpec.Name.Name
	}
	return ""
}

// Options are the task options of one declaration: Celery's defaults
// (see [Defaults]) overridden by its directives.
type Options struct {
	Name              string        // "name": Celery task name; "" = default (the generator derives "<pkgname>.<snake_case(func)>")
	Queue             string        // "queue"; "" = default queue "celery"
	AutoretryFor      []ErrorRef    // "autoretry_for"
	DontAutoretryFor  []ErrorRef    // "dont_autoretry_for"
	RetryBackoff      time.Duration // "retry_backoff": backoff factor; 0 = off
	RetryBackoffMax   time.Duration // "retry_backoff_max": default 600s
	RetryJitter       bool          // "retry_jitter": default true
	MaxRetries        int           // "max_retries": default 3; -1 = unlimited (Celery's None)
	DefaultRetryDelay time.Duration // "default_retry_delay": default 180s
	TimeLimit         time.Duration // "time_limit": 0 = none
	SoftTimeLimit     time.Duration // "soft_time_limit": 0 = none; less than TimeLimit when both are set
	RateLimit         RateLimit     // "rate_limit": zero = none
	Expires           time.Duration // "expires": 0 = never
	Unique            time.Duration // "unique": how long a call locks out calls with the same arguments; 0 = not unique
	AcksLate          bool          // "acks_late"
	IgnoreResult      bool          // "ignore_result"
	Priority          int           // "priority": 0..255, meaningful when HasPriority
	HasPriority       bool
	Schedules         []Schedule // "schedule", repeatable: the task's periodic entries, in the order written

	// Set maps every option given explicitly to the position of its
	// (first) directive. It is never nil in Options returned by this package.
	Set map[string]token.Position
}

// Defaults returns the Options with Celery's defaults: what an undecorated
// task gets. Each call returns a fresh value.
func Defaults() Options {
	return Options{
		RetryBackoffMax:   600 * time.Second,
		RetryJitter:       true,
		MaxRetries:        3,
		DefaultRetryDelay: 180 * time.Second,
		Set:               map[string]token.Position{},
	}
}

// ErrorRef is one element of autoretry_for or dont_autoretry_for: the name of
// an error type (matched with errors.As) or of a sentinel error value
// (matched with errors.Is). Which one it is, and whether it exists, is for
// the generator to decide with go/types.
type ErrorRef struct {
	Expr    string         // as written, trimmed: "*HTTPError", "io.ErrUnexpectedEOF"
	Pointer bool           // leading '*'
	Pkg     string         // "io" for a qualified name, "" otherwise
	Ident   string         // "ErrUnexpectedEOF"
	Pos     token.Position // position of this element inside the comment
}

// RateLimit is a task rate limit: at most N task starts per Per.
// The zero value means no limit.
type RateLimit struct {
	N   int
	Per time.Duration
}

// IsZero reports whether r is the zero value (no limit).
func (r RateLimit) IsZero() bool { return r == RateLimit{} }

// String returns r in Celery's notation: "10/s", "100/m", "1000/h".
// The zero RateLimit (no limit) gives "".
func (r RateLimit) String() string {
	if r.IsZero() {
		return ""
	}
	n := strconv.Itoa(r.N)
	switch r.Per {
	case time.Second:
		return n + "/s"
	case time.Minute:
		return n + "/m"
	case time.Hour:
		return n + "/h"
	}
	return n + "/" + r.Per.String()
}
