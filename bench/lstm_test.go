package bench

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/quant"
)

// lstmSpec is recipes/lstm-mnist.yaml's network: sequential MNIST (28 steps
// of 28 pixels) into a 128-unit LSTM, its last step, a linear layer.
var lstmSpec = arch.Spec{Arch: "lstm", Input: arch.Shape{28, 28}, Hidden: arch.Widths{128}, NumLayers: 1, Classes: 10}

// torchDynamic marks every layer as quantize_dynamic({nn.LSTM, nn.Linear},
// dtype=torch.qint8) quantizes it and snaps the weights.
func torchDynamic(m *model.Model) {
	for _, l := range m.WeightLayers() {
		l.Quant = &quant.Spec{Bits: 8, Scheme: quant.Symmetric, Granularity: quant.PerTensor}
		l.Input = &model.ActQuant{Mode: "dynamic", Spec: quant.Spec{Bits: 8, Scheme: quant.Asymmetric, Granularity: quant.PerTensor, ReduceRange: true}}
	}
	m.Requantize()
}

// BenchmarkLSTMTrainStep is one optimizer step of the 128-unit LSTM on a
// batch of 128 sequential-MNIST rows.
func BenchmarkLSTMTrainStep(b *testing.B) {
	benchTrainStep(b, lstmSpec, model.DefaultOptimizer(), loadSeqMNIST(b).Train)
}

// BenchmarkLSTMForward is inference of the 128-unit LSTM classifier at batch
// 1 and 256: float, and dynamically quantized as torch.ao's quantize_dynamic
// does it (integer kernels).
func BenchmarkLSTMForward(b *testing.B) {
	ds := loadSeqMNIST(b)
	for _, kind := range []string{"float", "int8"} {
		for _, bs := range []int{1, 256} {
			b.Run(kind+"/batch="+strconv.Itoa(bs), func(b *testing.B) {
				threads(b)
				m := model.MustNew(lstmSpec, rand.New(rand.NewPCG(1, 1)))
				if kind == "int8" {
					torchDynamic(m)
				}
				net, err := model.Build(m, model.NetOptions{Batch: bs, Mode: model.ModeEval})
				if err != nil {
					b.Fatal(err)
				}
				x, _ := ds.Test.Batch(0, bs)
				copy(net.X, x)
				if err := net.Run(); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := net.Run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
