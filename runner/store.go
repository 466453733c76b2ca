package runner

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/shrink-ml/shrink/checkpoint"
)

// Store keeps stage results by key: a folder per key holding model.safetensors,
// metrics.json, any extra files the stage made, and entry.json (the key's
// ingredients and every file's sha256). A result appears only complete: it is
// assembled in a temporary folder and renamed into place. Changing a recipe and
// changing it back finds the earlier result here.
type Store struct {
	Dir string
	// Remote, when set, is the shared store (s3://) that Dir caches: Lookup
	// fetches results from it and Publish uploads them (store_remote.go).
	Remote Remote
}

// Entry is a stored result's index.
type Entry struct {
	Key    string            `json:"key"`
	Stage  string            `json:"stage"`
	Type   string            `json:"type"`
	Inputs KeyDoc            `json:"inputs"` // what the key hashes
	Files  map[string]string `json:"files"`  // relative path -> sha256
	// Checkpoint is the sha256 of model.safetensors.
	Checkpoint string         `json:"sha256"`
	Metrics    map[string]any `json:"metrics"`
	Seconds    float64        `json:"seconds"`
}

func (s *Store) path(key string) string { return filepath.Join(s.Dir, key[:2], key) }

// Lookup returns a key's entry when it is complete and every file verifies; the
// error says why not (fs.ErrNotExist when the key was never stored).
func (s *Store) Lookup(key string) (*Entry, error) {
	e, err := s.lookupLocal(key)
	if s.Remote != nil {
		return s.syncRemote(key, e, err)
	}
	return e, err
}

func (s *Store) lookupLocal(key string) (*Entry, error) {
	e, err := s.readEntry(key)
	if err != nil {
		return nil, err
	}
	dir := s.path(key)
	for rel, sum := range e.Files {
		got, err := checkpoint.Digest(filepath.Join(dir, rel))
		if err != nil {
			return nil, &CorruptError{File: rel, Missing: true}
		}
		if got != sum {
			return nil, &CorruptError{File: rel, Got: got, Want: sum}
		}
	}
	return e, nil
}

// readEntry reads a key's entry.json, without checking the files it lists.
func (s *Store) readEntry(key string) (*Entry, error) {
	if !isKey(key) {
		return nil, fmt.Errorf("%q is not a stage key", key)
	}
	b, err := os.ReadFile(filepath.Join(s.path(key), "entry.json"))
	if err != nil {
		return nil, err
	}
	return parseEntry(key, b)
}

// isKey says whether s is a stage key: 64 lowercase hex digits.
func isKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CorruptError is a stored file that is missing or whose digest changed.
type CorruptError struct {
	File      string // relative to the result's folder
	Missing   bool
	Got, Want string
}

func (e *CorruptError) Error() string {
	if e.Missing {
		return e.File + " is missing"
	}
	return fmt.Sprintf("%s is corrupt (sha256 %.12s..., recorded %.12s...)", e.File, e.Got, e.Want)
}

// File is the path of a stored file.
func (s *Store) File(key, rel string) string { return filepath.Join(s.path(key), rel) }

// Publish moves a finished stage's folder (work) into the store under the key,
// recording every file's digest. If another process published the key first,
// its result stands and work is discarded, unless replace is set (a forced rerun).
// With a Remote, the result is then uploaded; if another worker published the
// key first, e becomes that result (see push).
func (s *Store) Publish(work string, e *Entry, replace bool) error {
	if err := s.publishLocal(work, e, replace); err != nil || s.Remote == nil {
		return err
	}
	won, err := s.push(e.Key, replace)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", s.Remote, err)
	}
	*e = *won
	return nil
}

func (s *Store) publishLocal(work string, e *Entry, replace bool) error {
	e.Files = map[string]string{}
	err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		sum, err := checkpoint.Digest(p)
		if err != nil {
			return err
		}
		e.Files[filepath.ToSlash(rel)] = sum
		return nil
	})
	if err != nil {
		return err
	}
	e.Checkpoint = e.Files["model.safetensors"]
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := checkpoint.WriteBytes(filepath.Join(work, "entry.json"), b); err != nil {
		return err
	}
	syncDir(work)
	dst := s.path(e.Key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if replace {
		// Move the old result aside first: a reader sees the old or the new, or
		// (briefly) none, never a mix.
		old := dst + ".old-" + randomHex(4)
		if err := os.Rename(dst, old); err == nil {
			defer os.RemoveAll(old)
		}
	}
	if err := os.Rename(work, dst); err != nil {
		// Published by someone else meanwhile: theirs stands, and e becomes it,
		// so digests and folders agree with the store.
		adopt := func() bool {
			won, lookErr := s.lookupLocal(e.Key)
			if lookErr == nil {
				*e = *won
				os.RemoveAll(work)
			}
			return lookErr == nil
		}
		if adopt() {
			return nil
		}
		// What is there is incomplete (an interrupted publish) or corrupt (a
		// file edited in place through a run folder's hard link): replace it.
		old := dst + ".old-" + randomHex(4)
		if mvErr := os.Rename(dst, old); mvErr != nil {
			return err
		}
		defer os.RemoveAll(old)
		if err := os.Rename(work, dst); err != nil {
			if adopt() { // another publisher won the gap
				return nil
			}
			return err
		}
	}
	syncDir(filepath.Dir(dst))
	return nil
}

// Keys lists every complete key in the store.
func (s *Store) Keys() ([]string, error) {
	var keys []string
	shards, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(s.Dir, sh.Name()))
		for _, e := range entries {
			// Only what shrink names: a store folder given by mistake loses nothing.
			if isKey(e.Name()) && e.Name()[:2] == sh.Name() && e.IsDir() {
				keys = append(keys, e.Name())
			}
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Remove deletes a key's result.
func (s *Store) Remove(key string) error { return os.RemoveAll(s.path(key)) }

// tempDir makes a fresh folder under dir (the store's tmp) for assembling a
// result, locked until unlock: gc, which may share the store with running
// stages, removes only folders nobody holds. Making and locking the folder
// happens under a shared lock on dir/.lock, which gc holds exclusively while it
// sweeps, so gc never sees a folder made but not yet locked.
func tempDir(dir, prefix string) (work string, unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	release, err := flock(filepath.Join(dir, tmpLock), false, true)
	if err != nil {
		return "", nil, err
	}
	defer release()
	if work, err = os.MkdirTemp(dir, prefix); err != nil {
		return "", nil, err
	}
	if unlock, err = flock(work, true, false); err != nil {
		os.RemoveAll(work)
		return "", nil, err
	}
	return work, unlock, nil
}

// tmpLock is the lock file in a store's tmp folder (see tempDir).
const tmpLock = ".lock"

// linkOrCopy places src at dst atomically: a hard link when the file system
// allows, else a copy.
func linkOrCopy(src, dst string) error {
	tmp := dst + ".tmp-" + randomHex(6)
	if err := os.Link(src, tmp); err != nil {
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			os.Remove(tmp)
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			os.Remove(tmp)
			return err
		}
		out.Close()
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
