package generator

import (
	"go/build"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/taskgen/taskgen/annotations"
)

// resolveErrors resolves the elements of autoretry_for or dont_autoretry_for
// (option) in the scope of the task's file: a type is matched with
// errors.AsType, a package-level variable or constant with errors.Is.
func (c *pkgChecker) resolveErrors(t *taskInfo, option string, refs []annotations.ErrorRef) []errorMatch {
	var out []errorMatch
	for _, ref := range refs {
		if m, msg := c.resolveError(t, ref); msg != "" {
			c.fail(ref.Pos, t.name, "%s: %s", option, msg)
		} else {
			out = append(out, m)
		}
	}
	return out
}

// resolveError resolves one element, or explains why it cannot.
func (c *pkgChecker) resolveError(t *taskInfo, ref annotations.ErrorRef) (errorMatch, string) {
	fileScope := c.p.Info.Scopes[t.file]
	if fileScope == nil {
		return errorMatch{}, "internal error: no scope for " + fileBase(t.pos)
	}
	name := ref.Ident
	var obj types.Object
	if ref.Pkg == "" {
		_, obj = fileScope.LookupParent(ref.Ident, token.NoPos)
		if obj == nil || !c.own(obj) {
			return errorMatch{}, "undefined: " + ref.Ident + didYouMean(ref.Ident, c.errorNames(c.scope, false), "")
		}
	} else {
		name = ref.Pkg + "." + ref.Ident
		pn, ok := fileScope.Lookup(ref.Pkg).(*types.PkgName)
		if !ok {
			if _, other := fileScope.LookupParent(ref.Pkg, token.NoPos); other != nil && c.own(other) {
				return errorMatch{}, written(ref) + ": " + ref.Pkg + " is " + describeObject(other) + ", not an imported package"
			}
			return errorMatch{}, "package " + ref.Pkg + " is not imported in " + fileBase(t.pos) + ": " + c.importHint(ref.Pkg)
		}
		imported := pn.Imported()
		obj = imported.Scope().Lookup(ref.Ident)
		switch {
		case obj == nil:
			return errorMatch{}, "undefined: " + name + didYouMean(ref.Ident, c.errorNames(imported.Scope(), true), ref.Pkg+".")
		case !obj.Exported():
			return errorMatch{}, name + " is not exported by package " + imported.Path()
		}
	}
	switch obj := obj.(type) {
	case *types.TypeName:
		if n, ok := types.Unalias(obj.Type()).(*types.Named); ok && n.TypeParams().Len() > 0 && n.TypeArgs().Len() == 0 {
			return errorMatch{}, name + " is a generic type: list a non-generic error type"
		}
		typ := obj.Type()
		if ref.Pointer {
			typ = types.NewPointer(typ)
		}
		if implementsError(typ) {
			return errorMatch{obj: obj, pointer: ref.Pointer}, ""
		}
		msg := ref.Expr + " does not implement error"
		switch {
		case !ref.Pointer && implementsError(types.NewPointer(obj.Type())):
			msg += " (did you mean *" + name + "? its Error method has a pointer receiver)"
		case ref.Pointer && implementsError(obj.Type()):
			msg += " (did you mean " + name + "? " + name + " itself is the error type)"
		}
		return errorMatch{}, msg
	case *types.Var, *types.Const:
		kind := "variable"
		if _, ok := obj.(*types.Const); ok {
			kind = "constant"
		}
		if ref.Pointer {
			return errorMatch{}, ref.Expr + ": " + name + " is a " + kind + ", not a type: write " + name + " to match it with errors.Is"
		}
		if !implementsError(obj.Type()) {
			return errorMatch{}, "the " + kind + " " + name + " has type " + types.TypeString(obj.Type(), c.qualifier) + ", which does not implement error"
		}
		return errorMatch{obj: obj}, ""
	case *types.PkgName:
		return errorMatch{}, name + " is a package: name an error type or variable in it (" + name + ".Name)"
	case *types.Func:
		return errorMatch{}, name + " is a function, not an error type or variable"
	}
	return errorMatch{}, name + " is not an error type or variable"
}

// errorNames lists the names in scope that could be listed in autoretry_for:
// error types and variables (exported ones only if exported).
func (c *pkgChecker) errorNames(scope *types.Scope, exported bool) []string {
	var names []string
	for _, n := range scope.Names() {
		obj := scope.Lookup(n)
		if exported && !obj.Exported() || !c.own(obj) {
			continue
		}
		switch obj.(type) {
		case *types.TypeName:
			if implementsError(obj.Type()) || implementsError(types.NewPointer(obj.Type())) {
				names = append(names, n)
			}
		case *types.Var, *types.Const:
			if implementsError(obj.Type()) {
				names = append(names, n)
			}
		}
	}
	return names
}

// didYouMean suggests the candidate closest to name, written with prefix,
// or returns "": a candidate at most two edits away, and only one for a
// name shorter than six bytes.
func didYouMean(name string, candidates []string, prefix string) string {
	best, edits := annotations.Nearest(name, candidates)
	if best == "" || edits > min(2, max(1, len(name)/3)) {
		return ""
	}
	return " (did you mean " + prefix + best + "?)"
}

// importHint says which import would make the package named name visible:
// one another file of the package uses, one of its dependencies, or a
// standard-library package.
func (c *pkgChecker) importHint(name string) string {
	var paths []string
	var imported []*types.Package // by the checked files
	for _, f := range c.p.Files {
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				continue
			}
			pn := c.p.Info.PkgNameOf(spec)
			if pn != nil {
				imported = append(imported, pn.Imported())
			}
			if spec.Name != nil {
				if spec.Name.Name == name {
					paths = append(paths, path)
				}
				continue
			}
			if pn != nil && pn.Imported().Name() == name {
				paths = append(paths, path)
			}
		}
	}
	if len(paths) == 0 {
		seen := map[*types.Package]bool{}
		queue := imported
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			if p.Name() == name {
				paths = append(paths, p.Path())
			}
			queue = append(queue, p.Imports()...)
		}
	}
	if len(paths) == 0 && isStdPackage(name) {
		paths = append(paths, name)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if len(paths) == 0 {
		return "import it there (the file must use it: a directive does not count)"
	}
	return "import " + strconv.Quote(paths[0]) + " there (the file must use it: a directive does not count)"
}

// isStdPackage reports whether path names a standard-library package.
func isStdPackage(path string) bool {
	if build.Default.GOROOT == "" || !token.IsIdentifier(path) {
		return false
	}
	fi, err := os.Stat(filepath.Join(build.Default.GOROOT, "src", path))
	return err == nil && fi.IsDir()
}

// written is the element as the directive wrote it, without the pointer mark.
func written(ref annotations.ErrorRef) string { return strings.TrimPrefix(ref.Expr, "*") }
