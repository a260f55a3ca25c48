// Package model is the plain description of the code taskgen generates: the
// tasks of one Go package, their parameters, options and error matchers, and
// the identifiers the generated file uses.
//
// The generator fills a model from go/types after every check has passed, and
// the emitter turns it into Go code without consulting go/types again: the
// emitter is a pure function of a [Package]. Types appear here as Go code
// ([Param.Type], [Task.Result]), already written with the import names of
// [Package.Imports], so the model is also readable as JSON (taskgen -dump).
package model

import "time"

// Package is one Go package that declares tasks; it becomes one generated
// file.
type Package struct {
	Name string // package name, e.g. "signup"
	Path string // import path, e.g. "example.com/app/signup"
	Dir  string // directory holding the package's files
	File string // base name of the generated file, e.g. "tasks_gen.go"

	// Imports are the imports the generated file may use, sorted by path.
	// Their names are the package names go/packages reports, renamed only to
	// avoid a package-level identifier of this package or another import.
	// The emitter hands them to jennifer, which writes the import block with
	// those of them the code uses.
	Imports []Import

	// Locals are the identifiers the generated code declares inside
	// functions, chosen so that none hides a name the code refers to.
	Locals Locals

	// RegisterFunc is the name of the registration function, "RegisterTasks".
	RegisterFunc string

	// Tasks are in source order.
	Tasks []Task

	// SchedulesFunc is the name of the function returning the periodic
	// entries of the tasks' schedules, "Schedules"; "" when no task has a
	// schedule, and then the file has no such function.
	SchedulesFunc string `json:",omitempty"`
}

// Import is one import of the generated file.
type Import struct {
	Name string // the name the generated code uses
	Path string // the import path
}

// Locals are the names of the local variables and parameters of the
// generated codec methods, Run functions, error matchers and RegisterTasks.
type Locals struct {
	Ctx    string // context parameter of Run ("ctx")
	Typed  string // the *XxxArgs parameter of the Run function ("args")
	Recv   string // receiver of the codec methods ("a")
	Writer string // codegen.ArgWriter parameter ("w")
	Reader string // codegen.ArgReader parameter ("r")
	Err    string // error result / matcher parameter ("err")
	Index  string // argument index ("i")
	Name   string // keyword argument name ("name")
}

// Task is one task: a Go function (or, when Remote, a func type naming a
// task implemented in another process).
type Task struct {
	FuncName   string // the unexported function or func type, "sendWelcomeEmail"
	StubName   string // the exported stub variable, "SendWelcomeEmail"
	StubType   string // the stub's type, "SendWelcomeEmailTask"
	ArgsType   string // the exported argument struct, the codec and what DecodeArgs returns, "SendWelcomeEmailArgs"
	CeleryName string // the Celery task name, "signup.send_welcome_email"

	// Remote marks a stub for a task implemented elsewhere: it has Delay but
	// no Call, its TaskDef (StubName.Def()) has no Run and RegisterTasks
	// skips it.
	Remote bool

	// Signature is the task's func type as code, without the parameter names:
	// the compile-time guard assigns the function to a variable of this type.
	Signature string

	// Recv and Ctx name the receiver and the context parameter of the stub's
	// methods; they differ from "t" and "ctx" only when a parameter uses
	// those names.
	Recv string // receiver of the stub's methods ("t")
	Ctx  string // context parameter of Delay and Call ("ctx")
	Opts string // the variadic parameter of With ("opts")

	Params    []Param // the parameters after the context, in order
	Result    string  // the result type R as code; "struct{}" when !HasResult
	HasResult bool    // the function returns (R, error) rather than error

	Options Options // the task's static options

	// AutoretryMatchers and DontAutoretryMatchers come from
	// //task:autoretry_for and //task:dont_autoretry_for, in the order written.
	AutoretryMatchers     []Matcher // errors retried automatically
	DontAutoretryMatchers []Matcher // errors never retried automatically

	// Schedules come from //task:schedule, in the order written: the
	// periodic entries sending the task, which takes no arguments.
	Schedules []Schedule `json:",omitempty"`
}

// Schedule is one periodic entry of a task, for runtime/beat: beat.Every
// when Every is set, beat.Cron otherwise.
type Schedule struct {
	Name      string        // the entry's name, unique in the run
	Every     time.Duration `json:",omitempty"` // the interval of an every entry
	Offset    time.Duration `json:",omitempty"` // the phase of an every entry's slots, when HasOffset
	HasOffset bool          `json:",omitempty"` // else the runtime derives the phase from Name
	Cron      string        `json:",omitempty"` // the crontab expression of a cron entry, as written
	TimeZone  string        `json:",omitempty"` // the IANA time zone of a cron entry; "" is UTC
}

