package data

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
)

// maxTokenID bounds token ids: float32 holds every integer below 2^24 exactly,
// so an id survives its trip through Split.X.
const maxTokenID = 1 << 24

// npySplit is one split of an npy dataset, read and converted.
type npySplit struct {
	split    *Split
	x        *NPY // header only (Data dropped)
	sums     [2]string
	maxLabel int32
	maxToken int
	err      error
}

// loadNPY reads the four .npy files of an npy dataset.
func loadNPY(cfg *Config, baseDir string) (*Dataset, error) {
	files, err := sourceFiles(cfg, baseDir)
	if err != nil {
		return nil, err
	}
	var res [2]npySplit
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Go(func() { res[k] = loadArrays(files[2*k], files[2*k+1], cfg.Normalize) })
	}
	wg.Wait()
	for _, r := range res {
		if r.err != nil {
			return nil, r.err
		}
	}
	tr, te := &res[0], &res[1]
	trx, tex := files[0], files[2]
	if tr.x.Kind != te.x.Kind || tr.x.Size != te.x.Size {
		return nil, fieldErr(tex.key, "%s is %s but the training inputs (%s) are %s: save both with the same dtype (uint8 is divided by 255, float32 is used as stored, integers are token ids)",
			tex.path, te.x.Dtype(), trx.path, tr.x.Dtype())
	}
	if !slices.Equal(tr.split.Shape, te.split.Shape) {
		return nil, fieldErr(tex.key, "%s holds samples of shape %s but the training inputs (%s) hold %s: train and test need the same sample shape",
			tex.path, shapeString(te.split.Shape), trx.path, shapeString(tr.split.Shape))
	}
	ds := &Dataset{
		Train: tr.split, Test: te.split,
		Features: tr.split.Features,
		Classes:  int(max(tr.maxLabel, te.maxLabel)) + 1,
		Shape:    tr.split.Shape,
		Tokens:   tr.x.Kind == 'i',
	}
	if ds.Tokens {
		ds.Vocab = max(tr.maxToken, te.maxToken) + 1
	}
	if cfg.Normalize != nil {
		n := *cfg.Normalize
		ds.Normalize = &n
	}
	for k, f := range files {
		ds.Sources = append(ds.Sources, Source{Key: f.key, Path: f.path, SHA256: res[k/2].sums[k%2]})
	}
	return ds, nil
}

// loadArrays reads one split: inputs xf and labels yf.
func loadArrays(xf, yf sourceFile, norm *Normalize) (r npySplit) {
	fail := func(f sourceFile, e error) npySplit {
		return npySplit{err: &FieldError{Path: f.key, Msg: e.Error(), Err: e}}
	}
	xb, err := os.ReadFile(xf.path)
	if err != nil {
		return fail(xf, err)
	}
	r.sums[0] = sha256hex(xb)
	x, err := ParseNPY(xf.path, xb)
	if err != nil {
		return fail(xf, err)
	}
	if len(x.Shape) < 2 {
		return fail(xf, fmt.Errorf("%s has shape %s: x needs a row per sample, shape [N, ...] with at least 2 dimensions (one feature per sample is [N, 1]: x.reshape(-1, 1))", xf.path, shapeString(x.Shape)))
	}
	n, sample := x.Shape[0], x.Shape[1:]
	if n == 0 {
		return fail(xf, fmt.Errorf("%s holds no samples (shape %s)", xf.path, shapeString(x.Shape)))
	}
	if x.Len() == 0 {
		return fail(xf, fmt.Errorf("%s holds empty samples (shape %s)", xf.path, shapeString(x.Shape)))
	}
	features := x.Len() / n
	var values []float32
	switch {
	case x.Kind == 'f' && x.Size == 4, x.Kind == 'u' && x.Size == 1:
		if norm != nil {
			if c := norm.channels(); c > 1 {
				if have := normChannels(sample); have != c {
					return npySplit{err: fieldErr("normalize", "%d values per channel, but the samples of %s (%s) have %d channels: the channel is dim 1 of x for [N, C, H, W] (and any x of 4 or more dimensions), the last dim for [N, T, F] and [N, F]",
						c, xf.path, shapeString(sample), have)}
				}
			}
		}
		if values, err = npyFloats(xf.path, x, sample, norm); err != nil {
			return fail(xf, err)
		}
	case x.Kind == 'i' && (x.Size == 4 || x.Size == 8):
		if len(x.Shape) != 2 {
			return fail(xf, fmt.Errorf("%s holds %s token ids of shape %s: token ids must be [N, T], T ids per sample", xf.path, x.Dtype(), shapeString(x.Shape)))
		}
		if norm != nil {
			return npySplit{err: fieldErr("normalize", "normalize does not apply to token ids (%s is %s): remove data.normalize", xf.path, x.Dtype())}
		}
		if values, r.maxToken, err = npyTokens(xf.path, x); err != nil {
			return fail(xf, err)
		}
	default:
		return fail(xf, fmt.Errorf("%s is %s: x must be float32 (used as stored), uint8 (divided by 255) or int32/int64 token ids; save x.astype(numpy.float32)", xf.path, x.Dtype()))
	}
	r.x = &NPY{Kind: x.Kind, Size: x.Size, Shape: x.Shape}

	yb, err := os.ReadFile(yf.path)
	if err != nil {
		return fail(yf, err)
	}
	r.sums[1] = sha256hex(yb)
	y, err := ParseNPY(yf.path, yb)
	if err != nil {
		return fail(yf, err)
	}
	if len(y.Shape) != 1 {
		return fail(yf, fmt.Errorf("%s has shape %s: y must be [N], one integer label per sample (y.reshape(-1))", yf.path, shapeString(y.Shape)))
	}
	if y.Shape[0] != n {
		return fail(yf, fmt.Errorf("%s holds %d labels but %s holds %d samples", yf.path, y.Shape[0], xf.path, n))
	}
	labels, maxLabel, err := npyLabels(yf.path, y)
	if err != nil {
		return fail(yf, err)
	}
	r.maxLabel = maxLabel
	r.split = &Split{X: values, Y: labels, N: n, Features: features, Shape: slices.Clone(sample)}
	return r
}

