package generator

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/packages"
)

// Package is one type-checked package, as go/packages or a go/analysis pass
// provides it, for [Check].
type Package struct {
	Fset *token.FileSet
	// Files are the files whose tasks are checked, parsed with comments.
	// Package-level declarations of other files of Types (a generated file,
	// test files) are ignored: the checks see the package as taskgen does,
	// without its generated file.
	Files []*ast.File
	Types *types.Package
	// Info must hold at least Defs, Implicits and Scopes.
	Info *types.Info
	// Output is the base name of the generated file, named in messages;
	// "" means DefaultOutput.
	Output string
}

// Check runs taskgen's checks on one type-checked package and returns every
// error it finds, sorted by position: the directive errors of every file
// (as [annotations.ParseFile] reports them), then for each task its name,
// signature, parameter and result types, options and autoretry_for
// elements, schedules, the identifiers generation would declare, and task
// and schedule entry names used twice in the package.
//
// It does not report what [Generate] finds beyond one type-checked package:
// load, parse and type errors, task names shared with tasks of other
// packages of a run, and a generated file that taskgen did not write.
//
// Positions are as pkg.Fset gives them; positions inside messages too
// ("previous at /abs/x.go:3:1").
func Check(pkg *Package) []*Error {
	errs := &errorList{}
	c := newPkgChecker(pkg, errs)
	c.findAndCheck()
	checkCeleryNames([]*pkgChecker{c}, errs)
	checkScheduleNames([]*pkgChecker{c}, errs)
	return errs.pointers()
}

// packageOf is the Package of p for the checks, or nil when p did not
// type-check at all.
func packageOf(p *packages.Package, output string) *Package {
	if p.Types == nil || p.TypesInfo == nil || p.Fset == nil {
		return nil
	}
	return &Package{Fset: p.Fset, Files: p.Syntax, Types: p.Types, Info: p.TypesInfo, Output: output}
}
