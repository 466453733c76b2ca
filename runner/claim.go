package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shrink-ml/shrink/checkpoint"
)

// MarkerFile is the file, relative to a run folder, that says shrink made the
// folder: only then does a run replace its run.json and stage folders. A run
// creates it in a folder that is new or empty.
const MarkerFile = ".shrink/run-folder"

const markerText = "This folder is a shrink run folder: shrink replaces its run.json and the folders of its stages.\n"

// RunFolderError is a --run-dir that shrink did not make: a run would replace
// files there that are not its own, so it refuses (bad usage, nothing written).
type RunFolderError struct {
	Dir string
	Why string
}

func (e *RunFolderError) Error() string {
	return fmt.Sprintf("refusing to use %s as the run folder: %s; shrink replaces a run folder's run.json and stage folders, "+
		"so it only uses a new or empty folder, or one it made (it holds %s): pick another with --run-dir", e.Dir, e.Why, MarkerFile)
}

// claimRunDir makes dir a run folder, or checks that it is one: a folder that
// does not exist or is empty is created and marked; a marked folder is used as
// it is; a run folder an earlier shrink made (before the marker existed: a
// shrink run.json beside a .shrink folder) is marked and used. Anything else is
// a RunFolderError, before anything is written.
func claimRunDir(dir string) error {
	if err := checkRunDir(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, ".shrink"), 0o755); err != nil {
		return err
	}
	marker := filepath.Join(dir, MarkerFile)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	return checkpoint.WriteBytes(marker, []byte(markerText))
}

// checkRunDir says whether shrink may use dir as a run folder (see
// claimRunDir), writing nothing.
func checkRunDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return &RunFolderError{dir, "it is a file, not a folder"}
	}
	if _, err := os.Stat(filepath.Join(dir, MarkerFile)); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	if legacyRunDir(dir) {
		return nil
	}
	var names []string
	for _, e := range entries {
		if len(names) == 3 {
			names = append(names, "...")
			break
		}
		names = append(names, e.Name())
	}
	why := "it is not empty (" + strings.Join(names, ", ") + ") and shrink did not make it"
	if _, err := os.Stat(filepath.Join(dir, "run.json")); err == nil {
		why = "its run.json is not one shrink wrote"
	}
	return &RunFolderError{dir, why}
}

// legacyRunDir recognizes a run folder made before the marker: a .shrink
// folder and a run.json that is a valid shrink manifest.
func legacyRunDir(dir string) bool {
	if st, err := os.Stat(filepath.Join(dir, ".shrink")); err != nil || !st.IsDir() {
		return false
	}
	m, err := ReadManifestFile(filepath.Join(dir, "run.json"))
	return err == nil && m.Validate() == nil
}

// Validate checks what a run trusts in a run.json before acting on it: the
// format, and that every stage's folder is the one shrink names after its id
// (a run.json naming "folder": "photos" for a stage "train" is not shrink's).
func (m *Manifest) Validate() error {
	if m.Format != manifestFormat {
		return fmt.Errorf("format %q, not %q", m.Format, manifestFormat)
	}
	seen := map[string]bool{}
	for i, s := range m.Stages {
		switch {
		case s == nil || s.ID == "":
			return fmt.Errorf("stages.%d has no id", i)
		case s.Folder != Folder(s.ID):
			return fmt.Errorf("stage %q: folder %q is not the one shrink names it (%q)", s.ID, s.Folder, Folder(s.ID))
		case !safeFolder(s.Folder):
			return fmt.Errorf("stage %q: folder %q is not a plain folder name", s.ID, s.Folder)
		case s.Key != "" && !isKey(s.Key):
			return fmt.Errorf("stage %q: key %q is not a stage key", s.ID, s.Key)
		case seen[s.Folder]:
			return fmt.Errorf("stage %q: folder %q twice", s.ID, s.Folder)
		}
		seen[s.Folder] = true
	}
	return nil
}

// safeFolder says a name is one folder inside the run folder, not the run
// folder itself, a parent, a hidden folder or a path.
func safeFolder(name string) bool {
	return name != "" && name == filepath.Base(name) && !strings.ContainsAny(name, `/\`) &&
		!strings.HasPrefix(name, ".") && name != "run.json"
}
