package compress

import (
	"math/rand/v2"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/quant"
)

// lenet300 is a LeNet-300-100-sized checkpoint: F32, or pruned and quantized.
func lenet300(sparsity float64, bits int) *checkpoint.File {
	rng := rand.New(rand.NewPCG(1, 1))
	f := &checkpoint.File{Metadata: map[string]string{}}
	shapes := [][2]int{{300, 784}, {100, 300}, {10, 100}}
	for i, s := range shapes {
		name := []string{"fc1", "fc2", "fc3"}[i]
		if bits == 32 {
			f.Set(checkpoint.F32(name+".weight", []int{s[0], s[1]}, sparseFloats(rng, s[0]*s[1], sparsity)))
		} else {
			spec := quant.Spec{Bits: bits, Scheme: quant.Symmetric, Granularity: quant.PerChannel}
			for _, x := range quantized(rng, name, s[0], s[1], sparsity, spec) {
				f.Set(x)
			}
		}
		f.Set(checkpoint.F32(name+".bias", []int{s[0]}, sparseFloats(rng, s[0], 0)))
	}
	return f
}

func BenchmarkEncodeDense(b *testing.B)  { benchEncode(b, lenet300(0, 32)) }
func BenchmarkEncodePruned(b *testing.B) { benchEncode(b, lenet300(0.92, 32)) }
func BenchmarkEncodeInt4(b *testing.B)   { benchEncode(b, lenet300(0.92, 4)) }

func benchEncode(b *testing.B, f *checkpoint.File) {
	var n int
	for b.Loop() {
		enc, err := Encode(f)
		if err != nil {
			b.Fatal(err)
		}
		n = len(enc)
	}
	b.ReportMetric(float64(n), "bytes")
}
