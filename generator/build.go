package generator

import (
	"go/types"
	"slices"
	"strings"

	"golang.org/x/tools/go/packages"

	"github.com/taskgen/taskgen/annotations"
	"github.com/taskgen/taskgen/generator/model"
)

// buildModel turns the checked tasks of package p, written to output, into
// its model. It is called only when the package has tasks and no errors.
func (c *pkgChecker) buildModel(p *packages.Package, output string) *model.Package {
	own := c.p.Types
	b := &modelBuilder{own: own, need: map[string]*types.Package{}}

	// Every package the generated code refers to.
	needErrors, needTime, needBeat := false, false, false
	for _, t := range c.tasks {
		b.typeString(t.ctxType, b.record)
		for _, v := range t.params {
			b.typeString(v.Type(), b.record)
		}
		if t.result != nil {
			b.typeString(t.result, b.record)
		}
		for _, m := range slices.Concat(t.autoretry, t.dont) {
			if p := m.obj.Pkg(); p != nil && p != own {
				b.need[p.Path()] = p
			}
		}
		needErrors = needErrors || len(t.autoretry)+len(t.dont) > 0
		needTime = needTime || usesTime(t.decl.Options)
		for _, s := range t.schedules {
			needBeat = true
			needTime = needTime || s.Every != 0
		}
	}

	// Names: the package's own identifiers, the generated ones and the
	// predeclared ones the generated code uses are taken; imports come next,
	// then the generated code's local names.
	taken := namer{}
	for _, n := range c.scope.Names() {
		taken[n] = true
	}
	for n := range c.generatedNames() {
		taken[n] = true
	}
	for _, n := range predeclaredUsed {
		taken[n] = true
	}
	paths := []string{runtimePath, codegenPath, driverPath, contextPath}
	if needErrors {
		paths = append(paths, errorsPath)
	}
	if needTime {
		paths = append(paths, timePath)
	}
	if needBeat {
		paths = append(paths, beatPath)
	}
	var others []string
	for path := range b.need {
		if !slices.Contains(paths, path) {
			others = append(others, path)
		}
	}
	slices.Sort(others)
	paths = append(paths, others...)
	b.names = map[string]string{}
	pkg := &model.Package{
		Name:         p.Name,
		Path:         p.PkgPath,
		Dir:          packageDir(p),
		File:         output,
		RegisterFunc: registerFunc,
	}
	for _, path := range paths {
		name := lastElem(path)
		if p := b.need[path]; p != nil {
			name = p.Name()
		}
		b.names[path] = taken.take(name)
		pkg.Imports = append(pkg.Imports, model.Import{Name: b.names[path], Path: path})
	}
	slices.SortFunc(pkg.Imports, func(a, b model.Import) int { return strings.Compare(a.Path, b.Path) })
	pkg.Locals = model.Locals{
		Ctx:    taken.pick("ctx"),
		Typed:  taken.pick("args"),
		Recv:   taken.pick("a"),
		Writer: taken.pick("w"),
		Reader: taken.pick("r"),
		Err:    taken.pick("err"),
		Index:  taken.pick("i"),
		Name:   taken.pick("name"),
	}

	for _, t := range c.tasks {
		pkg.Tasks = append(pkg.Tasks, b.task(t))
	}
	if needBeat {
		pkg.SchedulesFunc = schedulesFunc
	}
	return pkg
}

// usesTime reports whether the TaskDef of options o mentions package time.
func usesTime(o annotations.Options) bool {
	return o.RetryBackoff != 0 || o.RetryBackoffMax != 0 || o.DefaultRetryDelay != 0 ||
		o.TimeLimit != 0 || o.SoftTimeLimit != 0 || o.Expires != 0 || o.Unique != 0 || !o.RateLimit.IsZero()
}

type modelBuilder struct {
	own   *types.Package
	need  map[string]*types.Package // imported packages the generated code refers to, by path
	names map[string]string         // their import names, by path
}

func (b *modelBuilder) record(p *types.Package) string {
	if p != b.own {
		b.need[p.Path()] = p
	}
	return p.Name()
}

// qualify writes a package-qualified name with the generated file's imports.
func (b *modelBuilder) qualify(p *types.Package) string {
	if p == b.own {
		return ""
	}
	return b.names[p.Path()]
}

func (b *modelBuilder) typeString(t types.Type, q types.Qualifier) string {
	return types.TypeString(t, q)
}

