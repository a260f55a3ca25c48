package codegen

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskgen/taskgen/runtime/driver"
	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// ArgNames are the keyword names of a task's parameters, in order: element i
// lists the names parameter i may be passed by, its Go name first, then its
// snake_case form when that differs ({{"email"}, {"userID", "user_id"}}).
// A generated argument struct's ArgNames method returns those of its
// [TaskDef].
type ArgNames = wire.ArgNames

// NewArgs returns a new, zero argument struct A; generated task definitions
// set their NewArgs to NewArgs[XxxArgs].
func NewArgs[A any, P interface {
	*A
	Args
}]() Args {
	return P(new(A))
}

// ArgDecoder gives the generated stub type that embeds it the DecodeArgs
// method; A is the task's argument struct, whose pointer implements [Args].
type ArgDecoder[A any] struct{}

// DecodeArgs decodes the arguments of a message of the task through the
// generated codec, as a worker does (tasktest.Calls uses it).
func (ArgDecoder[A]) DecodeArgs(m *driver.Message) (A, error) {
	var a A
	args, ok := any(&a).(Args)
	if !ok {
		return a, fmt.Errorf("codegen: %T does not implement Args", &a)
	}
	if _, err := DecodeBody(m.ContentType, m.Headers.Compression, m.Body, args); err != nil {
		var zero A
		return zero, err
	}
	return a, nil
}

// ReadString reads a string argument into a type defined on string.
func ReadString[T ~string](r ArgReader) (T, error) {
	v, err := r.String()
	return T(v), err
}

// ReadInt reads an integer argument of bits bits into a signed integer type
// other than int64 (int, int32, rune, time.Duration, named types).
func ReadInt[T ~int | ~int8 | ~int16 | ~int32 | ~int64](r ArgReader, bits int) (T, error) {
	v, err := r.Int(bits)
	return T(v), err
}

// ReadUint reads an unsigned integer argument of bits bits into an unsigned
// integer type other than uint64.
func ReadUint[T ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr](r ArgReader, bits int) (T, error) {
	v, err := r.Uint(bits)
	return T(v), err
}

// ReadFloat reads a float argument of bits bits into a floating-point type
// other than float64.
func ReadFloat[T ~float32 | ~float64](r ArgReader, bits int) (T, error) {
	v, err := r.Float(bits)
	return T(v), err
}

// ReadBool reads a boolean argument into a type defined on bool.
func ReadBool[T ~bool](r ArgReader) (T, error) {
	v, err := r.Bool()
	return T(v), err
}

// ReadBytes reads a bytes argument into a type defined on []byte.
func ReadBytes[T ~[]byte](r ArgReader) (T, error) {
	v, err := r.Bytes()
	return T(v), err
}

// Run adapts the typed Run function of a task with a result to
// TaskDef.Run: it asserts the argument struct and returns the result.
func Run[A any, P interface {
	*A
	Args
}, R any](run func(ctx context.Context, args P) (R, error)) func(context.Context, Args) (any, error) {
	return func(ctx context.Context, args Args) (any, error) { return run(ctx, args.(P)) }
}

// RunNoResult adapts the typed Run function of an error-only task to
// TaskDef.Run; the task's result is nil.
func RunNoResult[A any, P interface {
	*A
	Args
}](run func(ctx context.Context, args P) error) func(context.Context, Args) (any, error) {
	return func(ctx context.Context, args Args) (any, error) { return nil, run(ctx, args.(P)) }
}

// IsType reports whether err's chain holds an error of type E (errors.AsType);
// the generated AutoretryFor and DontAutoretryFor use it.
func IsType[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}
