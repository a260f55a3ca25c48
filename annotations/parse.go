package annotations

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const prefix = "//task:"

// Parse parses the //task: directives of one doc comment group into Options,
// starting from [Defaults]. It also reports spaced directives ("// task:")
// found in the group. Errors are sorted by position. A nil doc gives the
// defaults and no errors.
func Parse(fset *token.FileSet, doc *ast.CommentGroup) (Options, []Error) {
	p := &parser{fset: fset}
	opts := p.parseGroup(doc)
	p.errs.Sort()
	return opts, p.errs
}

// parser collects the errors of one Parse or ParseFile call.
type parser struct {
	fset *token.FileSet
	errs ErrorList
}

func (p *parser) position(pos token.Pos) token.Position {
	if p.fset == nil || !pos.IsValid() {
		return token.Position{}
	}
	return p.fset.Position(pos)
}

func (p *parser) errorf(pos token.Pos, format string, args ...any) {
	p.errs.Add(p.position(pos), "", format, args...)
}

// directive is one //task: line, split into its parts with positions.
type directive struct {
	ast     ast.Directive // Tool "task"; Name may be "" or something ParseDirective refuses
	namePos token.Pos
}

func (d *directive) name() string { return d.ast.Name }

// isTaskDirective reports whether c is a //task: line (well-formed or not).
func isTaskDirective(c *ast.Comment) bool {
	return c != nil && strings.HasPrefix(c.Text, prefix)
}

// splitDirective splits a //task: comment. It uses [ast.ParseDirective] and
// falls back to the same rules for names ParseDirective refuses (empty, or
// not starting with [a-z0-9]), so those can be reported precisely.
func splitDirective(c *ast.Comment) directive {
	namePos := c.Slash + token.Pos(len(prefix))
	if d, ok := ast.ParseDirective(c.Slash, c.Text); ok && d.Tool == "task" {
		return directive{ast: d, namePos: namePos}
	}
	rest := c.Text[len(prefix):]
	end := strings.IndexFunc(rest, unicode.IsSpace)
	if end < 0 {
		end = len(rest)
	}
	name := rest[:end]
	args := strings.TrimLeftFunc(rest[end:], unicode.IsSpace)
	argsPos := namePos + token.Pos(len(rest)-len(args))
	args = strings.TrimRightFunc(args, unicode.IsSpace)
	return directive{
		ast:     ast.Directive{Tool: "task", Name: name, Args: args, Slash: c.Slash, ArgsPos: argsPos},
		namePos: namePos,
	}
}

// spacedDirective reports whether c looks like a //task: directive written
// with whitespace after "//" ("// task:queue x"), and returns the option name.
func spacedDirective(c *ast.Comment) (name string, ok bool) {
	if c == nil || !strings.HasPrefix(c.Text, "//") {
		return "", false
	}
	rest := c.Text[2:]
	trimmed := strings.TrimLeft(rest, " \t")
	if len(trimmed) == len(rest) || !strings.HasPrefix(trimmed, "task:") {
		return "", false
	}
	after := trimmed[len("task:"):]
	if after == "" || !isNameStart(after[0]) {
		return "", false
	}
	end := strings.IndexFunc(after, unicode.IsSpace)
	if end < 0 {
		end = len(after)
	}
	return after[:end], true
}

func isNameStart(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '_'
}

// checkSpaced reports c if it is a spaced directive.
func (p *parser) checkSpaced(c *ast.Comment) {
	if name, ok := spacedDirective(c); ok {
		p.errorf(c.Slash, `directive has a space after "//"; write //task:%s`, name)
	}
}

