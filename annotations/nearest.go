package annotations

import "strings"

// Nearest returns the candidate nearest to word, for a "did you mean" hint,
// and its edit distance from word: the fewest single-rune insertions,
// deletions and substitutions that turn one into the other, ignoring case.
// Of equally near candidates the first wins, so candidates should come in a
// stable order. With no candidates it returns "" and -1.
//
// How near is near enough depends on what is misspelled, so the caller
// decides: the directive parser accepts more edits in a long option name
// than the generator does in a short Go identifier.
func Nearest(word string, candidates []string) (nearest string, edits int) {
	edits = -1
	w := []rune(strings.ToLower(word))
	for _, c := range candidates {
		if d := editDistance(w, []rune(strings.ToLower(c))); edits < 0 || d < edits {
			nearest, edits = c, d
		}
	}
	return nearest, edits
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
