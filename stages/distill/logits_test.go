package distill

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/model"
)

// TestTeacherLogitsCache: the logits are computed once, read back from the file
// on the next run (not recomputed), and computed again for another teacher, other
// data, or a damaged file.
func TestTeacherLogitsCache(t *testing.T) {
	ds, cfg := blobs(t)
	cache := t.TempDir()
	m := trainedTeacher(t, ds, 1)
	want, err := model.Logits(context.Background(), m, ds.Train, 100)
	if err != nil {
		t.Fatal(err)
	}
	run := func(digest, fingerprint string) ([]float32, bool, string) {
		t.Helper()
		ctx, logs := newContext(t, ds, cfg, cache, "")
		ctx.DataFingerprint = fingerprint
		got, reused, err := cachedLogits(ctx, &teacher{model: m, name: "train", digest: digest}, ds.Train, 100)
		if err != nil {
			t.Fatal(err)
		}
		return got, reused, logs.String()
	}
	files := func() []string {
		t.Helper()
		names, _ := filepath.Glob(filepath.Join(cache, "distill", "teacher-logits-*.safetensors"))
		return names
	}

	got, reused, logs := run("digest-a", "data-a")
	if reused || !strings.Contains(logs, "teacher logits computed and cached") {
		t.Fatalf("first run: reused %v, logs %s", reused, logs)
	}
	if !slices.Equal(got, want) {
		t.Fatal("first run: the logits differ from the teacher's")
	}
	if len(files()) != 1 {
		t.Fatalf("cache files after the first run: %v", files())
	}

	// Mark the cached file so that reading it can be told from recomputing.
	path := files()[0]
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	marked := slices.Clone(want)
	marked[0] += 1000
	f.Set(checkpoint.F32("logits", []int{ds.Train.N, 4}, marked))
	if _, err := checkpoint.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	got, reused, logs = run("digest-a", "data-a")
	if !reused || !strings.Contains(logs, "teacher logits reused from the cache") {
		t.Fatalf("second run: reused %v, logs %s", reused, logs)
	}
	if !slices.Equal(got, marked) {
		t.Fatal("second run: the logits were not read from the cache file")
	}

	for _, tc := range []struct{ name, digest, fingerprint string }{
		{"another teacher", "digest-b", "data-a"},
		{"other data", "digest-a", "data-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reused, _ := run(tc.digest, tc.fingerprint)
			if reused || !slices.Equal(got, want) {
				t.Fatalf("reused %v, logits equal the teacher's: %v", reused, slices.Equal(got, want))
			}
		})
	}
	if n := len(files()); n != 3 {
		t.Fatalf("%d cache files, want one per teacher and data: 3", n)
	}

	t.Run("damaged file", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("not a safetensors file"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, reused, logs := run("digest-a", "data-a")
		if reused || !slices.Equal(got, want) || !strings.Contains(logs, "ignoring an unreadable teacher-logits cache file") {
			t.Fatalf("reused %v, logs %s", reused, logs)
		}
		if _, reused, _ := run("digest-a", "data-a"); !reused {
			t.Fatal("the recomputed logits were not cached again")
		}
	})
}

// TestLogitsKeyCoversItsInputs: every ingredient changes the key.
func TestLogitsKeyCoversItsInputs(t *testing.T) {
	base := logitsSource{teacherDigest: "t", data: "d", rows: 10, classes: 4, batch: 100}
	seen := map[string]string{base.key(): "base"}
	for name, s := range map[string]logitsSource{
		"teacher": {teacherDigest: "u", data: "d", rows: 10, classes: 4, batch: 100},
		"data":    {teacherDigest: "t", data: "e", rows: 10, classes: 4, batch: 100},
		"rows":    {teacherDigest: "t", data: "d", rows: 11, classes: 4, batch: 100},
		"classes": {teacherDigest: "t", data: "d", rows: 10, classes: 5, batch: 100},
		"batch":   {teacherDigest: "t", data: "d", rows: 10, classes: 4, batch: 50},
	} {
		k := s.key()
		if other, dup := seen[k]; dup {
			t.Errorf("changing the %s gives the key of %s", name, other)
		}
		seen[k] = name
	}
}
