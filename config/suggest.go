package config

import "fmt"

// DidYouMean returns ` (did you mean "x"?)` for the option closest to word, when
// one is close enough to be a likely typo, and "" otherwise.
func DidYouMean(word string, options []string) string {
	if s := Closest(word, options); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// Closest returns the option nearest to word within a typo's distance; "" when
// none is close, or when several are equally near (fc4 among fc1, fc2, fc3: a
// guess would mislead).
func Closest(word string, options []string) string {
	best, bestD, tie := "", -1, false
	limit := max(1, min(3, len(word)/3))
	for _, o := range options {
		if o == word {
			continue
		}
		d := levenshtein(word, o)
		switch {
		case d > limit:
		case bestD < 0 || d < bestD:
			best, bestD, tie = o, d, false
		case d == bestD && o != best:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// levenshtein is the edit distance with adjacent transpositions counted as one edit
// (optimal string alignment), so "amuont" is one step from "amount".
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
