// Package words writes counts for people: "1 task", "2 tasks", "1 batch", "3 batches".
package words

import (
	"strconv"
	"strings"
)

// Count returns n and the noun, in the plural unless n is 1 (see Plural).
func Count[N ~int | ~int64](n N, noun string) string {
	s := strconv.FormatInt(int64(n), 10) + " "
	if n == 1 {
		return s + noun
	}
	return s + Plural(noun)
}

// Plural returns the English plural of a regular noun (of the last word of a phrase):
// batch → batches, entry → entries, task → tasks.
func Plural(noun string) string {
	last := noun[strings.LastIndexByte(noun, ' ')+1:]
	switch {
	case strings.HasSuffix(last, "ch"), strings.HasSuffix(last, "sh"), strings.HasSuffix(last, "s"), strings.HasSuffix(last, "x"):
		return noun + "es"
	case len(last) > 1 && strings.HasSuffix(last, "y") && !strings.ContainsRune("aeiou", rune(last[len(last)-2])):
		return noun[:len(noun)-1] + "ies"
	}
	return noun + "s"
}

// Prefixes returns, for each id, its shortest prefix of at least least characters that no other
// id of ids starts with (the whole id when another id starts with it), so that ids created in
// the same instant (which share their leading time digits) still look different on a line.
func Prefixes(ids []string, least int) map[string]string {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		n := least
		for ; n < len(id); n++ {
			unique := true
			for _, other := range ids {
				if other != id && len(other) >= n && other[:n] == id[:n] {
					unique = false
					break
				}
			}
			if unique {
				break
			}
		}
		out[id] = id[:min(n, len(id))]
	}
	return out
}
