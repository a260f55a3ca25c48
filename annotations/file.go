package annotations

import (
	"fmt"
	"go/ast"
	"go/token"
)

// ParseFile finds every declaration of f carrying //task: directives, parses
// and validates them, and reports every problem in the file: option errors,
// spaced directives ("// task:") anywhere, directives on methods, and
// directives not attached to a function declaration or func type.
//
// Decls are in source order and include declarations whose options have
// errors (with those options left at their defaults). Errors are sorted by
// position. f must have been parsed with [go/parser.ParseComments] for
// directives to be seen. ParseFile never panics.
func ParseFile(fset *token.FileSet, f *ast.File) ([]Decl, []Error) {
	if f == nil {
		return nil, nil
	}
	p := &parser{fset: fset}
	done := map[*ast.CommentGroup]bool{}
	var decls []Decl
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Doc == nil {
				continue
			}
			done[d.Doc] = true
			opts := p.parseGroup(d.Doc)
			first := firstDirective(d.Doc)
			switch {
			case first == nil || d.Name == nil:
			case d.Recv != nil:
				p.errorf(first.Slash, "//task: directive on %s: a task is a plain function, not a method", funcName(d))
			default:
				decls = append(decls, Decl{Func: d, Pos: p.position(d.Name.Pos()), Options: opts})
			}
		case *ast.GenDecl:
			if d.Tok != token.TYPE {
				continue // var, const and import docs are misplaced directives, reported below
			}
			single := len(d.Specs) == 1 && !d.Lparen.IsValid()
			for _, s := range d.Specs {
				ts, ok := s.(*ast.TypeSpec)
				if !ok || ts.Name == nil || !isFuncType(ts) {
					continue
				}
				var groups []*ast.CommentGroup
				if single && d.Doc != nil {
					groups = append(groups, d.Doc)
				}
				if ts.Doc != nil && ts.Doc != d.Doc {
					groups = append(groups, ts.Doc)
				}
				if len(groups) == 0 {
					continue
				}
				doc := &ast.CommentGroup{}
				for _, g := range groups {
					done[g] = true
					doc.List = append(doc.List, g.List...)
				}
				opts := p.parseGroup(doc)
				if firstDirective(doc) != nil {
					decls = append(decls, Decl{TypeSpec: ts, Pos: p.position(ts.Name.Pos()), Options: opts})
				}
			}
		}
	}
	for _, g := range f.Comments {
		if g == nil || done[g] {
			continue
		}
		done[g] = true
		for _, c := range g.List {
			p.checkSpaced(c)
		}
		if first := firstDirective(g); first != nil {
			p.errorf(first.Slash, "//task: directive is not attached to a function declaration%s", p.placementHint(f, g))
		}
	}
	p.errs.Sort()
	return decls, p.errs
}

// firstDirective returns the first //task: line of g, or nil.
func firstDirective(g *ast.CommentGroup) *ast.Comment {
	if g == nil {
		return nil
	}
	for _, c := range g.List {
		if isTaskDirective(c) {
			return c
		}
	}
	return nil
}

// isFuncType reports whether ts defines a func type (not an alias).
func isFuncType(ts *ast.TypeSpec) bool {
	if ts.Assign.IsValid() {
		return false
	}
	_, ok := ast.Unparen(ts.Type).(*ast.FuncType)
	return ok
}

// placementHint explains, in parentheses, where the misplaced group g is and
// how to attach it.
func (p *parser) placementHint(f *ast.File, g *ast.CommentGroup) string {
	if g == f.Doc {
		return " (it is the package doc comment)"
	}
	line := func(pos token.Pos) int { return p.position(pos).Line }
	var prev, next ast.Decl
	for _, decl := range f.Decls {
		if decl == nil {
			continue
		}
		if gd, ok := decl.(*ast.GenDecl); ok {
			if h := genDeclHint(gd, g); h != "" {
				return " (" + h + ")"
			}
		}
		switch {
		case decl.Pos() <= g.Pos() && g.End() <= decl.End():
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil && fd.Body.Pos() <= g.Pos() {
				return fmt.Sprintf(" (it is inside the body of %s)", funcName(fd))
			}
			return fmt.Sprintf(" (it is inside the declaration of %s)", declName(decl))
		case decl.End() <= g.Pos():
			prev = decl
		case next == nil && g.End() <= decl.Pos():
			next = decl
		}
	}
	endLine := 0 // line where the code before g ends
	switch {
	case prev != nil:
		endLine = line(prev.End())
	case f.Name != nil:
		endLine = line(f.Name.End())
	}
	if endLine > 0 && endLine == line(g.Pos()) {
		return " (a comment at the end of a line is not a doc comment; put the directive on its own line directly above the func)"
	}
	switch d := next.(type) {
	case *ast.FuncDecl:
		if d.Doc == nil {
			return fmt.Sprintf(" (remove the blank line between the directive and %s)", funcName(d))
		}
		return fmt.Sprintf(" (move it into the doc comment of %s)", funcName(d))
	case *ast.GenDecl:
		if ts := singleFuncType(d); ts != nil {
			if d.Doc == nil && ts.Doc == nil {
				return fmt.Sprintf(" (remove the blank line between the directive and type %s)", ts.Name.Name)
			}
			return fmt.Sprintf(" (move it into the doc comment of type %s)", ts.Name.Name)
		}
	}
	return " (put it in the doc comment directly above a func declaration)"
}

