package generator

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/taskgen/taskgen/annotations"
)

// registerFunc is the name of the generated registration function.
const registerFunc = "RegisterTasks"

// predeclaredUsed are the predeclared identifiers the generated code refers
// to; a package-level declaration of one of them would change its meaning.
var predeclaredUsed = []string{"any", "bool", "byte", "error", "false", "float64", "int", "int64", "new", "nil", "string", "true", "uint64"}

// pkgChecker finds and checks the tasks of one package.
type pkgChecker struct {
	p      *Package // nil when the package did not type-check at all
	errs   *errorList
	scope  *types.Scope         // package scope; nil when p is nil
	files  map[*token.File]bool // the files of p.Files
	tasks  []*taskInfo          // in source order
	failed bool                 // some error concerns this package
}

// taskInfo is what the checks learn about one task.
type taskInfo struct {
	decl   annotations.Decl
	file   *ast.File
	name   string         // the function or func type
	pos    token.Position // of the name
	remote bool
	nameOK bool // the stub names derived from name are valid

	ctxType    types.Type   // the first parameter's type
	params     []*types.Var // after the context
	result     types.Type   // R; nil for an error-only task
	celeryName string
	autoretry  []errorMatch
	dont       []errorMatch
	schedules  []scheduleInfo // the valid schedules, named
}

// errorMatch is a resolved autoretry_for element.
type errorMatch struct {
	obj     types.Object // a *types.TypeName, *types.Var or *types.Const
	pointer bool
}

func newPkgChecker(p *Package, errs *errorList) *pkgChecker {
	return &pkgChecker{p: p, errs: errs}
}

// fail records an error that concerns this package.
func (c *pkgChecker) fail(pos token.Position, task, format string, args ...any) {
	c.failed = true
	c.errs.add(pos, task, format, args...)
}

func (c *pkgChecker) position(pos token.Pos) token.Position { return c.p.Fset.Position(pos) }

// output is the base name of the generated file, for messages.
func (c *pkgChecker) output() string {
	if c.p.Output == "" {
		return DefaultOutput
	}
	return c.p.Output
}

// own reports whether obj is declared in one of the checked files: a
// package-level object of another file (the generated file, a test file)
// does not exist for the checks.
func (c *pkgChecker) own(obj types.Object) bool {
	if obj.Parent() != c.scope {
		return true
	}
	return c.files[c.p.Fset.File(obj.Pos())]
}

// lookup is c.scope.Lookup, without the objects of files not checked.
func (c *pkgChecker) lookup(name string) types.Object {
	if obj := c.scope.Lookup(name); obj != nil && c.own(obj) {
		return obj
	}
	return nil
}

// findAndCheck finds the task declarations of every file and checks them.
func (c *pkgChecker) findAndCheck() {
	p := c.p
	if p == nil || p.Types == nil || p.Info == nil || p.Fset == nil {
		return // nothing to check; packageErrors reports why
	}
	c.scope = p.Types.Scope()
	c.files = map[*token.File]bool{}
	for _, f := range p.Files {
		if tf := p.Fset.File(f.FileStart); tf != nil {
			c.files[tf] = true
		}
	}
	for _, f := range p.Files {
		decls, errs := annotations.ParseFile(p.Fset, f)
		for _, e := range errs {
			c.fail(e.Pos, c.taskOfPosition(f, decls, e.Pos), "%s", e.Msg)
		}
		for _, d := range decls {
			if t := c.checkDecl(f, d); t != nil {
				c.tasks = append(c.tasks, t)
			}
		}
	}
	slices.SortStableFunc(c.tasks, func(a, b *taskInfo) int {
		return cmp.Or(cmp.Compare(a.pos.Filename, b.pos.Filename), cmp.Compare(a.pos.Offset, b.pos.Offset))
	})
	c.checkGeneratedNames()
}