// parseGroup parses the directives of doc (which may be nil).
func (p *parser) parseGroup(doc *ast.CommentGroup) Options {
	opts := Defaults()
	if doc == nil {
		return opts
	}
	seen := map[string]token.Pos{} // option -> slash of its first directive
	for _, c := range doc.List {
		if c == nil {
			continue
		}
		if !isTaskDirective(c) {
			p.checkSpaced(c)
			continue
		}
		d := splitDirective(c)
		name := d.name()
		if name == "" {
			hint := ""
			if d.ast.Args != "" {
				w := d.ast.Args
				if i := strings.IndexFunc(w, unicode.IsSpace); i >= 0 {
					w = w[:i]
				}
				hint = fmt.Sprintf(" (remove the space: //task:%s)", w)
			}
			p.errorf(c.Slash, "missing option name after //task:%s", hint)
			continue
		}
		set, ok := setters[name]
		if !ok {
			p.errorf(d.namePos, "%s", unknownOption(name))
			continue
		}
		if prev, dup := seen[name]; dup && !repeatable[name] {
			p.errorf(c.Slash, "duplicate option %q (previous at %s)", name, p.position(prev))
			continue
		}
		if _, dup := seen[name]; !dup {
			seen[name] = c.Slash
			opts.Set[name] = p.position(c.Slash)
		}
		set(p, &opts, &d)
	}
	p.crossCheck(&opts, seen)
	return opts
}

// crossCheck validates relations between options.
func (p *parser) crossCheck(opts *Options, seen map[string]token.Pos) {
	p.checkSchedules(opts)
	if opts.SoftTimeLimit > 0 && opts.TimeLimit > 0 && opts.SoftTimeLimit >= opts.TimeLimit {
		p.errorf(seen["soft_time_limit"], "soft_time_limit %s must be less than time_limit %s",
			formatDuration(opts.SoftTimeLimit), formatDuration(opts.TimeLimit))
	}
	if len(opts.DontAutoretryFor) > 0 && len(opts.AutoretryFor) > 0 {
		in := map[string]ErrorRef{}
		for _, r := range opts.AutoretryFor {
			in[r.Expr] = r
		}
		for _, r := range opts.DontAutoretryFor {
			if prev, ok := in[r.Expr]; ok {
				p.errs.Add(r.Pos, "", "dont_autoretry_for: %q is also listed in autoretry_for (at %s)", r.Expr, prev.Pos)
			}
		}
	}
}

// unknownOption is the message for an option name outside the vocabulary.
func unknownOption(name string) string {
	msg := fmt.Sprintf("unknown option %q", name)
	if hint, ok := celeryHints[name]; ok {
		return msg + " (" + hint + ")"
	}
	if i := strings.IndexAny(name, "=:"); i > 0 {
		if _, ok := setters[name[:i]]; ok {
			return fmt.Sprintf("%s (write //task:%s %s)", msg, name[:i], name[i+1:])
		}
	}
	if s := suggest(name); s != "" {
		return fmt.Sprintf("%s (did you mean %s?)", msg, s)
	}
	return fmt.Sprintf("%s (valid options: %s)", msg, strings.Join(optionNames(), ", "))
}

// celeryHints answers Celery task options that have no directive.
var celeryHints = map[string]string{
	"bind":       "a Go task reads its request with runtime.TaskFromContext(ctx)",
	"serializer": "the serializer is set for the app, in runtime.Config",
	"cron":       `write //task:schedule cron "EXPR"`,
	"crontab":    `write //task:schedule cron "EXPR"`,
	"every":      "write //task:schedule every DURATION",
	"run_every":  "write //task:schedule every DURATION",
	"periodic":   `write //task:schedule every DURATION or //task:schedule cron "EXPR"`,
}

// setter parses the value of one option into opts.
type setter func(p *parser, opts *Options, d *directive)

var setters map[string]setter

