// Package codegen is used by code that taskgen generates; it is not a stable
// API for hand-written code. Its names may change in any release together with
// the generator, which is why the generated file carries a compile-time guard.
//
// A generated task is a static [TaskDef] (its Celery name, options, retry
// policy and [ArgNames]), an exported argument struct implementing [Args]
// (the typed codec: one call of [ArgWriter] or [ArgReader] per parameter, no
// reflection for basic types), and a stub type that embeds runtime.Stub and
// [ArgDecoder]. What is the same for every task lives here, in generic
// helpers ([NewArgs], [ArgDecoder], [ReadInt] and the other readers), so
// that the generated file holds only what differs: names, types and calls.
package codegen

import "github.com/taskgen/taskgen/runtime/internal/wire"

// Args is implemented by the argument struct generated for each task: it
// writes and reads the task's positional arguments and maps keyword names
// (the Go parameter name or its snake_case form) to positions.
type Args = wire.Args

// ArgWriter writes the positional arguments of one call. The runtime
// implements it for msgpack, JSON and Python repr.
type ArgWriter = wire.ArgWriter

// ArgReader reads one argument value; integer and float readers take the bit
// size of the Go destination and fail when the value does not fit.
type ArgReader = wire.ArgReader

// ArgDefaults is implemented by argument structs whose trailing parameters
// have defaults, so that a message may omit them.
type ArgDefaults = wire.ArgDefaults

// ArgError is the error of a message whose arguments do not fit the task's
// parameters (wrong count, unknown keyword, wrong type).
type ArgError = wire.ArgError

// AppendBody appends the serialized body [args, kwargs, embed] of one call to
// dst, for serializer "msgpack" or "json"; embed nil means no workflow parts.
func AppendBody(dst []byte, serializer string, args Args, embed []byte) ([]byte, error) {
	return wire.AppendBody(dst, serializer, args, embed)
}

// DecodeBody decodes a message body of contentType (and compression, if any)
// into args and returns the raw embed element.
func DecodeBody(contentType, compression string, body []byte, args Args) (embed []byte, err error) {
	return wire.DecodeBody(contentType, compression, body, args)
}