// task builds the model of one checked task.
func (b *modelBuilder) task(t *taskInfo) model.Task {
	stub := upperFirst(t.name)
	m := model.Task{
		FuncName:   t.name,
		StubName:   stub,
		StubType:   stub + "Task",
		ArgsType:   stub + "Args",
		CeleryName: t.celeryName,
		Remote:     t.remote,
		Result:     "struct{}",
		HasResult:  t.result != nil,
		Options:    options(t.decl.Options),
	}
	if t.result != nil {
		m.Result = b.typeString(t.result, b.qualify)
	}

	// The stub's methods refer to these package-level names and to their own
	// parameters, so neither may hide the other.
	// Partial's body also names package runtime (runtime.NewPartial).
	bodyNames := namer{m.FuncName: true, m.ArgsType: true, m.StubType: true, "runtime": true}
	params := map[string]bool{}
	for _, v := range t.params {
		params[v.Name()] = true
	}
	m.Recv = bodyNames.take("t", params)
	m.Ctx = bodyNames.take("ctx", params)
	m.Opts = bodyNames.take("opts", params)

	sig := make([]string, 0, len(t.params)+1)
	sig = append(sig, b.typeString(t.ctxType, b.qualify))
	for _, v := range t.params {
		typ := b.typeString(v.Type(), b.qualify)
		sig = append(sig, typ)
		kind, bits, convert := kindOf(v.Type())
		m.Params = append(m.Params, model.Param{
			Name:      v.Name(),
			SnakeName: SnakeCase(v.Name()),
			Local:     v.Name(),
			Field:     argField(v.Name()),
			Type:      typ,
			Kind:      kind,
			Bits:      bits,
			Convert:   convert,
		})
	}
	for i := range m.Params {
		p := &m.Params[i]
		if bodyNames[p.Name] {
			delete(params, p.Name)
			p.Local = bodyNames.take(p.Name, params)
		}
	}
	m.Signature = "func(" + strings.Join(sig, ", ") + ")"
	if t.result != nil {
		m.Signature += " (" + m.Result + ", error)"
	} else {
		m.Signature += " error"
	}

	for _, e := range t.autoretry {
		m.AutoretryMatchers = append(m.AutoretryMatchers, b.matcher(e))
	}
	for _, e := range t.dont {
		m.DontAutoretryMatchers = append(m.DontAutoretryMatchers, b.matcher(e))
	}
	for _, s := range t.schedules {
		m.Schedules = append(m.Schedules, model.Schedule{
			Name: s.name, Every: s.Every, Offset: s.Offset, HasOffset: s.HasOffset, Cron: s.Cron, TimeZone: s.TimeZone,
		})
	}
	return m
}

// codecMethods are the methods of the generated argument struct, which no
// field may be named.
var codecMethods = map[string]bool{"ArgNames": true, "EncodeArgs": true, "DecodeArg": true}

// argField is the field of the argument struct for parameter name: its
// exported form, prefixed with X when that is a codec method (argNames →
// XargNames).
func argField(name string) string {
	if f := fieldName(name); !codecMethods[f] {
		return f
	}
	return "X" + name
}

func (b *modelBuilder) matcher(e errorMatch) model.Matcher {
	expr := e.obj.Name()
	if p := e.obj.Pkg(); p != nil && p != b.own {
		expr = b.names[p.Path()] + "." + expr
	}
	if _, ok := e.obj.(*types.TypeName); ok {
		if e.pointer {
			expr = "*" + expr
		}
		return model.Matcher{Kind: model.MatchType, Expr: expr}
	}
	return model.Matcher{Kind: model.MatchValue, Expr: expr}
}

// options converts parsed directives into the model's options.
func options(o annotations.Options) model.Options {
	d := annotations.Defaults()
	return model.Options{
		DefaultRetry: o.MaxRetries == d.MaxRetries && o.RetryBackoff == d.RetryBackoff && o.RetryBackoffMax == d.RetryBackoffMax &&
			o.RetryJitter == d.RetryJitter && o.DefaultRetryDelay == d.DefaultRetryDelay,
		Queue:         o.Queue,
		MaxRetries:    o.MaxRetries,
		Backoff:       o.RetryBackoff,
		BackoffMax:    o.RetryBackoffMax,
		Jitter:        o.RetryJitter,
		DefaultDelay:  o.DefaultRetryDelay,
		TimeLimit:     o.TimeLimit,
		SoftTimeLimit: o.SoftTimeLimit,
		RateLimit:     model.RateLimit{N: o.RateLimit.N, Per: o.RateLimit.Per},
		Expires:       o.Expires,
		Unique:        o.Unique,
		AcksLate:      o.AcksLate,
		IgnoreResult:  o.IgnoreResult,
		Priority:      o.Priority,
		HasPriority:   o.HasPriority,
	}
}

// kindOf returns how the codec handles a parameter of type t: the kind, the
// size in bits of numbers, and whether t must be converted to and from the
// codec's type.
func kindOf(t types.Type) (kind model.Kind, bits int, convert bool) {
	switch u := t.Underlying().(type) {
	case *types.Basic:
		info := u.Info()
		switch {
		case info&types.IsString != 0:
			return model.KindString, 0, !types.Identical(t, types.Typ[types.String])
		case info&types.IsBoolean != 0:
			return model.KindBool, 0, !types.Identical(t, types.Typ[types.Bool])
		case info&types.IsInteger != 0 && info&types.IsUnsigned != 0:
			return model.KindUint, basicBits(u.Kind()), !types.Identical(t, types.Typ[types.Uint64])
		case info&types.IsInteger != 0:
			return model.KindInt, basicBits(u.Kind()), !types.Identical(t, types.Typ[types.Int64])
		case info&types.IsFloat != 0:
			return model.KindFloat, basicBits(u.Kind()), !types.Identical(t, types.Typ[types.Float64])
		}
	case *types.Slice:
		if types.Identical(u.Elem(), types.Typ[types.Byte]) {
			return model.KindBytes, 0, !types.Identical(t, types.NewSlice(types.Typ[types.Byte]))
		}
	}
	return model.KindValue, 0, false
}

// basicBits is the size of a numeric kind, int and uint counting as 64 bits
// (the wire's size; the runtime rejects values that do not fit).
func basicBits(k types.BasicKind) int {
	switch k {
	case types.Int8, types.Uint8:
		return 8
	case types.Int16, types.Uint16:
		return 16
	case types.Int32, types.Uint32, types.Float32:
		return 32
	}
	return 64
}