// taskOfPosition returns the name of the declaration among decls whose doc
// comment holds pos, or "".
func (c *pkgChecker) taskOfPosition(f *ast.File, decls []annotations.Decl, pos token.Position) string {
	for _, d := range decls {
		var start token.Pos
		var name *ast.Ident
		switch {
		case d.Func != nil:
			start, name = d.Func.Pos(), d.Func.Name
			if d.Func.Doc != nil {
				start = d.Func.Doc.Pos()
			}
		case d.TypeSpec != nil:
			start, name = d.TypeSpec.Pos(), d.TypeSpec.Name
			if d.TypeSpec.Doc != nil {
				start = d.TypeSpec.Doc.Pos()
			}
			if gd := enclosingGenDecl(f, d.TypeSpec); gd != nil && gd.Doc != nil && gd.Doc.Pos() < start {
				start = gd.Doc.Pos()
			}
		}
		if name == nil {
			continue
		}
		from, to := c.position(start), c.position(name.Pos())
		if pos.Filename == from.Filename && from.Line <= pos.Line && pos.Line <= to.Line {
			return d.Name()
		}
	}
	return ""
}

func enclosingGenDecl(f *ast.File, ts *ast.TypeSpec) *ast.GenDecl {
	for _, d := range f.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Pos() <= ts.Pos() && ts.End() <= gd.End() {
			return gd
		}
	}
	return nil
}

// checkDecl checks one declaration carrying //task: directives.
func (c *pkgChecker) checkDecl(f *ast.File, d annotations.Decl) *taskInfo {
	info := c.p.Info
	t := &taskInfo{decl: d, file: f, name: d.Name(), pos: d.Pos, remote: d.TypeSpec != nil}
	var sig *types.Signature
	switch {
	case d.Func != nil:
		obj, _ := info.Defs[d.Func.Name].(*types.Func)
		if obj == nil {
			return nil
		}
		sig = obj.Signature()
		if sig.TypeParams().Len() > 0 {
			c.fail(t.pos, t.name, "a task function cannot have type parameters: its stub needs concrete parameter types")
			return t
		}
	case d.TypeSpec != nil:
		obj, _ := info.Defs[d.TypeSpec.Name].(*types.TypeName)
		if obj == nil {
			return nil
		}
		if d.TypeSpec.TypeParams != nil {
			c.fail(t.pos, t.name, "a remote task's func type cannot have type parameters: its stub needs concrete parameter types")
			return t
		}
		sig, _ = obj.Type().Underlying().(*types.Signature)
	}
	if sig == nil {
		return nil
	}
	if !c.checkName(t) && t.name == "init" {
		return t
	}
	c.checkSignature(t, sig)
	c.checkOptions(t)
	return t
}

// checkName checks that the task's name gives an exported stub name.
func (c *pkgChecker) checkName(t *taskInfo) bool {
	kind := "task function"
	if t.remote {
		kind = "func type"
	}
	stub := upperFirst(t.name)
	switch {
	case token.IsExported(t.name):
		c.fail(t.pos, t.name, "the %s is exported: unexport it (%s); the generated stub takes the exported name %s",
			kind, lowerFirst(t.name), t.name)
	case !token.IsExported(stub):
		c.fail(t.pos, t.name, "the %s's name must start with a lower-case letter: the stub's name is the name with its first letter upper-cased", kind)
	case t.name == "init" && !t.remote:
		c.fail(t.pos, t.name, "init cannot be a task: Go code cannot refer to init functions")
	default:
		t.nameOK = true
	}
	return t.nameOK
}

