package generator

import (
	"go/token"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SnakeCase converts a Go identifier to snake_case the way Python code names
// the same thing, keeping acronyms whole: sendHTTPRequest → send_http_request,
// userID → user_id, userIDs → user_ids, base64Data → base64_data.
func SnakeCase(s string) string {
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i, r := range rs {
		if i > 0 && isUpper(r) && rs[i-1] != '_' {
			prev := rs[i-1]
			switch {
			case unicode.IsLower(prev) || unicode.IsDigit(prev):
				b.WriteByte('_') // fooBar, v2Api
			case isUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && !pluralS(rs, i+1):
				b.WriteByte('_') // HTTPRequest: the R starts a word
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// isUpper reports whether r is an upper-case letter with a lower-case form
// (some symbols are upper-case letters without one).
func isUpper(r rune) bool { return unicode.IsUpper(r) && unicode.ToLower(r) != r }

// pluralS reports whether rs[i] is a lone "s" ending a word, as in URLs or IDs,
// which belongs to the acronym before it.
func pluralS(rs []rune, i int) bool {
	return rs[i] == 's' && (i+1 == len(rs) || !unicode.IsLower(rs[i+1]))
}

// upperFirst returns s with its first letter upper-cased.
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// fieldName is the field of the exported argument struct for parameter
// name: the name with its first letter upper-cased, or, when that is not an
// exported identifier (_id, 名前), the name prefixed with X.
func fieldName(name string) string {
	if f := upperFirst(name); token.IsExported(f) {
		return f
	}
	return "X" + name
}

// lowerFirst returns s with its first letter lower-cased.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// namer hands out identifiers that avoid a set of taken names.
type namer map[string]bool

// pick returns base, or base with a numeric suffix, whichever is first not
// taken in n or in any of more; it does not reserve the result.
func (n namer) pick(base string, more ...map[string]bool) string {
	taken := func(s string) bool {
		if n[s] {
			return true
		}
		for _, m := range more {
			if m[s] {
				return true
			}
		}
		return false
	}
	if !taken(base) {
		return base
	}
	for i := 1; ; i++ {
		s := base + strconv.Itoa(i)
		if !taken(s) {
			return s
		}
	}
}

// take is pick followed by reserving the result.
func (n namer) take(base string, more ...map[string]bool) string {
	s := n.pick(base, more...)
	n[s] = true
	return s
}