func init() {
	setters = map[string]setter{
		"name": func(p *parser, o *Options, d *directive) {
			if v, pos, ok := p.required(d); ok {
				if !validTaskName(v) {
					p.errorf(pos, "name: %q is not a task name: use letters, digits and _ . : - only", v)
					return
				}
				o.Name = v
			}
		},
		"queue": func(p *parser, o *Options, d *directive) {
			if v, pos, ok := p.required(d); ok {
				if strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
					p.errorf(pos, "queue: %q must not contain spaces or control characters", v)
					return
				}
				o.Queue = v
			}
		},
		"autoretry_for": func(p *parser, o *Options, d *directive) {
			o.AutoretryFor = p.errorList(d)
		},
		"dont_autoretry_for": func(p *parser, o *Options, d *directive) {
			o.DontAutoretryFor = p.errorList(d)
		},
		"retry_backoff": func(p *parser, o *Options, d *directive) {
			v, pos, present, ok := p.single(d)
			switch {
			case !ok:
			case !present || v == "true":
				o.RetryBackoff = time.Second
			case v == "false":
				o.RetryBackoff = 0
			default:
				dur, err := parseDuration(v)
				if err != nil {
					p.errorf(pos, "retry_backoff: %q is not true, false, a duration (such as 2s) or a whole number of seconds%s",
						v, caseHint(v, "true", "false"))
					return
				}
				if dur < 0 {
					p.errorf(pos, "retry_backoff: %q is negative", v)
					return
				}
				o.RetryBackoff = dur
			}
		},
		"retry_backoff_max":   durationSetter("retry_backoff_max", func(o *Options) *time.Duration { return &o.RetryBackoffMax }),
		"retry_jitter":        boolSetter("retry_jitter", func(o *Options) *bool { return &o.RetryJitter }),
		"default_retry_delay": durationSetter("default_retry_delay", func(o *Options) *time.Duration { return &o.DefaultRetryDelay }),
		"time_limit":          durationSetter("time_limit", func(o *Options) *time.Duration { return &o.TimeLimit }),
		"soft_time_limit":     durationSetter("soft_time_limit", func(o *Options) *time.Duration { return &o.SoftTimeLimit }),
		"expires":             durationSetter("expires", func(o *Options) *time.Duration { return &o.Expires }),
		"unique": func(p *parser, o *Options, d *directive) {
			v, pos, ok := p.required(d)
			if !ok {
				return
			}
			dur, err := parseDuration(v)
			switch {
			case errors.Is(err, strconv.ErrRange):
				p.errorf(pos, "unique: %q is too large", v)
			case err != nil:
				p.errorf(pos, "unique: %q is not a duration (such as 90s, 10m or 1h30m) or a whole number of seconds%s", v, floatHint(v))
			case dur <= 0:
				p.errorf(pos, "unique: %q locks nothing; give how long a call stays unique at most, such as 10m", v)
			default:
				o.Unique = dur
			}
		},
		"acks_late":     boolSetter("acks_late", func(o *Options) *bool { return &o.AcksLate }),
		"ignore_result": boolSetter("ignore_result", func(o *Options) *bool { return &o.IgnoreResult }),
		"max_retries": func(p *parser, o *Options, d *directive) {
			v, pos, ok := p.required(d)
			if !ok {
				return
			}
			if v == "none" {
				o.MaxRetries = -1
				return
			}
			n, err := parseUint(v)
			if err != nil {
				hint := ""
				switch {
				case strings.EqualFold(v, "none"):
					hint = " (write none in lower case)"
				case strings.HasPrefix(v, "-"):
					hint = " (use none for no limit)"
				case errors.Is(err, strconv.ErrRange):
					hint = " (it is too large; use none for no limit)"
				}
				p.errorf(pos, "max_retries: %q is not a non-negative integer or none%s", v, hint)
				return
			}
			o.MaxRetries = n
		},
		"rate_limit": func(p *parser, o *Options, d *directive) {
			v, pos, ok := p.required(d)
			if !ok {
				return
			}
			r, msg := parseRateLimit(v)
			if msg != "" {
				p.errorf(pos, "rate_limit: %s", msg)
				return
			}
			o.RateLimit = r
		},
		"schedule": func(p *parser, o *Options, d *directive) { p.schedule(o, d) },
		"priority": func(p *parser, o *Options, d *directive) {
			v, pos, ok := p.required(d)
			if !ok {
				return
			}
			n, err := parseUint(v)
			if rest, neg := strings.CutPrefix(v, "-"); neg {
				if _, err2 := parseUint(rest); err2 == nil || errors.Is(err2, strconv.ErrRange) {
					err = strconv.ErrRange
				}
			}
			switch {
			case err != nil && !errors.Is(err, strconv.ErrRange):
				p.errorf(pos, "priority: %q is not an integer in 0..255", v)
			case err != nil || n > 255:
				p.errorf(pos, "priority: %s is out of range 0..255", v)
			default:
				o.Priority, o.HasPriority = n, true
			}
		},
	}
}