// checkSignature checks func(ctx context.Context, params...) (R, error).
func (c *pkgChecker) checkSignature(t *taskInfo, sig *types.Signature) {
	params := sig.Params()
	n := params.Len()
	switch {
	case n == 0:
		c.fail(t.pos, t.name, "a task takes a context.Context as its first parameter")
	case !isContext(params.At(0).Type()):
		c.fail(c.position(params.At(0).Pos()), t.name, "the first parameter must be a context.Context, not %s",
			types.TypeString(params.At(0).Type(), c.qualifier))
	default:
		t.ctxType = params.At(0).Type()
	}
	if sig.Variadic() {
		last := params.At(n - 1)
		c.fail(c.position(last.Pos()), t.name, "variadic parameter %s: Celery has no variadic arguments; declare it as a slice, %s",
			last.Name(), types.TypeString(last.Type(), c.qualifier))
	}
	keywords := map[string]string{} // keyword argument → parameter
	fields := map[string]string{}   // field of the exported argument struct → parameter
	for i := 1; i < n; i++ {
		v := params.At(i)
		t.params = append(t.params, v)
		pos := c.position(v.Pos())
		switch v.Name() {
		case "":
			c.fail(pos, t.name, "parameter %d (%s) has no name: name it, Python callers pass arguments by keyword",
				i+1, types.TypeString(v.Type(), c.qualifier))
		case "_":
			c.fail(pos, t.name, "parameter %d (%s) is named _: give it a name, Python callers pass arguments by keyword",
				i+1, types.TypeString(v.Type(), c.qualifier))
		default:
			for _, kw := range []string{v.Name(), SnakeCase(v.Name())} {
				if other, ok := keywords[kw]; ok && other != v.Name() {
					c.fail(pos, t.name, "parameters %s and %s both answer to the keyword argument %q: rename one", other, v.Name(), kw)
					break
				}
				keywords[kw] = v.Name()
			}
			if other, ok := fields[fieldName(v.Name())]; ok {
				c.fail(pos, t.name, "parameters %s and %s both become field %s of the generated %sArgs: rename one",
					other, v.Name(), fieldName(v.Name()), upperFirst(t.name))
			}
			fields[fieldName(v.Name())] = v.Name()
		}
		if isContext(v.Type()) {
			c.fail(pos, t.name, "parameter %s: the context.Context must be the first parameter, and the only one", displayName(v.Name()))
			continue
		}
		if msg := c.unserializable(v.Type(), displayName(v.Name())); msg != "" {
			c.fail(pos, t.name, "parameter %s has type %s: %s", displayName(v.Name()), types.TypeString(v.Type(), c.qualifier), msg)
		}
	}

	results := sig.Results()
	switch results.Len() {
	case 0:
		c.fail(t.pos, t.name, "a task returns error or (R, error); add an error result")
	case 1:
		if !isError(results.At(0).Type()) {
			c.fail(c.position(results.At(0).Pos()), t.name, "a task returns error or (R, error), not %s alone: add an error result",
				types.TypeString(results.At(0).Type(), c.qualifier))
		}
	case 2:
		r, e := results.At(0), results.At(1)
		t.result = r.Type()
		switch {
		case !isError(e.Type()):
			c.fail(c.position(e.Pos()), t.name, "the last result must be error, not %s", types.TypeString(e.Type(), c.qualifier))
		case isError(r.Type()):
			c.fail(c.position(r.Pos()), t.name, "the first result is an error too: return error alone, or (R, error) with a serializable R")
		default:
			if msg := c.unserializable(r.Type(), "result"); msg != "" {
				c.fail(c.position(r.Pos()), t.name, "the result has type %s: %s", types.TypeString(r.Type(), c.qualifier), msg)
			}
		}
	default:
		c.fail(c.position(results.At(0).Pos()), t.name, "a task returns error or (R, error), not %d results: return a struct", results.Len())
	}
}

func displayName(name string) string {
	if name == "" {
		return "_"
	}
	return name
}

// checkOptions derives the Celery name and resolves the error lists.
func (c *pkgChecker) checkOptions(t *taskInfo) {
	o := t.decl.Options
	t.celeryName = o.Name
	if t.celeryName == "" {
		if t.remote {
			c.fail(t.pos, t.name, "a remote task needs //task:name: the name its implementing worker registers it under")
		} else {
			t.celeryName = c.p.Types.Name() + "." + SnakeCase(t.name)
		}
	}
	c.checkSchedules(t)
	if t.remote {
		for _, opt := range workerOnlyOptions {
			if pos, ok := o.Set[opt]; ok {
				c.fail(pos, t.name, "%s has no effect on a remote task: the worker that implements it decides that; remove the directive", opt)
			}
		}
		return
	}
	if pos, ok := o.Set["dont_autoretry_for"]; ok && len(o.AutoretryFor) == 0 && len(o.DontAutoretryFor) > 0 {
		c.fail(pos, t.name, "dont_autoretry_for has no effect without autoretry_for")
	}
	t.autoretry = c.resolveErrors(t, "autoretry_for", o.AutoretryFor)
	t.dont = c.resolveErrors(t, "dont_autoretry_for", o.DontAutoretryFor)
}

