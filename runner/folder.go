package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Folder is the run-folder name of a stage id, safe on every file system and in
// shells: "prune[amount=0.5,method=l1_unstructured]" becomes
// "prune@amount=0.5,method=l1_unstructured". Characters outside [A-Za-z0-9._,=+-@]
// become '_' and then a short hash of the id keeps names distinct.
func Folder(id string) string {
	var b strings.Builder
	changed := false
	for _, r := range strings.TrimSuffix(id, "]") {
		switch {
		case r == '[':
			b.WriteByte('@')
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._,=+-", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	name := b.String()
	if changed || strings.HasSuffix(name, ".") || len(name) > 120 {
		sum := sha256.Sum256([]byte(id))
		if len(name) > 100 {
			name = name[:100]
		}
		name += "~" + hex.EncodeToString(sum[:4])
	}
	return name
}
