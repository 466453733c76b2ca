package runner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// GCResult says what garbage collection removed (or would remove).
type GCResult struct {
	Kept, Removed []string // keys
	Freed         int64    // bytes
	Leftovers     []string // interrupted publishes and stale training state
	// InUse are work folders in the store that a running stage holds (a run
	// sharing the store, not among the run folders given): left alone.
	InUse []string
}

// GC removes the store's results that none of the given runs reference, plus
// leftovers of interrupted work: half-assembled results in the store's tmp folder
// and mid-stage training state of stages that are not running (the runs' folders
// are locked while a run is active, so GC takes their locks first). Work that a
// running stage holds in a shared store is never touched: each work folder is
// locked by the process assembling it (see tempDir), and the kernel drops the
// lock of a process that died, so a crash's leftovers go.
func GC(store string, runDirs []string, dryRun bool) (*GCResult, error) {
	referenced := map[string]bool{}
	var unlocks []func()
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	for _, dir := range runDirs {
		if _, err := ReadManifest(dir); err != nil {
			return nil, err // before lockDir, which would make the folder
		}
		if err := checkRunDir(dir); err != nil {
			return nil, err
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, err
		}
		unlocks = append(unlocks, unlock)
		m, err := ReadManifest(dir)
		if err != nil {
			return nil, err
		}
		for _, s := range m.Stages {
			if s.Key != "" {
				referenced[s.Key] = true
			}
		}
	}
	st := &Store{Dir: store}
	keys, err := st.Keys()
	if err != nil {
		return nil, err
	}
	res := &GCResult{}
	for _, k := range keys {
		if referenced[k] {
			res.Kept = append(res.Kept, k)
			continue
		}
		res.Removed = append(res.Removed, k)
		res.Freed += dirSize(st.path(k))
		if !dryRun {
			if err := st.Remove(k); err != nil {
				return nil, err
			}
		}
	}
	leftover := func(p string) {
		res.Leftovers = append(res.Leftovers, p)
		res.Freed += dirSize(p)
		if !dryRun {
			os.RemoveAll(p)
		}
	}
	if err := gcWork(filepath.Join(store, "tmp"), res, leftover); err != nil {
		return nil, err
	}
	for _, p := range oldResults(store) {
		leftover(p)
	}
	for _, dir := range runDirs {
		l := filepath.Join(dir, ".shrink", "state")
		entries, _ := os.ReadDir(l)
		for _, e := range entries {
			if isKey(e.Name()) {
				leftover(filepath.Join(l, e.Name()))
			}
		}
	}
	return res, nil
}

// gcWork removes the work folders in a store's tmp folder that no process
// holds, holding the tmp folder's lock so none is being made meanwhile.
func gcWork(tmp string, res *GCResult, leftover func(string)) error {
	entries, err := os.ReadDir(tmp)
	if len(entries) == 0 {
		return nil // none, or no tmp folder (err): nothing to lock either
	}
	release, err := flock(filepath.Join(tmp, tmpLock), true, true)
	if err != nil {
		return err
	}
	defer release()
	entries, _ = os.ReadDir(tmp)
	for _, e := range entries {
		if e.Name() == tmpLock || !e.IsDir() {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		unlock, err := flock(p, true, false)
		if errors.Is(err, errBusy) {
			res.InUse = append(res.InUse, p)
			continue
		}
		if err != nil {
			continue // gone meanwhile, or not ours to open
		}
		leftover(p)
		unlock()
	}
	return nil
}

// oldResults lists results a replacing publish moved aside (KEY.old-XXXX) and
// did not get to remove.
func oldResults(store string) []string {
	var out []string
	shards, _ := os.ReadDir(store)
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(store, sh.Name()))
		for _, e := range entries {
			key, _, ok := strings.Cut(e.Name(), ".old-")
			if ok && isKey(key) && key[:2] == sh.Name() {
				out = append(out, filepath.Join(store, sh.Name(), e.Name()))
			}
		}
	}
	return out
}

func dirSize(path string) int64 {
	var n int64
	filepath.Walk(path, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// DefaultStore is the store a run folder uses when --cache-dir is not given.
func DefaultStore(runDir string) string { return filepath.Join(runDir, ".shrink", "store") }