// workerOnlyOptions are options that only the worker running a task uses:
// they mean nothing on a remote task's stub.
var workerOnlyOptions = []string{
	"autoretry_for", "dont_autoretry_for", "retry_backoff", "retry_backoff_max", "retry_jitter",
	"max_retries", "default_retry_delay", "rate_limit", "acks_late",
}

// qualifier writes types in messages as the user does: unqualified within
// the package, by package name otherwise.
func (c *pkgChecker) qualifier(p *types.Package) string {
	if p == c.p.Types {
		return ""
	}
	return p.Name()
}

func isContext(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "context" && n.Obj().Name() == "Context"
}

var errorType = types.Universe.Lookup("error").Type()

func isError(t types.Type) bool { return types.Identical(t, errorType) }

// implementsError reports whether a value of type t is an error.
func implementsError(t types.Type) bool {
	return types.Implements(t, errorType.Underlying().(*types.Interface))
}

// unserializable explains why a value of type t, named root, cannot travel
// in a task message, or returns "". The explanation names the offending part
// as a Go expression below root ("req.Items[i].Hook has type func(): ...")
// unless it is root itself.
func (c *pkgChecker) unserializable(t types.Type, root string) string {
	s := &serialCheck{c: c, root: root, seen: map[string]bool{}}
	return s.check(t, root)
}

type serialCheck struct {
	c    *pkgChecker
	root string
	seen map[string]bool // named types being or already checked
}

func (s *serialCheck) typeString(t types.Type) string { return types.TypeString(t, s.c.qualifier) }

// check returns "" or the reason, naming the offending part as a Go
// expression rooted at expr ("req.Items[i].Hook has type func(): ...").
func (s *serialCheck) check(t types.Type, expr string) string {
	t = types.Unalias(t)
	if n, ok := t.(*types.Named); ok {
		if isTime(n) {
			return ""
		}
		key := types.TypeString(n, nil)
		if s.seen[key] {
			return ""
		}
		s.seen[key] = true
	}
	leaf := func(why string) string {
		if expr == s.root {
			return why
		}
		return expr + " has type " + s.typeString(t) + ": " + why
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsComplex != 0:
			return leaf("complex numbers have no msgpack or JSON encoding; use two floats")
		case u.Kind() == types.UnsafePointer:
			return leaf("a raw memory address means nothing in another process")
		}
	case *types.Pointer:
		return s.check(u.Elem(), expr)
	case *types.Slice:
		return s.check(u.Elem(), expr+"[i]")
	case *types.Array:
		return s.check(u.Elem(), expr+"[i]")
	case *types.Map:
		kb, ok := u.Key().Underlying().(*types.Basic)
		if !ok || kb.Info()&(types.IsString|types.IsInteger) == 0 {
			why := "map keys must be strings or integers (JSON object keys), not " + s.typeString(u.Key())
			if expr == s.root {
				return why
			}
			return "in " + expr + ", " + why
		}
		return s.check(u.Elem(), expr+"[k]")
	case *types.Chan:
		return leaf("channels cannot be sent to another process")
	case *types.Signature:
		return leaf("functions cannot be sent to another process")
	case *types.Interface:
		if !u.Empty() {
			return leaf("an interface with methods cannot be decoded, since the worker cannot know which concrete type to build; use a concrete type (or any)")
		}
	case *types.Struct:
		for i := range u.NumFields() {
			f := u.Field(i)
			if f.Name() == "_" || skippedField(u.Tag(i)) {
				continue
			}
			if !f.Exported() {
				if f.Embedded() {
					if _, ok := derefType(f.Type()).Underlying().(*types.Struct); ok {
						if msg := s.check(f.Type(), expr); msg != "" { // its exported fields are promoted
							return msg
						}
						continue
					}
				}
				return fmt.Sprintf("%s.%s is unexported, so the serializer would silently drop it: export it, or pass the data another way", expr, f.Name())
			}
			if msg := s.check(f.Type(), expr+"."+f.Name()); msg != "" {
				return msg
			}
		}
	}
	return ""
}

