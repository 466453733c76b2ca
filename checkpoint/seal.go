package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
)

// SealKey is the metadata key where Seal records a file's content digest.
const SealKey = "content_sha256"

// ErrSeal is matched (with errors.Is) by CheckSeal's errors.
var ErrSeal = errors.New("checkpoint: content digest")

// Seal records in f's metadata the sha256 of everything else f holds (every
// other metadata entry, and every tensor's name, dtype, shape and bytes), so a
// reader can tell a file that changed after it was written (a flipped bit in a
// weight parses fine) with CheckSeal. Files that must stay plain state_dicts
// do not need it: it is for state shrink alone reads back, such as training
// state resumed mid-stage.
func Seal(f *File) {
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	f.Metadata[SealKey] = contentDigest(f)
}

// CheckSeal verifies the digest Seal recorded: a file without one, or whose
// content no longer hashes to it, is an error matching ErrSeal.
func CheckSeal(f *File) error {
	want, ok := f.Metadata[SealKey]
	if !ok {
		return fmt.Errorf("%w is missing (metadata %q)", ErrSeal, SealKey)
	}
	if got := contentDigest(f); got != want {
		return fmt.Errorf("%w does not match: the file changed after it was written (sha256 %.12s..., recorded %.12s...)", ErrSeal, got, want)
	}
	return nil
}

// contentDigest hashes f's content in a canonical order, every field length
// prefixed so no two different files hash alike.
func contentDigest(f *File) string {
	h := sha256.New()
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		if k != SealKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	putInt(h, uint64(len(keys)))
	for _, k := range keys {
		putBytes(h, []byte(k))
		putBytes(h, []byte(f.Metadata[k]))
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch na, nb := f.Tensors[a].Name, f.Tensors[b].Name; {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	})
	putInt(h, uint64(len(order)))
	for _, i := range order {
		t := &f.Tensors[i]
		putBytes(h, []byte(t.Name))
		putBytes(h, []byte(t.DType))
		putInt(h, uint64(len(t.Shape)))
		for _, d := range t.Shape {
			putInt(h, uint64(d))
		}
		putBytes(h, t.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func putInt(h hash.Hash, n uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	h.Write(b[:])
}

func putBytes(h hash.Hash, b []byte) {
	putInt(h, uint64(len(b)))
	h.Write(b)
}
