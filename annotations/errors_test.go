package annotations_test

import (
	"fmt"
	"go/token"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/annotations"
)

func TestError_Error_forms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pos  token.Position
		task string
		want string
	}{
		{token.Position{Filename: "a/x.go", Line: 3, Column: 8}, "send", "a/x.go:3:8: task send: bad"},
		{token.Position{Filename: "a/x.go", Line: 3}, "", "a/x.go:3: bad"},
		{token.Position{Filename: "a/x.go"}, "", "a/x.go: bad"},
		{token.Position{Line: 3, Column: 8}, "", "3:8: bad"},
		{token.Position{}, "send", "task send: bad"},
	} {
		require.Equal(t, tc.want, annotations.Error{Pos: tc.pos, Task: tc.task, Msg: "bad"}.Error())
	}
}

func TestErrorList_Sort(t *testing.T) {
	t.Parallel()
	at := func(file string, line, col int) token.Position {
		return token.Position{Filename: file, Line: line, Column: col}
	}
	var l annotations.ErrorList
	l.Add(at("b.go", 1, 1), "", "first of b")
	l.Add(at("a.go", 2, 1), "", "line %d", 2)
	l.Add(at("a.go", 1, 5), "g", "z")
	l.Add(at("a.go", 1, 5), "", "unknown")
	l.Add(at("a.go", 1, 1), "", "column 1")
	l.Sort()
	var got []string
	for _, e := range l {
		got = append(got, e.Error())
	}
	require.Equal(t, []string{
		"a.go:1:1: column 1",
		"a.go:1:5: task g: z",
		"a.go:1:5: unknown",
		"a.go:2:1: line 2",
		"b.go:1:1: first of b",
	}, got)
}

func TestNearest(t *testing.T) {
	t.Parallel()
	cands := []string{"ErrClosed", "ErrExist", "ErrNotExist", "retry_backoff"}
	for _, tc := range []struct {
		word  string
		want  string
		edits int
	}{
		{"ErrNotExists", "ErrNotExist", 1},
		{"errexist", "ErrExist", 0},
		{"retry_backof", "retry_backoff", 1},
		{"ÉrrExist", "ErrExist", 1}, // counted in runes
		{"ErrClosd", "ErrClosed", 1},
	} {
		got, edits := annotations.Nearest(tc.word, cands)
		require.Equal(t, tc.want, got, tc.word)
		require.Equal(t, tc.edits, edits, tc.word)
	}
	got, edits := annotations.Nearest("x", nil)
	require.Equal(t, "", got)
	require.Equal(t, -1, edits)

	got, _ = annotations.Nearest("ab", []string{"ac", "ad"})
	require.Equal(t, "ac", got, "the first of equally near candidates wins")
}

func ExampleNearest() {
	best, edits := annotations.Nearest("retry_backof", []string{"queue", "retry_backoff", "retry_jitter"})
	if edits <= 2 {
		fmt.Println("did you mean " + best + "?")
	}
	// Output: did you mean retry_backoff?
}