func derefType(t types.Type) types.Type {
	if p, ok := types.Unalias(t).Underlying().(*types.Pointer); ok {
		return p.Elem()
	}
	return t
}

// skippedField reports whether the serializers skip a field with this tag:
// msgpack:"-", or json:"-" without a msgpack tag (the runtime's msgpack
// codec falls back to json tags).
func skippedField(tag string) bool {
	st := reflect.StructTag(tag)
	if v, ok := st.Lookup("msgpack"); ok {
		return v == "-"
	}
	return st.Get("json") == "-"
}

func isTime(n *types.Named) bool {
	return n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "time" && n.Obj().Name() == "Time"
}

// genNames are the package-level identifiers generated for t, with what
// each is.
func (t *taskInfo) genNames() [][2]string {
	stub := upperFirst(t.name)
	return [][2]string{
		{stub, "stub"},
		{stub + "Task", "stub type"},
		{t.name + "Def", "task definition"},
		{t.name + "Args", "argument struct"},
		{stub + "Args", "exported argument struct"},
	}
}

// generatedNames returns every package-level identifier generation declares
// in this package.
func (c *pkgChecker) generatedNames() map[string]bool {
	names := map[string]bool{}
	if len(c.tasks) == 0 {
		return names
	}
	names[registerFunc] = true
	if c.hasSchedules() {
		names[schedulesFunc] = true
	}
	for _, t := range c.tasks {
		for _, n := range t.genNames() {
			names[n[0]] = true
		}
	}
	return names
}

// checkGeneratedNames reports generated identifiers that would collide with
// a declaration of the package, with another generated identifier, or
// predeclared identifiers the package hides.
func (c *pkgChecker) checkGeneratedNames() {
	if len(c.tasks) == 0 {
		return
	}
	owner := map[string]*taskInfo{}
	for _, t := range c.tasks {
		if !t.nameOK {
			continue
		}
		for _, n := range t.genNames() {
			name, what := n[0], n[1]
			if obj := c.lookup(name); obj != nil {
				c.fail(t.pos, t.name, "the generated %s %s collides with %s declared at %s: rename one of them",
					what, name, describeObject(obj), c.errs.relPos(c.position(obj.Pos())))
			} else if prev, ok := owner[name]; ok {
				c.fail(t.pos, t.name, "the generated %s %s is also generated for task %s (at %s): rename one of the tasks",
					what, name, prev.name, c.errs.relPos(prev.pos))
			}
			owner[name] = t
		}
	}
	generated := c.generatedNames()
	for _, name := range []string{registerFunc, schedulesFunc} {
		if !generated[name] {
			continue
		}
		if obj := c.lookup(name); obj != nil {
			c.fail(c.position(obj.Pos()), "", "%s is declared here, but taskgen generates %s in %s: rename this declaration",
				describeObject(obj), name, c.output())
		}
	}
	for _, name := range predeclaredUsed {
		if obj := c.lookup(name); obj != nil {
			c.fail(c.position(obj.Pos()), "", "%s hides the predeclared %s, which the code generated in %s uses: rename it",
				describeObject(obj), name, c.output())
		}
	}
}

// describeObject names a package-level object for messages: "func f".
func describeObject(obj types.Object) string {
	switch obj.(type) {
	case *types.Func:
		return "func " + obj.Name()
	case *types.TypeName:
		return "type " + obj.Name()
	case *types.Var:
		return "var " + obj.Name()
	case *types.Const:
		return "const " + obj.Name()
	}
	return obj.Name()
}

// fileBase is the base name of the file holding pos, for messages.
func fileBase(pos token.Position) string { return filepath.Base(pos.Filename) }
