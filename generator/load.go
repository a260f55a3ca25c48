package generator

import (
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/tools/go/packages"
)

// output describes the generated file of one package as it is on disk.
type output struct {
	path   string // absolute
	exists bool
	ours   bool // it starts with Header, so taskgen may overwrite or delete it
}

// loadMode is what the generator needs of the packages named by the patterns.
const loadMode = packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles |
	packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo

// load lists the packages named by cfg.Patterns, then loads them with types
// and syntax. A generated file already present is replaced, for the type
// checker, by its package clause alone: a stale file that no longer compiles
// must not block its own regeneration, and its declarations must not collide
// with the ones about to be generated.
func load(cfg *Config) ([]*packages.Package, map[*packages.Package]output, error) {
	listed, err := packages.Load(&packages.Config{
		Mode:       packages.NeedName | packages.NeedFiles,
		Dir:        cfg.Dir,
		Env:        cfg.Env,
		BuildFlags: cfg.BuildFlags,
	}, cfg.Patterns...)
	if err != nil {
		return nil, nil, fmt.Errorf("listing packages: %w", err)
	}
	overlay := map[string][]byte{}
	outs := map[string]output{} // by package directory
	for _, p := range listed {
		dir := packageDir(p)
		if dir == "" {
			continue
		}
		out := output{path: filepath.Join(dir, cfg.Output)}
		if src, err := os.ReadFile(out.path); err == nil {
			out.exists = true
			out.ours = isGenerated(src)
			if name := packageName(p, out.path, src); out.ours && name != "" {
				overlay[out.path] = []byte(Header + "\n\npackage " + name + "\n")
			}
		}
		outs[dir] = out
	}

	pkgs, err := packages.Load(&packages.Config{
		Mode:       loadMode,
		Dir:        cfg.Dir,
		Env:        cfg.Env,
		BuildFlags: cfg.BuildFlags,
		Overlay:    overlay,
		Fset:       token.NewFileSet(),
	}, cfg.Patterns...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading packages: %w", err)
	}
	slices.SortFunc(pkgs, func(a, b *packages.Package) int { return strings.Compare(a.ID, b.ID) })
	byPkg := make(map[*packages.Package]output, len(pkgs))
	for _, p := range pkgs {
		dir := packageDir(p)
		if dir == "" {
			continue
		}
		out, ok := outs[dir]
		if !ok {
			out = output{path: filepath.Join(dir, cfg.Output)}
		}
		byPkg[p] = out
	}
	return pkgs, byPkg, nil
}

// packageDir returns the directory of p, or "" if it has none.
func packageDir(p *packages.Package) string {
	if p.Dir != "" {
		return p.Dir
	}
	for _, files := range [][]string{p.GoFiles, p.CompiledGoFiles, p.OtherFiles} {
		if len(files) > 0 {
			return filepath.Dir(files[0])
		}
	}
	return ""
}

// packageName returns the name of package p for the overlay of its generated
// file: the package clause of another of its files, which is right even when
// the generated file names another package; else what go list says, else the
// generated file's own clause.
func packageName(p *packages.Package, generated string, src []byte) string {
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		if name == generated {
			continue
		}
		if f, err := parser.ParseFile(fset, name, nil, parser.PackageClauseOnly); err == nil {
			return f.Name.Name
		}
	}
	if p.Name != "" {
		return p.Name
	}
	if f, err := parser.ParseFile(fset, generated, src, parser.PackageClauseOnly); err == nil {
		return f.Name.Name
	}
	return ""
}

// isGenerated reports whether src starts with Header.
func isGenerated(src []byte) bool {
	line, _, _ := bytes.Cut(src, []byte("\n"))
	return string(bytes.TrimRight(line, "\r")) == Header
}

// packageErrors converts the load, parse and type errors of p into user
// errors, leaving out "undefined: X" for identifiers X that generation will
// declare (the generated file is hidden while loading).
func packageErrors(p *packages.Package, generated map[string]bool, errs *errorList) {
	fromSource := p.Types != nil && len(p.Syntax) > 0
	for _, e := range p.Errors {
		if e.Kind == packages.TypeError && len(p.TypeErrors) > 0 {
			continue // reported from p.TypeErrors, with exact positions
		}
		if e.Kind == packages.ListError && fromSource && strings.HasPrefix(e.Msg, "# ") {
			// The compiler's errors from go list -export: the type checker
			// reports the same problems, and knows which ones generation fixes.
			continue
		}
		if e.Kind == packages.TypeError && undefinedGenerated(e.Msg, generated) {
			continue
		}
		errs.add(parsePos(e.Pos), "", "%s", e.Msg)
	}
	for _, e := range p.TypeErrors {
		if undefinedGenerated(e.Msg, generated) {
			continue
		}
		errs.add(e.Fset.Position(e.Pos), "", "%s", e.Msg)
	}
}

// undefinedGenerated reports whether msg is go/types' "undefined: X" or
// "undefined: pkg.X" for a generated identifier X.
func undefinedGenerated(msg string, generated map[string]bool) bool {
	name, ok := strings.CutPrefix(msg, "undefined: ")
	if !ok {
		return false
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return generated[name]
}

// parsePos parses the "file:line:col" (or "file:line", or "file") of a
// packages.Error.
func parsePos(s string) token.Position {
	if s == "" || s == "-" {
		return token.Position{}
	}
	var pos token.Position
	rest := s
	nums := make([]int, 0, 2)
	for range 2 {
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil {
			break
		}
		nums = append(nums, n)
		rest = rest[:i]
	}
	pos.Filename = rest
	switch len(nums) {
	case 1:
		pos.Line = nums[0]
	case 2:
		pos.Line, pos.Column = nums[1], nums[0]
	}
	return pos
}