// Param is one parameter of a task, after its context.
type Param struct {
	Name      string // the Go name, also accepted as a keyword argument
	SnakeName string // its snake_case form, also accepted as a keyword argument
	Local     string // the name used in the generated Delay and Call (Name unless that would hide an identifier)
	Field     string // the field of the argument struct: Name with its first letter upper-cased, "Email"
	Type      string // the type as code
	Kind      Kind   // how the argument codec reads and writes it
	Bits      int    // size in bits for KindInt, KindUint and KindFloat
	// Convert is set when Type is not the codec's own type (int64, string,
	// []byte...), so values are converted on the way in and out.
	Convert bool
}

// Kind selects the ArgWriter and ArgReader methods used for a parameter (and,
// when the parameter is converted, the codegen.ReadXxx helper).
type Kind string

// The kinds of parameters. Named types whose underlying type is a basic
// type use the basic kinds, with conversions.
const (
	KindString Kind = "string" // String
	KindInt    Kind = "int"    // Int(bits)
	KindUint   Kind = "uint"   // Uint(bits)
	KindFloat  Kind = "float"  // Float(bits)
	KindBool   Kind = "bool"   // Bool
	KindBytes  Kind = "bytes"  // Bytes, for []byte
	KindValue  Kind = "value"  // Value: the serializer's reflection-based codec
)

// Method returns the name of the ArgWriter/ArgReader method for k.
func (k Kind) Method() string {
	switch k {
	case KindString:
		return "String"
	case KindInt:
		return "Int"
	case KindUint:
		return "Uint"
	case KindFloat:
		return "Float"
	case KindBool:
		return "Bool"
	case KindBytes:
		return "Bytes"
	}
	return "Value"
}

// Reader returns the codegen helper reading a converted parameter of kind k
// ("ReadInt"...), or "" for KindValue.
func (k Kind) Reader() string {
	if k == KindValue {
		return ""
	}
	return "Read" + k.Method()
}

// HasBits reports whether the ArgReader method of k takes a size in bits.
func (k Kind) HasBits() bool { return k == KindInt || k == KindUint || k == KindFloat }

// WireType returns the Go type the ArgWriter/ArgReader method of k takes or
// returns ("int64", "string"...), or "" for KindValue.
func (k Kind) WireType() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "int64"
	case KindUint:
		return "uint64"
	case KindFloat:
		return "float64"
	case KindBool:
		return "bool"
	case KindBytes:
		return "[]byte"
	}
	return ""
}

// Options are the static options of a task, as the runtime's TaskDef holds
// them; each comes from the directive named in its comment.
type Options struct {
	Queue string `json:",omitempty"` // queue; "" is the app's default queue

	// DefaultRetry is set when the five retry fields below are Celery's
	// defaults, so the generated code writes codegen.DefaultRetryPolicy().
	DefaultRetry bool `json:",omitempty"`

	MaxRetries   int           // max_retries; -1 is unlimited
	Backoff      time.Duration // retry_backoff factor; 0 is no backoff
	BackoffMax   time.Duration // retry_backoff_max
	Jitter       bool          // retry_jitter
	DefaultDelay time.Duration // default_retry_delay

	TimeLimit     time.Duration `json:",omitempty"` // time_limit; 0 is none
	SoftTimeLimit time.Duration `json:",omitempty"` // soft_time_limit; 0 is none
	RateLimit     RateLimit     `json:",omitzero"`  // rate_limit
	Expires       time.Duration `json:",omitempty"` // expires; 0 is never
	Unique        time.Duration `json:",omitempty"` // unique; 0 is not unique
	AcksLate      bool          `json:",omitempty"` // acks_late
	IgnoreResult  bool          `json:",omitempty"` // ignore_result
	Priority      int           `json:",omitempty"` // priority, when HasPriority
	HasPriority   bool          `json:",omitempty"` // priority was given
}

// RateLimit is at most N task starts per Per; the zero value is no limit.
type RateLimit struct {
	N   int           // task starts
	Per time.Duration // per this period: time.Second, time.Minute or time.Hour
}

// IsZero reports whether r is "no limit".
func (r RateLimit) IsZero() bool { return r == RateLimit{} }

// MatcherKind tells how an error matcher tests an error.
type MatcherKind string

// The kinds of error matchers.
const (
	MatchType  MatcherKind = "type"  // errors.AsType[Expr](err)
	MatchValue MatcherKind = "value" // errors.Is(err, Expr)
)

// Matcher is one element of autoretry_for or dont_autoretry_for.
type Matcher struct {
	Kind MatcherKind // how the error is tested
	Expr string      // a type or a variable as code: "*HTTPError", "io.ErrUnexpectedEOF"
}