// genDeclHint explains a directive in the doc comment of gd or of one of its
// specs (other than a func type's), or returns "".
func genDeclHint(gd *ast.GenDecl, g *ast.CommentGroup) string {
	if gd.Doc == g {
		if len(gd.Specs) == 1 && !gd.Lparen.IsValid() {
			return specHint(gd.Tok, gd.Specs[0])
		}
		if gd.Tok == token.TYPE {
			return "it documents the whole type group; put it directly above the func type's name"
		}
		return fmt.Sprintf("it documents a group of %s declarations", gd.Tok)
	}
	for _, s := range gd.Specs {
		var doc *ast.CommentGroup
		switch s := s.(type) {
		case *ast.ValueSpec:
			doc = s.Doc
		case *ast.TypeSpec:
			doc = s.Doc
		case *ast.ImportSpec:
			doc = s.Doc
		}
		if doc == g {
			return specHint(gd.Tok, s)
		}
	}
	return ""
}

func specHint(tok token.Token, s ast.Spec) string {
	switch s := s.(type) {
	case *ast.ValueSpec:
		if len(s.Names) > 0 && s.Names[0] != nil {
			return fmt.Sprintf("%s %s is not a function declaration", tok, s.Names[0].Name)
		}
	case *ast.TypeSpec:
		if s.Name == nil {
			break
		}
		if s.Assign.IsValid() {
			return fmt.Sprintf("type %s is an alias; declare it as a defined func type, without =", s.Name.Name)
		}
		return fmt.Sprintf("type %s is not a func type", s.Name.Name)
	case *ast.ImportSpec:
		return "it documents an import"
	}
	return fmt.Sprintf("it documents a %s declaration", tok)
}

// singleFuncType returns the func TypeSpec of a non-grouped type declaration.
func singleFuncType(gd *ast.GenDecl) *ast.TypeSpec {
	if gd.Tok != token.TYPE || len(gd.Specs) != 1 || gd.Lparen.IsValid() {
		return nil
	}
	ts, ok := gd.Specs[0].(*ast.TypeSpec)
	if !ok || ts.Name == nil || !isFuncType(ts) {
		return nil
	}
	return ts
}

// funcName names a function "func f" or a method "method (*T).M".
func funcName(fd *ast.FuncDecl) string {
	name := "_"
	if fd.Name != nil {
		name = fd.Name.Name
	}
	if fd.Recv == nil || len(fd.Recv.List) == 0 || fd.Recv.List[0] == nil {
		return "func " + name
	}
	recv := typeName(fd.Recv.List[0].Type)
	if len(recv) > 0 && recv[0] == '*' {
		recv = "(" + recv + ")"
	}
	return "method " + recv + "." + name
}

// typeName renders a receiver type: T, *T (type parameters dropped).
func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return "*" + typeName(e.X)
	case *ast.ParenExpr:
		return typeName(e.X)
	case *ast.IndexExpr:
		return typeName(e.X)
	case *ast.IndexListExpr:
		return typeName(e.X)
	}
	return "?"
}

// declName names a declaration for messages.
func declName(d ast.Decl) string {
	switch d := d.(type) {
	case *ast.FuncDecl:
		return funcName(d)
	case *ast.GenDecl:
		if len(d.Specs) > 0 {
			switch s := d.Specs[0].(type) {
			case *ast.TypeSpec:
				if s.Name != nil {
					return "type " + s.Name.Name
				}
			case *ast.ValueSpec:
				if len(s.Names) > 0 && s.Names[0] != nil {
					return d.Tok.String() + " " + s.Names[0].Name
				}
			}
		}
		return d.Tok.String() + " declaration"
	}
	return "a declaration"
}
