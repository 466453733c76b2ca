package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// How a Store with a Remote behaves: the local folder (Dir) is a cache of the
// remote one. Lookup fetches a result the folder lacks, verifying every file,
// into the folder; Publish assembles and stores the result locally, then
// uploads it. Peek reads only the entry, for planning: a worker running one
// stage downloads that stage's inputs, not every result the recipe has.

// checkTimeout bounds the first request to a remote store, so a wrong endpoint
// fails in seconds rather than after the client's retries.
const checkTimeout = 30 * time.Second

// Check says whether the store can be used; for a local one it always can.
func (s *Store) Check() error {
	if s.Remote == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	return s.Remote.Check(ctx)
}

// Peek is Lookup without downloading: a verified local result, or else the
// remote entry alone (its files are verified when Lookup fetches them).
func (s *Store) Peek(key string) (*Entry, error) {
	e, _, err := s.peek(key)
	return e, err
}

// peek is Peek, also saying whether the result's files are here, verified.
func (s *Store) peek(key string) (e *Entry, local bool, err error) {
	e, err = s.lookupLocal(key)
	if err == nil || s.Remote == nil {
		return e, err == nil, err
	}
	b, rerr := s.Remote.Entry(context.Background(), key)
	if rerr != nil {
		return nil, false, preferLocal(err, rerr)
	}
	e, err = parseEntry(key, b)
	return e, false, err
}

// preferLocal picks the error to report when neither copy of a result is
// usable: a corrupt local copy says more than "not published".
func preferLocal(local, remote error) error {
	if errors.Is(remote, fs.ErrNotExist) {
		return local
	}
	return remote
}

func parseEntry(key string, b []byte) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("entry.json is corrupt: %w", err)
	}
	if e.Key != key {
		return nil, fmt.Errorf("entry.json is corrupt: it is the entry of key %.12s..., not %.12s...", e.Key, key)
	}
	for rel := range e.Files {
		if !filepath.IsLocal(filepath.FromSlash(rel)) || rel == "entry.json" {
			return nil, fmt.Errorf("entry.json is corrupt: it lists the file %q", rel)
		}
	}
	return &e, nil
}

// syncRemote completes Lookup for a store with a Remote, given the local
// answer. A result the folder lacks (or holds corrupt) is fetched. A result it
// holds is checked against the remote entry: one the remote lacks (its upload
// failed) is uploaded now; one another worker published differently first is
// replaced by that one, which is what every other reader sees. If the remote
// cannot be asked, the verified local result stands: publishing will report it.
func (s *Store) syncRemote(key string, local *Entry, localErr error) (*Entry, error) {
	if localErr != nil {
		e, err := s.fetch(key)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, localErr
		}
		return e, err
	}
	b, err := s.Remote.Entry(context.Background(), key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.push(key, false)
	case err != nil:
		return local, nil
	}
	if remote, err := parseEntry(key, b); err == nil && remote.Checkpoint != local.Checkpoint {
		if e, err := s.fetch(key); err == nil {
			return e, nil
		}
	}
	return local, nil
}

// fetch downloads a published result into the local folder, replacing any
// local copy, and checks every file's sha256 on the way: a missing or altered
// blob is a CorruptError and nothing is stored.
func (s *Store) fetch(key string) (*Entry, error) {
	ctx := context.Background()
	b, err := s.Remote.Entry(ctx, key)
	if err != nil {
		return nil, err
	}
	e, err := parseEntry(key, b)
	if err != nil {
		return nil, err
	}
	work, unlock, err := tempDir(filepath.Join(s.Dir, "tmp"), "fetch-")
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer os.RemoveAll(work) // gone after publishLocal moved it
	for _, rel := range sortedFiles(e.Files) {
		if err := s.download(ctx, rel, e.Files[rel], filepath.Join(work, filepath.FromSlash(rel))); err != nil {
			return nil, err
		}
	}
	if err := s.publishLocal(work, e, true); err != nil {
		return nil, err
	}
	return s.lookupLocal(key)
}

// download writes blob sum to path, verifying its digest.
func (s *Store) download(ctx context.Context, rel, sum, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	err = s.Remote.Blob(ctx, sum, io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &CorruptError{File: rel, Missing: true}
	case err != nil:
		return fmt.Errorf("download %s: %w", rel, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return &CorruptError{File: rel, Got: got, Want: sum}
	}
	return nil
}

// push uploads the locally stored result of key: its blobs first, then its
// entry. When another worker's entry is there already, the first entry wins:
// push fetches it over the local copy and returns it, so this worker records
// what every other one reads. (With deterministic stages both results hold the
// same checkpoint; only timings differ.) A published entry whose files are gone
// or corrupt is replaced by this complete one.
func (s *Store) push(key string, replace bool) (*Entry, error) {
	ctx := context.Background()
	dir := s.path(key)
	b, err := os.ReadFile(filepath.Join(dir, "entry.json"))
	if err != nil {
		return nil, err
	}
	e, err := parseEntry(key, b)
	if err != nil {
		return nil, err
	}
	for _, rel := range sortedFiles(e.Files) {
		if err := s.upload(ctx, e.Files[rel], filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			return nil, fmt.Errorf("upload %s: %w", rel, err)
		}
	}
	err = s.Remote.PutEntry(ctx, key, b, !replace)
	if errors.Is(err, ErrEntryExists) {
		won, ferr := s.fetch(key)
		var ce *CorruptError
		if ferr == nil {
			return won, nil
		}
		if !errors.As(ferr, &ce) && !errors.Is(ferr, fs.ErrNotExist) {
			return nil, ferr
		}
		err = s.Remote.PutEntry(ctx, key, b, false)
	}
	if err != nil {
		return nil, fmt.Errorf("publish entry: %w", err)
	}
	return e, nil
}

// upload stores a file as the blob sum unless it is there: blobs are named by
// their content, so an existing one is this very file.
func (s *Store) upload(ctx context.Context, sum, path string) error {
	if ok, err := s.Remote.HasBlob(ctx, sum); err != nil || ok {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return s.Remote.PutBlob(ctx, sum, f, st.Size())
}

func sortedFiles(files map[string]string) []string {
	names := make([]string, 0, len(files))
	for rel := range files {
		names = append(names, rel)
	}
	slices.Sort(names)
	return names
}
