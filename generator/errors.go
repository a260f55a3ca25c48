package generator

import (
	"cmp"
	"fmt"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Error is one user error: a problem in the code or the directives taskgen
// reads, at a position.
type Error struct {
	// Pos is where the problem is. Its Filename is relative to Config.Dir
	// when the file is below it, absolute otherwise; it may be invalid for
	// errors that concern no particular file.
	Pos token.Position
	// Task is the task function or func type the error concerns, or "".
	Task string
	// Msg is the message: lower case, no final period, with a hint where one
	// helps.
	Msg string
}

var _ error = (*Error)(nil)

// Error formats e as "path:line:col: task sendWelcomeEmail: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.Filename != "" {
		b.WriteString(e.Pos.Filename)
		if e.Pos.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Pos.Line))
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

// errorList collects the errors of one run.
type errorList struct {
	dir  string // positions are made relative to it
	errs []*Error
	seen map[string]bool
}

// add records an error at pos (absolute file name) about task (or "").
func (l *errorList) add(pos token.Position, task, format string, args ...any) {
	pos.Filename = l.rel(pos.Filename)
	pos.Offset = 0
	msg := fmt.Sprintf(format, args...)
	if l.dir != "" { // messages may name other positions ("previous at /abs/x.go:3:1")
		msg = strings.ReplaceAll(msg, l.dir+string(filepath.Separator), "")
	}
	e := &Error{Pos: pos, Task: task, Msg: msg}
	key := e.Error()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if l.seen[key] { // the same file can be seen through several packages
		return
	}
	l.seen[key] = true
	l.errs = append(l.errs, e)
}

// rel returns filename relative to l.dir when it is below it.
func (l *errorList) rel(filename string) string {
	if filename == "" || !filepath.IsAbs(filename) || l.dir == "" {
		return filename
	}
	r, err := filepath.Rel(l.dir, filename)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return filename
	}
	return r
}

// relPos formats pos for a message, relative to l.dir.
func (l *errorList) relPos(pos token.Position) string {
	pos.Filename = l.rel(pos.Filename)
	return pos.String()
}

// sorted sorts the errors and returns them.
func (l *errorList) sorted() []error {
	l.sort()
	out := make([]error, len(l.errs))
	for i, e := range l.errs {
		out[i] = e
	}
	return out
}

// sort sorts the errors by file, line, column and message.
func (l *errorList) sort() {
	slices.SortStableFunc(l.errs, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.Filename, b.Pos.Filename),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Error(), b.Error()),
		)
	})
}