func durationSetter(name string, field func(*Options) *time.Duration) setter {
	return func(p *parser, o *Options, d *directive) {
		v, pos, ok := p.required(d)
		if !ok {
			return
		}
		dur, err := parseDuration(v)
		if errors.Is(err, strconv.ErrRange) {
			p.errorf(pos, "%s: %q is too large", name, v)
			return
		}
		if err != nil {
			p.errorf(pos, "%s: %q is not a duration (such as 90s, 10m or 1h30m) or a whole number of seconds%s",
				name, v, floatHint(v))
			return
		}
		if dur < 0 {
			p.errorf(pos, "%s: %q is negative", name, v)
			return
		}
		*field(o) = dur
	}
}

func boolSetter(name string, field func(*Options) *bool) setter {
	return func(p *parser, o *Options, d *directive) {
		v, pos, present, ok := p.single(d)
		switch {
		case !ok:
		case !present || v == "true":
			*field(o) = true
		case v == "false":
			*field(o) = false
		default:
			p.errorf(pos, "%s: %q is not true or false%s", name, v, caseHint(v, "true", "false"))
		}
	}
}

// single returns the one value of d. present is false for a bare directive;
// ok is false (and an error reported) when the value is malformed.
func (p *parser) single(d *directive) (v string, pos token.Pos, present, ok bool) {
	if d.ast.Args == "" {
		return "", d.ast.Slash, false, true
	}
	args, err := d.ast.ParseArgs()
	if err != nil {
		p.errorf(d.ast.ArgsPos, "%s: malformed quoted string: %s", d.name(), d.ast.Args)
		return "", d.ast.ArgsPos, true, false
	}
	if len(args) != 1 {
		p.errorf(d.ast.ArgsPos, "%s: expected one value, got %q", d.name(), d.ast.Args)
		return "", d.ast.ArgsPos, true, false
	}
	return args[0].Arg, args[0].Pos, true, true
}

// required is single for options that need a value.
func (p *parser) required(d *directive) (v string, pos token.Pos, ok bool) {
	v, pos, present, ok := p.single(d)
	if !ok {
		return "", pos, false
	}
	if !present || v == "" {
		msg := "missing value"
		if present {
			msg = "empty value"
		}
		syntax := ""
		if doc, ok := docOf(d.name()); ok {
			syntax = " (syntax: " + doc.Syntax + ")"
		}
		p.errorf(pos, "%s: %s%s", d.name(), msg, syntax)
		return "", pos, false
	}
	return v, pos, true
}

// errorList parses a comma-separated autoretry_for list.
func (p *parser) errorList(d *directive) []ErrorRef {
	name := d.name()
	if d.ast.Args == "" {
		p.errorf(d.ast.Slash, "%s: missing value (syntax: //task:%s ERROR[, ERROR...])", name, name)
		return nil
	}
	var refs []ErrorRef
	first := map[string]token.Position{}
	rest, off := d.ast.Args, 0
	for {
		elem := rest
		i := strings.IndexByte(rest, ',')
		if i >= 0 {
			elem = rest[:i]
		}
		lead := len(elem) - len(strings.TrimLeftFunc(elem, unicode.IsSpace))
		expr := strings.TrimSpace(elem)
		pos := d.ast.ArgsPos + token.Pos(off+lead)
		switch {
		case expr == "":
			p.errorf(pos, "%s: empty element in list %q", name, d.ast.Args)
		default:
			ref, ok := parseErrorRef(expr)
			if !ok {
				hint := ""
				if strings.IndexFunc(expr, unicode.IsSpace) >= 0 {
					hint = " (separate names with commas)"
				}
				p.errorf(pos, "%s: %q is not an error type or value name ([*]Name or [*]pkg.Name)%s", name, expr, hint)
				break
			}
			ref.Pos = p.position(pos)
			if prev, dup := first[expr]; dup {
				p.errorf(pos, "%s: %q listed twice (previous at %s)", name, expr, prev)
				break
			}
			first[expr] = ref.Pos
			refs = append(refs, ref)
		}
		if i < 0 {
			break
		}
		rest, off = rest[i+1:], off+i+1
	}
	return refs
}

