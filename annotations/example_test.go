package annotations_test

import (
	"fmt"
	"go/parser"
	"go/token"

	"github.com/taskgen/taskgen/annotations"
)

func ExampleParseFile() {
	const src = `package signup

// sendWelcomeEmail posts the welcome email through the provider's HTTP API.
//
//task:queue emails
//task:autoretry_for *HTTPError, io.ErrUnexpectedEOF
//task:retry_backoff
//task:max_retries 5
func sendWelcomeEmail(ctx context.Context, email string) (string, error) {
	return "", nil
}

//task:queue reports
//task:retry_backof

func buildReport(ctx context.Context) error {
	return nil
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "signup.go", src, parser.ParseComments)
	if err != nil {
		panic(err)
	}
	decls, errs := annotations.ParseFile(fset, f)
	for _, d := range decls {
		o := d.Options
		fmt.Printf("%s: task %s queue=%s retry_backoff=%s max_retries=%d\n", d.Pos, d.Name(), o.Queue, o.RetryBackoff, o.MaxRetries)
		for _, r := range o.AutoretryFor {
			fmt.Printf("  autoretry_for %s (pointer=%t pkg=%q ident=%s) at %s\n", r.Expr, r.Pointer, r.Pkg, r.Ident, r.Pos)
		}
	}
	for _, e := range errs {
		fmt.Println(e)
	}
	// Output:
	// signup.go:9:6: task sendWelcomeEmail queue=emails retry_backoff=1s max_retries=5
	//   autoretry_for *HTTPError (pointer=true pkg="" ident=HTTPError) at signup.go:6:22
	//   autoretry_for io.ErrUnexpectedEOF (pointer=false pkg="io" ident=ErrUnexpectedEOF) at signup.go:6:34
	// signup.go:13:1: //task: directive is not attached to a function declaration (remove the blank line between the directive and func buildReport)
}

func ExampleParse() {
	const src = `package p

//task:queue emails
//task:rate_limit 100/m
//task:max_retries none
func f() {}
`
	fset := token.NewFileSet()
	f, _ := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	opts, errs := annotations.Parse(fset, f.Comments[0])
	fmt.Println(opts.Queue, opts.RateLimit, opts.MaxRetries, len(errs))
	// Output:
	// emails 100/m -1 0
}
