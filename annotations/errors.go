package annotations

import (
	"cmp"
	"fmt"
	"go/token"
	"slices"
	"strconv"
	"strings"
)

// Error is one user error at a position in Go source: a problem in a //task:
// directive, or, as the generator reports it, in the declaration the
// directive annotates. It is taskgen's one positioned error type; the
// generator's errors are Errors too.
type Error struct {
	// Pos is where the problem is: the directive, the offending value or
	// list element, or a declaration. It may be invalid for an error that
	// concerns no particular place, and have a Filename but no line for one
	// that concerns a whole file.
	Pos token.Position
	// Task is the task (function or func type) the error concerns, or "".
	// [Parse] and [ParseFile] leave it empty; the generator fills it in.
	Task string
	// Msg is the message: lower case, no final period, with a hint where
	// one helps.
	Msg string
}

var _ error = Error{}

// Error formats e as "file:line:col: task name: message", the form editors
// and compilers use. The position is left out when there is none (and the
// line and column when they are unknown), the task when Task is "".
func (e Error) Error() string {
	var b strings.Builder
	if e.Pos.Filename != "" || e.Pos.Line > 0 {
		b.WriteString(e.Pos.Filename)
		if e.Pos.Line > 0 {
			if e.Pos.Filename != "" {
				b.WriteByte(':')
			}
			b.WriteString(strconv.Itoa(e.Pos.Line))
			if e.Pos.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Pos.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Task != "" {
		b.WriteString("task " + e.Task + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is the errors of one run, to be reported together.
type ErrorList []Error

// Add appends an error at pos about task ("" for none), with the message
// fmt.Sprintf(format, args...).
func (l *ErrorList) Add(pos token.Position, task, format string, args ...any) {
	*l = append(*l, Error{Pos: pos, Task: task, Msg: fmt.Sprintf(format, args...)})
}

// Sort sorts l by file name, line and column, then by text, keeping the
// order of identical errors.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, func(a, b Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.Filename, b.Pos.Filename),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Error(), b.Error()),
		)
	})
}
