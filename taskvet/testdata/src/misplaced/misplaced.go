// Package misplaced has directives where taskgen does not read them.
//
// want +2 `^//task: directive is not attached to a function declaration \(it is the package doc comment\)$`
//
//task:queue misplaced_in_package_doc
package misplaced

import "context"

// Server has methods.
type Server struct{}

// Handle is a method.
//
// want +2 `^//task: directive on method \(\*Server\).Handle: a task is a plain function, not a method$`
//
//task:name misplaced.handle
func (s *Server) Handle(ctx context.Context) error { return nil }

// want +2 `\(var x is not a function declaration\)$`
//
//task:queue on_a_var
var x = 1

// want +2 `\(type options is not a func type\)$`
//
//task:queue on_a_struct
type options struct{}

// want +2 `\(type alias is an alias; declare it as a defined func type, without =\)$`
//
//task:name misplaced.alias
type alias = func(ctx context.Context) error

// want +2 `\(remove the blank line between the directive and func separated\)$`
//
//task:name misplaced.separated

func separated(ctx context.Context) error { return nil }

func inBody(ctx context.Context) error {
	// want +2 `\(it is inside the body of func inBody\)$`
	//
	//task:queue inside
	return nil
}

// want +1 `\(a comment at the end of a line is not a doc comment; put the directive on its own line directly above the func\)$`
var y = 2 //task:queue end_of_line

// want +2 `\(move it into the doc comment of func moved\)$`
//
//task:queue floating

// moved has its own doc comment.
func moved(ctx context.Context) error { return nil }