// parseErrorRef parses "[*]Ident" or "[*]pkg.Ident".
func parseErrorRef(expr string) (ErrorRef, bool) {
	ref := ErrorRef{Expr: expr}
	s := expr
	if strings.HasPrefix(s, "*") {
		ref.Pointer, s = true, s[1:]
	}
	pkg, ident, qualified := strings.Cut(s, ".")
	if !qualified {
		pkg, ident = "", s
	}
	if qualified && !isIdent(pkg) || !isIdent(ident) {
		return ErrorRef{}, false
	}
	ref.Pkg, ref.Ident = pkg, ident
	return ref, true
}

func isIdent(s string) bool { return s != "_" && token.IsIdentifier(s) }

func validTaskName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.:-", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// parseUint parses a decimal integer made of digits only.
func parseUint(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.ParseInt(s, 10, 32)
	return int(n), err
}

// parseDuration parses a Go duration or a whole number of seconds, either
// possibly negative (callers reject negative values with their own message).
func parseDuration(s string) (time.Duration, error) {
	if rest, neg := strings.CutPrefix(s, "-"); neg && rest != "" && rest[0] != '-' && rest[0] != '+' {
		d, err := parseDuration(rest)
		return -d, err
	}
	if s != "" && strings.TrimLeft(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n > math.MaxInt64/uint64(time.Second) {
			return 0, strconv.ErrRange
		}
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// parseRateLimit parses "N", "N/s", "N/m" or "N/h"; msg explains a failure.
func parseRateLimit(s string) (r RateLimit, msg string) {
	num, unit, hasUnit := strings.Cut(s, "/")
	per := time.Second
	if hasUnit {
		switch unit {
		case "s":
		case "m":
			per = time.Minute
		case "h":
			per = time.Hour
		default:
			return r, fmt.Sprintf("%q has an unknown period %q: use /s, /m or /h", s, unit)
		}
	}
	n, err := parseUint(num)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return r, fmt.Sprintf("%q is too large", s)
		}
		return r, fmt.Sprintf("%q is not a rate such as 10/s, 100/m or 1000/h", s)
	}
	if n == 0 {
		return r, fmt.Sprintf("%q must allow at least 1 task per period (leave rate_limit out for no limit)", s)
	}
	return RateLimit{N: n, Per: per}, ""
}

// caseHint suggests lower case when v is one of words in another case.
func caseHint(v string, words ...string) string {
	for _, w := range words {
		if v != w && strings.EqualFold(v, w) {
			return " (write " + w + " in lower case)"
		}
	}
	return ""
}

// floatHint suggests a unit for "1.5" style seconds.
func floatHint(v string) string {
	if _, err := strconv.ParseFloat(v, 64); err == nil && strings.Contains(v, ".") && strings.TrimLeft(v, "0123456789.") == "" {
		return " (write " + v + "s)"
	}
	return ""
}

// formatDuration prints d without zero trailing units: 10m, 1h, 1h30m, 1.5s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// suggest returns the vocabulary name closest to name, or "" if none is close.
func suggest(name string) string {
	if utf8.RuneCountInString(name) > 64 {
		return ""
	}
	lower := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	best, bestDist := Nearest(lower, optionNames())
	if bestDist <= max(2, len(best)/4) {
		return best
	}
	// The only option starting with, or else containing, what was written:
	// "autoretry", "retries".
	if len(lower) < 4 {
		return ""
	}
	if s := uniqueMatch(lower, strings.HasPrefix); s != "" {
		return s
	}
	return uniqueMatch(lower, strings.Contains)
}

// uniqueMatch returns the only vocabulary name n with match(n, s), or "".
func uniqueMatch(s string, match func(n, s string) bool) string {
	found := ""
	for _, d := range Vocabulary {
		if match(d.Name, s) {
			if found != "" {
				return ""
			}
			found = d.Name
		}
	}
	return found
}
