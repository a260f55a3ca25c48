// Package serializable has parameters and results that cannot travel in a
// task message.
package serializable

import (
	"context"
	"io"
	"unsafe"
)

// Request hides a function two levels down.
type Request struct {
	Items []Item
}

// Item has a callback.
type Item struct {
	Name string
	Done func()
}

// Secret has an unexported field.
type Secret struct {
	Public string
	token  string
}

// Node is recursive and fine.
type Node struct {
	Children []*Node
	Labels   map[uint8]string
}

type point struct{ X, Y int }

//task:name ser.params
func params(ctx context.Context,
	done chan struct{}, // want `^task params: parameter done has type chan struct{}: channels cannot be sent to another process$`
	cb func(), // want `parameter cb has type func\(\): functions cannot be sent to another process`
	p unsafe.Pointer, // want `parameter p has type unsafe.Pointer: a raw memory address means nothing in another process`
	z complex128, // want `complex numbers have no msgpack or JSON encoding; use two floats`
	r io.Reader, // want `parameter r has type io.Reader: an interface with methods cannot be decoded`
	req Request, // want `parameter req has type Request: req.Items\[i\].Done has type func\(\): functions cannot be sent`
	s *Secret, // want `parameter s has type \*Secret: s.token is unexported, so the serializer would silently drop it`
	byPoint map[point]string, // want `map keys must be strings or integers \(JSON object keys\), not point`
	n Node,
) error {
	return nil
}

//task:name ser.result
func result(ctx context.Context) (map[string][]chan int, error) { return nil, nil } // want `^task result: the result has type map\[string\]\[\]chan int: result\[k\]\[i\] has type chan int: channels cannot be sent to another process$`

//task:name ser.error_result
func errorResult(ctx context.Context) (error, error) { return nil, nil } // want `the first result is an error too`
