package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/shrink-ml/shrink/checkpoint"
)

// Manifest is run.json: what a run did, enough to replay it.
type Manifest struct {
	Format string       `json:"format"`
	Recipe RecipeRecord `json:"recipe"`
	Seed   uint64       `json:"seed"`

	ShrinkVersion string `json:"shrink_version"`
	VCSRevision   string `json:"vcs_revision,omitempty"`
	GoVersion     string `json:"go_version"`

	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Status   string    `json:"status"` // running, ok, failed, interrupted

	Stages []*StageRecord `json:"stages"`
}

// RecipeRecord identifies the recipe and records it as resolved after overrides.
type RecipeRecord struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	File   string `json:"file"`
	// Git is the commit of the repository holding the recipe, "+dirty" when the
	// recipe file has uncommitted changes; empty outside git.
	Git      string         `json:"git,omitempty"`
	Sets     []string       `json:"sets,omitempty"`
	Resolved map[string]any `json:"resolved"`
	// YAML is Resolved written back as YAML, types intact (JSON would turn an
	// amount of 1.0 into 1): what --replay runs.
	YAML string `json:"resolved_yaml"`
	// Dir is the recipe's folder: relative paths in it resolve against it.
	Dir string `json:"dir"`
}

// StageRecord is one stage of the run.
type StageRecord struct {
	ID      string            `json:"id"`
	Type    string            `json:"type"`
	Status  string            `json:"status"` // ran, cached, failed, interrupted, skipped, pending
	Reason  string            `json:"reason,omitempty"`
	Key     string            `json:"key,omitempty"`
	SHA256  string            `json:"sha256,omitempty"`
	Seconds float64           `json:"seconds"`
	Metrics map[string]any    `json:"metrics,omitempty"`
	Folder  string            `json:"folder"`
	Needs   []string          `json:"needs,omitempty"`
	Refs    map[string]string `json:"refs,omitempty"`
	Error   string            `json:"error,omitempty"`
	KeyDoc  *KeyDoc           `json:"key_inputs,omitempty"`
}

// recipeGit returns the commit of the git repository holding file, marked
// "+dirty" when the file differs from it; "" when git or the repository is missing.
func recipeGit(file string) string {
	dir := filepath.Dir(file)
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--", filepath.Base(file)).Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "+dirty"
	}
	return rev
}

// buildRevision is set by builds without the repository at hand (the
// Dockerfile: -ldflags -X github.com/shrink-ml/shrink/runner.buildRevision=...).
var buildRevision string

// Version is shrink's version, from the build.
func Version() (version, revision string) {
	version, revision = "(devel)", buildRevision
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
		if s.Key == "vcs.modified" && s.Value == "true" && revision != "" {
			revision += "+dirty"
		}
	}
	return
}

// manifestFormat is run.json's format.
const manifestFormat = "shrink/v1"

func newManifest() *Manifest {
	v, rev := Version()
	return &Manifest{Format: manifestFormat, ShrinkVersion: v, VCSRevision: rev, GoVersion: runtime.Version(), Status: "running"}
}

// manifestWriter writes run.json atomically after every change.
type manifestWriter struct {
	mu   sync.Mutex
	path string
	m    *Manifest
}

func (w *manifestWriter) update(f func(m *Manifest)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f != nil {
		f(w.m)
	}
	b, err := json.MarshalIndent(w.m, "", "  ")
	if err != nil {
		return err
	}
	return checkpoint.WriteBytes(w.path, append(b, '\n'))
}

// ReadManifest reads a run folder's run.json.
func ReadManifest(runDir string) (*Manifest, error) {
	m, err := ReadManifestFile(filepath.Join(runDir, "run.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotRunFolderError{Dir: runDir}
	}
	return m, err
}

// NotRunFolderError is a folder given as a run folder that holds no run.json:
// bad usage (a typo, or a run not made yet), not a failure.
type NotRunFolderError struct{ Dir string }

func (e *NotRunFolderError) Error() string {
	return fmt.Sprintf("%s is not a run folder (it has no run.json): check the path, or make it with 'shrink run RECIPE --run-dir %s'", e.Dir, e.Dir)
}

// ReadManifestFile reads a run.json.
func ReadManifestFile(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: not a shrink run.json: %w", path, err)
	}
	return &m, nil
}

// Stage finds a stage record by id.
func (m *Manifest) Stage(id string) *StageRecord {
	for _, s := range m.Stages {
		if s.ID == id {
			return s
		}
	}
	return nil
}
