package export

import (
	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
)

// DenseF32Bytes is what the architecture takes uncompressed: 4 bytes for every
// weight and bias of its dense layers. Against the recipe's model this is the
// baseline of compression_ratio (LeNet-300-100: 266,610 parameters, 1,066,440
// bytes, the "1070 KB" of Han et al.).
func DenseF32Bytes(spec arch.Spec) int64 {
	var n int64
	for _, l := range spec.Normalized().Layers() {
		w := int64(1)
		for _, d := range l.WeightShape() {
			w *= int64(d)
		}
		n += w + int64(l.Out)
	}
	return 4 * n
}

// Compression is a checkpoint's compressed size and its ratio to a baseline.
type Compression struct {
	Bytes int64   // the compressed export's size
	Ratio float64 // baseline bytes / Bytes
}

// Measure compresses f (without writing it) against baseline bytes.
func Measure(f *checkpoint.File, baseline int64) (Compression, error) {
	b, err := compress.Encode(f)
	if err != nil {
		return Compression{}, err
	}
	return Compression{Bytes: int64(len(b)), Ratio: float64(baseline) / float64(len(b))}, nil
}
