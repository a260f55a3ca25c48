package autoretry

import (
	"errors"
	"io"
)

// HTTPError implements error on its pointer.
type HTTPError struct{}

func (*HTTPError) Error() string { return "http" }

// ValueError implements error on its value.
type ValueError struct{}

func (ValueError) Error() string { return "value" }

// NotAnError is a plain type.
type NotAnError struct{}

// Box is a generic error type.
type Box[T any] struct{ V T }

func (Box[T]) Error() string { return "box" }

// ErrGone is a sentinel.
var ErrGone = errors.New("gone")

// Count is not an error.
var Count = 3

// Limit is a constant, not an error.
const Limit = 3

func helper() error { return nil }

// io is imported here, not in tasks.go.
var _ = io.EOF
