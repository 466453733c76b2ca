package workflow

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxName is the longest task name: a DNS-1123 label, the strictest name
// Kubernetes derives from a task (its pod's hostname).
const maxName = 63

// TaskNames maps stage ids to DAG task names made of lowercase letters, digits
// and '-', starting and ending with a letter or digit, at most 63 characters:
// "prune[amount=0.5]" becomes "prune-amount-0-5". An id that is such a name
// already keeps it; one whose mapping is cut short or collides with another's
// gets a suffix from a hash of the id, so names stay unique and stable.
func TaskNames(ids []string) (map[string]string, error) {
	names := make(map[string]string, len(ids))
	count := map[string]int{}
	for _, id := range ids {
		names[id] = sanitize(id)
		count[names[id]]++
	}
	for _, id := range ids {
		n := names[id]
		if (n != id && count[n] > 1) || len(n) > maxName {
			names[id] = withHash(n, id)
		}
	}
	seen := map[string]string{}
	for _, id := range ids {
		if other, ok := seen[names[id]]; ok {
			return nil, fmt.Errorf("stages %q and %q map to one task name %q: rename one", other, id, names[id])
		}
		seen[names[id]] = id
	}
	return names, nil
}

// sanitize lowercases id and turns every run of other characters into one '-'.
func sanitize(id string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "stage"
	}
	return b.String()
}

// withHash appends 8 hex digits of the id's sha256, cutting name to fit.
func withHash(name, id string) string {
	sum := sha256.Sum256([]byte(id))
	suffix := "-" + hex.EncodeToString(sum[:4])
	if len(name) > maxName-len(suffix) {
		name = strings.TrimRight(name[:maxName-len(suffix)], "-")
	}
	return name + suffix
}
