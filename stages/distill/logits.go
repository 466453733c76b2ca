package distill

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// logitsFormat names the cache files' layout; changing the layout or what the
// logits depend on changes it, so old files are never misread.
const logitsFormat = "shrink/teacher-logits/v1"

// logitsSource is what a teacher's logits over the training split depend on.
type logitsSource struct {
	teacherDigest string // the teacher checkpoint's sha256
	data          string // the data fingerprint: files, normalization, validation split
	rows, classes int
	// batch is the evaluation batch size: a teacher with dynamic activation
	// quantization observes each batch, so its logits depend on it.
	batch int
}

// key digests everything the logits depend on.
func (s logitsSource) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nteacher=%s\ndata=%s\nsplit=train rows=%d classes=%d\nbatch=%d\n",
		logitsFormat, s.teacherDigest, s.data, s.rows, s.classes, s.batch)
	return hex.EncodeToString(h.Sum(nil))
}

// cachedLogits returns the teacher's logits over the training split, [rows,
// classes] row-major in split order: read from the cache when an earlier run
// computed them for the same teacher and data, otherwise computed and written
// there atomically. reused says which.
func cachedLogits(ctx *stages.Context, t *teacher, train *data.Split, batch int) (logits []float32, reused bool, err error) {
	src := logitsSource{teacherDigest: t.digest, data: ctx.DataFingerprint, rows: train.N, classes: t.model.Spec.Classes, batch: batch}
	if ctx.CacheDir == "" || src.teacherDigest == "" {
		logits, err := model.Logits(ctx, t.model, train, batch)
		return logits, false, err
	}
	key := src.key()
	path := filepath.Join(ctx.CacheDir, "distill", "teacher-logits-"+key[:40]+".safetensors")
	log := ctx.Log.With().Str("teacher", t.name).Str("file", path).Logger()
	switch logits, err := readLogits(path, key, src); {
	case err == nil:
		log.Info().Msg("teacher logits reused from the cache")
		return logits, true, nil
	case !errors.Is(err, fs.ErrNotExist):
		log.Warn().Err(err).Msg("ignoring an unreadable teacher-logits cache file; computing them again")
	}
	logits, err = model.Logits(ctx, t.model, train, batch)
	if err != nil {
		return nil, false, fmt.Errorf("teacher %s: %w", t.name, err)
	}
	if err := writeLogits(path, key, src, logits); err != nil {
		// The logits are right; only later runs lose the shortcut.
		log.Warn().Err(err).Msg("could not cache the teacher logits")
	} else {
		log.Info().Int("rows", src.rows).Msg("teacher logits computed and cached")
	}
	return logits, false, nil
}

func readLogits(path, key string, src logitsSource) ([]float32, error) {
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if f.Metadata["key"] != key {
		return nil, fmt.Errorf("%s: written for another teacher or data (key %.12s, want %.12s)", path, f.Metadata["key"], key)
	}
	t, ok := f.Get("logits")
	if !ok {
		return nil, fmt.Errorf("%s: no logits tensor", path)
	}
	v, err := t.Float32s()
	if err != nil || len(t.Shape) != 2 || t.Shape[0] != src.rows || t.Shape[1] != src.classes {
		return nil, fmt.Errorf("%s: logits are %s %v, want F32 [%d, %d]", path, t.DType, t.Shape, src.rows, src.classes)
	}
	return v, nil
}

func writeLogits(path, key string, src logitsSource, logits []float32) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f := &checkpoint.File{Metadata: map[string]string{
		"format": logitsFormat, "key": key, "teacher_sha256": src.teacherDigest, "data": src.data,
		"batch": strconv.Itoa(src.batch),
	}}
	f.Set(checkpoint.F32("logits", []int{src.rows, src.classes}, logits))
	_, err := checkpoint.WriteFile(path, f)
	return err
}

// rowsOf serves a training batch's teacher logits from the whole split's.
func rowsOf(all []float32, classes int) func(rows []int32, dst []float32) error {
	return func(rows []int32, dst []float32) error {
		for k, r := range rows {
			copy(dst[k*classes:(k+1)*classes], all[int(r)*classes:(int(r)+1)*classes])
		}
		return nil
	}
}
