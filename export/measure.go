package export

import (
	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
)

// DenseF32Bytes is what the architecture takes uncompressed: 4 bytes for every
// float value of its state_dict (weights, biases, batch norm's statistics) and
// 8 for every int64 one. Against the recipe's model this is the baseline of
// compression_ratio (LeNet-300-100: 266,610 parameters, 1,066,440 bytes, the
// "1070 KB" of Han et al.).
func DenseF32Bytes(spec arch.Spec) (int64, error) {
	g, err := spec.Graph()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, node := range g.Nodes {
		for _, t := range node.Tensors() {
			size := int64(arch.Shape(t.Shape).Size())
			if t.Int64 {
				size *= 2
			}
			n += size
		}
	}
	return 4 * n, nil
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
