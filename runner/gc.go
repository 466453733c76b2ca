package runner

import (
	"os"
	"path/filepath"
)

// GCResult says what garbage collection removed (or would remove).
type GCResult struct {
	Kept, Removed []string // keys
	Freed         int64    // bytes
	Leftovers     []string // interrupted publishes and stale training state
}

// GC removes the store's results that none of the given runs reference, plus
// leftovers of interrupted work: half-assembled results in the store's tmp folder
// and mid-stage training state of stages that are not running (the runs' folders
// are locked while a run is active, so GC takes their locks first).
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
	leftovers := []string{filepath.Join(store, "tmp")}
	for _, dir := range runDirs {
		leftovers = append(leftovers, filepath.Join(dir, ".shrink", "state"))
	}
	for _, l := range leftovers {
		entries, _ := os.ReadDir(l)
		for _, e := range entries {
			p := filepath.Join(l, e.Name())
			res.Leftovers = append(res.Leftovers, p)
			res.Freed += dirSize(p)
			if !dryRun {
				os.RemoveAll(p)
			}
		}
	}
	return res, nil
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