// normChannels is the number of channels of a sample shape: its first dim when it
// has 3 or more (C of [C, H, W], as torchvision's Normalize reads an image), else
// its last (F of [T, F] or [F]).
func normChannels(sample []int) int {
	if len(sample) >= 3 {
		return sample[0]
	}
	return sample[len(sample)-1]
}

// npyFloats converts float32 or uint8 values to float32, uint8 divided by 255,
// then normalized per channel in float32 as torchvision's ToTensor and Normalize
// do: float32(float32(x - mean[c]) / std[c]).
func npyFloats(name string, a *NPY, sample []int, norm *Normalize) ([]float32, error) {
	out := make([]float32, a.Len())
	// A sample is [outer, C, inner]: C channels, each a run of inner values
	// (channel first) or single values repeated outer times (channel last).
	c, inner := normChannels(sample), 1
	if len(sample) >= 3 {
		for _, d := range sample[1:] {
			inner *= d
		}
	}
	if a.Kind == 'u' {
		luts := make([]*[256]float32, c)
		for k := range luts {
			m, s := 0.0, 1.0
			if norm != nil {
				m, s = norm.Mean.at(k), norm.Std.at(k)
			}
			if k > 0 && (norm == nil || norm.channels() == 1) {
				luts[k] = luts[0]
				continue
			}
			luts[k] = NormalizeTable(m, s)
			if err := checkTable(luts[k], m, s); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		for i, p := range a.Data {
			out[i] = luts[(i/inner)%c][p]
		}
		return out, nil
	}
	features := len(out) / max(a.Shape[0], 1)
	for i := range out {
		v := math.Float32frombits(binary.LittleEndian.Uint32(a.Data[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%s: value %v at sample %d (flat index %d) is not finite: x must hold finite numbers", name, v, i/features, i)
		}
		if norm != nil {
			k := (i / inner) % c
			v = float32(float32(v-float32(norm.Mean.at(k))) / float32(norm.Std.at(k)))
			if math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s: value at sample %d (flat index %d) becomes %v after normalize, (x - mean) / std: beyond float32; check data.normalize (a larger std)", name, i/features, i, v)
			}
		}
		out[i] = v
	}
	return out, nil
}

// npyTokens converts int32 or int64 token ids to exact float32 values.
func npyTokens(name string, a *NPY) (out []float32, maxID int, err error) {
	out = make([]float32, a.Len())
	t := a.Shape[1]
	for i := range out {
		var id int64
		if a.Size == 8 {
			id = int64(binary.LittleEndian.Uint64(a.Data[8*i:]))
		} else {
			id = int64(int32(binary.LittleEndian.Uint32(a.Data[4*i:])))
		}
		if id < 0 || id >= maxTokenID {
			return nil, 0, fmt.Errorf("%s: token id %d at sample %d, position %d is out of range: ids must be in [0, %d) (float32 holds integers exactly up to 2^24)", name, id, i/t, i%t, maxTokenID)
		}
		maxID = max(maxID, int(id))
		out[i] = float32(id)
	}
	return out, maxID, nil
}

// npyLabels converts int64, int32 or uint8 labels to int32; none may be negative.
func npyLabels(name string, a *NPY) (y []int32, maxLabel int32, err error) {
	switch {
	case a.Kind == 'i' && (a.Size == 8 || a.Size == 4), a.Kind == 'u' && a.Size == 1:
	default:
		return nil, 0, fmt.Errorf("%s is %s: y must hold integer labels, int64, int32 or uint8; save y.astype(numpy.int64)", name, a.Dtype())
	}
	y = make([]int32, a.Len())
	for i := range y {
		var v int64
		switch a.Size {
		case 8:
			v = int64(binary.LittleEndian.Uint64(a.Data[8*i:]))
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(a.Data[4*i:])))
		default:
			v = int64(a.Data[i])
		}
		if v < 0 || v > math.MaxInt32 {
			return nil, 0, fmt.Errorf("%s: label %d at index %d is out of range: labels are class indices in [0, model.classes)", name, v, i)
		}
		y[i] = int32(v)
		maxLabel = max(maxLabel, int32(v))
	}
	return y, maxLabel, nil
}
