package annotations_test

import (
	"go/parser"
	"go/token"
	"sort"
	"strings"
	"testing"

	"github.com/taskgen/taskgen/annotations"
)

func FuzzParseFile(f *testing.F) {
	seeds := []string{
		"package p\n",
		"package p\n\n//task:queue emails\nfunc f() {}\n",
		"package p\n\n//task:\nfunc f() {}\n",
		"package p\n\n//task: queue\n//task:Queue x\n//task:queue=x\nfunc f() {}\n",
		"package p\n\n//task:autoretry_for *A, b.C,, *d.E, A\n//task:dont_autoretry_for A,\nfunc f() {}\n",
		"package p\n\n//task:name \"x\n//task:queue `a b`\n//task:priority -1\nfunc f() {}\n",
		"package p\n\n//task:time_limit 1m\n//task:soft_time_limit 2m\n//task:rate_limit 0/h\n//task:expires -1\nfunc f() {}\n",
		"package p\n\n//task:queue x\n\nfunc f() {}\n",
		"package p\n\n// task:queue x\nfunc f() { //task:queue y\n}\n",
		"package p\n\n//task:queue x\nfunc (s *S[T]) m() {}\n",
		"package p\n\n//task:queue x\ntype R func() error\n\ntype (\n\t//task:queue y\n\tA = func()\n\t//task:queue z\n\tB func()\n)\n",
		"//task:queue x\npackage p //task:queue y\n\nvar x = 1 //task:queue z\n",
		"package p\n\ntype S struct {\n\t//task:queue x\n\tF int\n}\n\nfunc f(\n//task:queue p\n) {}\n",
		"package p\n\n//task:retry_backoff 99999999999999999999\n//task:max_retries 99999999999\nfunc f() {}\n",
		"package p\n\n//task:queue x\nfunc f(\n",
		"package p\r\n\r\n//task:queue x\r\nfunc f() {}\r\n",
		"package p\n\n//task:queue \xff\xfe\n//task:\xc3\x89\nfunc f() {}\n",
		"package p\n/*task:queue x*/\nfunc f() {}\n",
		"package p\n\n//task:schedule every 15m\n//task:schedule cron \"0 3 * * mon-fri\" tz=Europe/Paris name=x\n//task:schedule cron `*/5 * *` tz= name=\n//task:schedule every 1m tz=UTC\nfunc f() {}\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		fset := token.NewFileSet()
		file, _ := parser.ParseFile(fset, "fuzz.go", src, parser.ParseComments|parser.SkipObjectResolution)
		if file == nil {
			return
		}
		decls, errs := annotations.ParseFile(fset, file)
		for _, d := range decls {
			if (d.Func == nil) == (d.TypeSpec == nil) {
				t.Fatalf("decl %v: exactly one of Func and TypeSpec must be set", d.Pos)
			}
			if d.Pos.Filename != "fuzz.go" || d.Pos.Line < 1 || d.Pos.Column < 1 {
				t.Fatalf("decl %s: invalid position %#v", d.Name(), d.Pos)
			}
			if d.Options.Set == nil {
				t.Fatalf("decl %s: nil Set", d.Name())
			}
			for _, s := range d.Options.Schedules {
				if (s.Every == 0) == (s.Cron == "") || !s.Pos.IsValid() || !s.ValuePos.IsValid() {
					t.Fatalf("decl %s: bad Schedule %#v", d.Name(), s)
				}
				fields := strings.Fields(s.Cron)
				if len(s.CronFieldPos) != len(fields) {
					t.Fatalf("decl %s: schedule %q has %d field positions", d.Name(), s.Cron, len(s.CronFieldPos))
				}
				for i, p := range s.CronFieldPos {
					if p != s.ValuePos && !strings.HasPrefix(src[p.Offset:], fields[i]) {
						t.Fatalf("decl %s: field %d of %q is not at %s", d.Name(), i, s.Cron, p)
					}
				}
			}
			for _, r := range append(d.Options.AutoretryFor, d.Options.DontAutoretryFor...) {
				if !r.Pos.IsValid() || r.Ident == "" {
					t.Fatalf("decl %s: bad ErrorRef %#v", d.Name(), r)
				}
			}
		}
		for _, e := range errs {
			if e.Pos.Filename != "fuzz.go" || e.Pos.Line < 1 || e.Pos.Column < 1 || e.Pos.Offset < 0 || e.Pos.Offset > len(src) {
				t.Fatalf("error %q: invalid position %#v", e.Msg, e.Pos)
			}
			if e.Msg == "" || !strings.HasPrefix(e.Error(), e.Pos.String()+": ") {
				t.Fatalf("error %#v: bad message", e)
			}
		}
		if !sort.SliceIsSorted(errs, func(i, j int) bool {
			a, b := errs[i].Pos, errs[j].Pos
			return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
		}) {
			t.Fatalf("errors not sorted: %v", errs)
		}
	})
}
