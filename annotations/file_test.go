package annotations_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/annotations"
)

func parseFile(t *testing.T, src string) ([]annotations.Decl, []annotations.Error) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.ParseComments)
	require.NoError(t, err)
	return annotations.ParseFile(fset, f)
}

// declSummary describes decls as "kind name @line:col".
func declSummary(decls []annotations.Decl) []string {
	var out []string
	for _, d := range decls {
		kind := "func"
		if d.TypeSpec != nil {
			kind = "type"
		}
		out = append(out, kind+" "+d.Name()+" @"+d.Pos.String())
	}
	return out
}

func TestParseFile(t *testing.T) {
	t.Parallel()
	const src = `package signup

import (
	"context"
	"io"
)

// sendWelcomeEmail posts the welcome email through the provider's HTTP API.
//
//task:name signup.send_welcome_email
//task:queue emails
//task:autoretry_for *HTTPError, io.ErrUnexpectedEOF
//task:retry_backoff
//task:retry_backoff_max 10m
//task:max_retries 5
func sendWelcomeEmail(ctx context.Context, email string) (string, error) {
	return "", io.EOF
}

// helper has no directives.
func helper() {}

// ResizeImage is implemented by the Python image service.
//
//task:name images.resize
//task:queue images
type ResizeImage func(ctx context.Context, url string, width int) (string, error)

type (
	// Other docs.
	Other int

	// Score is implemented in Python too.
	//task:name ml.score
	//task:ignore_result
	Score func(ctx context.Context, id string) (float64, error)
)

//task:rate_limit 10/m
func undocumented(ctx context.Context) error { return nil }
`
	decls, errs := parseFile(t, src)
	require.Empty(t, errStrings(errs))
	require.Equal(t, []string{
		"func sendWelcomeEmail @x.go:16:6",
		"type ResizeImage @x.go:27:6",
		"type Score @x.go:36:2",
		"func undocumented @x.go:40:6",
	}, declSummary(decls))

	send := decls[0]
	require.NotNil(t, send.Func)
	require.Nil(t, send.TypeSpec)
	require.Equal(t, "signup.send_welcome_email", send.Options.Name)
	require.Equal(t, "emails", send.Options.Queue)
	require.Len(t, send.Options.AutoretryFor, 2)
	require.Equal(t, "x.go:12:22", send.Options.AutoretryFor[0].Pos.String())
	require.Equal(t, "x.go:12:34", send.Options.AutoretryFor[1].Pos.String())
	require.Equal(t, time.Second, send.Options.RetryBackoff)
	require.Equal(t, 10*time.Minute, send.Options.RetryBackoffMax)
	require.Equal(t, 5, send.Options.MaxRetries)
	require.Len(t, send.Options.Set, 6)
	require.Equal(t, "x.go:11:1", send.Options.Set["queue"].String())

	resize := decls[1]
	require.Nil(t, resize.Func)
	require.NotNil(t, resize.TypeSpec)
	require.Equal(t, "images.resize", resize.Options.Name)
	require.Equal(t, "images", resize.Options.Queue)

	score := decls[2]
	require.Equal(t, "ml.score", score.Options.Name)
	require.True(t, score.Options.IgnoreResult)

	require.Equal(t, annotations.RateLimit{N: 10, Per: time.Minute}, decls[3].Options.RateLimit)
}

func TestParseFile_declsWithErrors(t *testing.T) {
	t.Parallel()
	decls, errs := parseFile(t, `package p

//task:queue emails
//task:max_retries x
func f() {}

//task:priority 1
//task:priority 2
func g() {}
`)
	require.Equal(t, []string{"func f @x.go:5:6", "func g @x.go:9:6"}, declSummary(decls))
	require.Equal(t, "emails", decls[0].Options.Queue)
	require.Equal(t, []string{
		`x.go:4:20: max_retries: "x" is not a non-negative integer or none`,
		`x.go:8:1: duplicate option "priority" (previous at x.go:7:1)`,
	}, errStrings(errs))
}

