package generator

import (
	"fmt"
	"go/token"
	"path/filepath"
	"strings"

	"github.com/taskgen/taskgen/annotations"
)

// Error is one user error: a problem in the code or the directives taskgen
// reads, at a position. It prints as "path:line:col: task sendWelcomeEmail:
// message". Its Pos.Filename is relative to Config.Dir when the file is
// below it, absolute otherwise; Pos may be invalid for an error that
// concerns no particular file.
//
// It is [annotations.Error], taskgen's one positioned error type, so the
// directive errors of [annotations.ParseFile] pass through unchanged but for
// the task they concern.
type Error = annotations.Error

// errorList collects the errors of one run.
type errorList struct {
	dir  string // positions are made relative to it
	errs annotations.ErrorList
	seen map[string]bool
}

// add records an error at pos (absolute file name) about task (or "").
func (l *errorList) add(pos token.Position, task, format string, args ...any) {
	pos.Filename = l.rel(pos.Filename)
	pos.Offset = 0
	e := Error{Pos: pos, Task: task, Msg: fmt.Sprintf(format, args...)}
	if l.dir != "" { // messages may name other positions ("previous at /abs/x.go:3:1")
		e.Msg = strings.ReplaceAll(e.Msg, l.dir+string(filepath.Separator), "")
	}
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

// sorted sorts the errors and returns them, each an *Error.
func (l *errorList) sorted() []error {
	ptrs := l.pointers()
	out := make([]error, len(ptrs))
	for i, e := range ptrs {
		out[i] = e
	}
	return out
}

// pointers sorts the errors and returns them as *Errors, nil for none.
func (l *errorList) pointers() []*Error {
	l.errs.Sort()
	if len(l.errs) == 0 {
		return nil
	}
	out := make([]*Error, len(l.errs))
	for i := range l.errs {
		out[i] = &l.errs[i]
	}
	return out
}