func TestParseFile_Errors(t *testing.T) {
	t.Parallel()
	const notAttached = "//task: directive is not attached to a function declaration"
	tests := []struct {
		name  string
		src   string
		decls []string
		want  []string
	}{
		{
			name: "blank line before func",
			src: `package p

//task:queue emails
//task:max_retries 5

func send() {}
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (remove the blank line between the directive and func send)`},
		},
		{
			name: "blank line before func type",
			src: `package p

//task:queue emails

type Remote func() error
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (remove the blank line between the directive and type Remote)`},
		},
		{
			name: "separate group above a documented func",
			src: `package p

//task:queue emails

// send sends.
func send() {}
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (move it into the doc comment of func send)`},
		},
		{
			name: "inside a function body",
			src: `package p

func send() {
	x := 1
	//task:queue emails
	_ = x
}
`,
			want: []string{`x.go:5:2: ` + notAttached + ` (it is inside the body of func send)`},
		},
		{
			name: "on a var",
			src: `package p

//task:queue emails
var send = func() {}
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (var send is not a function declaration)`},
		},
		{
			name: "on a const in a group",
			src: `package p

const (
	//task:queue emails
	A = 1
)
`,
			want: []string{`x.go:4:2: ` + notAttached + ` (const A is not a function declaration)`},
		},
		{
			name: "on a var group",
			src: `package p

//task:queue emails
var (
	A = 1
	B = 2
)
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (it documents a group of var declarations)`},
		},
		{
			name: "on an import",
			src: `package p

//task:queue emails
import "fmt"

var _ = fmt.Sprint
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (it documents an import)`},
		},
		{
			name: "on a struct type",
			src: `package p

// S is a struct.
//task:queue emails
type S struct{}
`,
			want: []string{`x.go:4:1: ` + notAttached + ` (type S is not a func type)`},
		},
		{
			name: "on a struct field",
			src: `package p

type S struct {
	//task:queue emails
	F func()
}
`,
			want: []string{`x.go:4:2: ` + notAttached + ` (it is inside the declaration of type S)`},
		},
		{
			name: "on a func type alias",
			src: `package p

//task:queue emails
type Remote = func() error
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (type Remote is an alias; declare it as a defined func type, without =)`},
		},
		{
			name: "on a type group",
			src: `package p

//task:queue emails
type (
	Remote func() error
)
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (it documents the whole type group; put it directly above the func type's name)`},
		},
		{
			name: "end of a code line",
			src: `package p

var x = 1 //task:queue emails
func send() {}
`,
			want: []string{`x.go:3:11: ` + notAttached + ` (a comment at the end of a line is not a doc comment; put the directive on its own line directly above the func)`},
		},
		{
			name: "end of the package line",
			src: `package p //task:queue emails
`,
			want: []string{`x.go:1:11: ` + notAttached + ` (a comment at the end of a line is not a doc comment; put the directive on its own line directly above the func)`},
		},
		{
			name: "package doc",
			src: `//task:queue emails
package p
`,
			want: []string{`x.go:1:1: ` + notAttached + ` (it is the package doc comment)`},
		},
		{
			name: "floating at the end",
			src: `package p

func send() {}

//task:queue emails
`,
			want: []string{`x.go:5:1: ` + notAttached + ` (put it in the doc comment directly above a func declaration)`},
		},
		{
			name: "one error per misplaced group",
			src: `package p

//task:queue emails
//task:bogus
//task:max_retries x

func send() {}
`,
			want: []string{`x.go:3:1: ` + notAttached + ` (remove the blank line between the directive and func send)`},
		},
		{
			name: "method",
			src: `package p

type S struct{}

// Send sends.
//task:queue emails
//task:priority 300
func (s *S) Send() {}

//task:queue emails
func (S) Value() {}

//task:queue emails
func (g G[T]) Generic() {}
`,
			want: []string{
				`x.go:6:1: //task: directive on method (*S).Send: a task is a plain function, not a method`,
				`x.go:7:17: priority: 300 is out of range 0..255`,
				`x.go:10:1: //task: directive on method S.Value: a task is a plain function, not a method`,
				`x.go:13:1: //task: directive on method G.Generic: a task is a plain function, not a method`,
			},
		},
		{
			name: "spaced directives anywhere",
			src: `package p

// task:queue emails
func a() {}

func b() {
	//  task:queue emails
}

var x = 1 // task:max_retries 3

// task:queue emails

//	task:queue emails
type T func()
`,
			want: []string{
				`x.go:3:1: directive has a space after "//"; write //task:queue`,
				`x.go:7:2: directive has a space after "//"; write //task:queue`,
				`x.go:10:11: directive has a space after "//"; write //task:max_retries`,
				`x.go:12:1: directive has a space after "//"; write //task:queue`,
				`x.go:14:1: directive has a space after "//"; write //task:queue`,
			},
		},
		{
			name: "misplaced directives with errors report placement only",
			src: `package p

func f() {
	//task:queue
	//task:bogus
}
`,
			want: []string{`x.go:4:2: ` + notAttached + ` (it is inside the body of func f)`},
		},
		{
			name: "good and bad together",
			src: `package p

//task:queue a
func a() {}

//task:queue b

func b() {}

// c does c.
//task:retry_backof
func c() {}

// task:queue d
func d() {}
`,
			decls: []string{"func a @x.go:4:6", "func c @x.go:12:6"},
			want: []string{
				`x.go:6:1: ` + notAttached + ` (remove the blank line between the directive and func b)`,
				`x.go:11:8: unknown option "retry_backof" (did you mean retry_backoff?)`,
				`x.go:14:1: directive has a space after "//"; write //task:queue`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			decls, errs := parseFile(t, tt.src)
			require.Equal(t, tt.want, errStrings(errs))
			require.Equal(t, tt.decls, declSummary(decls))
		})
	}
}

func TestParseFile_nil(t *testing.T) {
	t.Parallel()
	decls, errs := annotations.ParseFile(token.NewFileSet(), nil)
	require.Nil(t, decls)
	require.Nil(t, errs)
}

func TestParseFile_withoutComments(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", "package p\n\n//task:queue x\nfunc f() {}\n", 0)
	require.NoError(t, err)
	decls, errs := annotations.ParseFile(fset, f)
	require.Empty(t, decls, "without parser.ParseComments there are no directives to see")
	require.Empty(t, errs)
}

func TestParseFile_synthetic(t *testing.T) {
	t.Parallel()
	// A GenDecl doc and a TypeSpec doc on one spec are read together.
	ts := &ast.TypeSpec{Name: ast.NewIdent("R"), Type: &ast.FuncType{Params: &ast.FieldList{}}}
	ts.Doc = &ast.CommentGroup{List: []*ast.Comment{{Text: "//task:queue q"}}}
	gd := &ast.GenDecl{Tok: token.TYPE, Specs: []ast.Spec{ts},
		Doc: &ast.CommentGroup{List: []*ast.Comment{{Text: "//task:name n"}, {Text: "//task:queue q2"}}}}
	f := &ast.File{Name: ast.NewIdent("p"), Decls: []ast.Decl{gd}}
	decls, errs := annotations.ParseFile(token.NewFileSet(), f)
	require.Len(t, decls, 1)
	require.Equal(t, "n", decls[0].Options.Name)
	require.Equal(t, "q2", decls[0].Options.Queue)
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Msg, `duplicate option "queue"`)
}
