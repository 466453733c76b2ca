package runner

import (
	"path/filepath"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/pipeline"
)

func TestModelSize(t *testing.T) {
	params, act := modelSize(arch.Spec{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10})
	// every layer's output (fc1, relu, fc2, relu, fc3), and the input each fc multiplies
	if params != 266610 || act != (300+300+100+100+10)+(784+300+100) {
		t.Errorf("LeNet-300-100: %d params, %d activations per sample", params, act)
	}
	params, act = modelSize(arch.Spec{Arch: "lenet5", Classes: 10})
	// conv1 6x1x5x5+6, conv2 16x6x5x5+16, fc1 256x120+120, fc2 120x84+84, fc3 84x10+10
	if params != 156+2416+30840+10164+850 {
		t.Errorf("LeNet-5: %d params", params)
	}
	// every layer's output: conv1, relu (6x24x24 each), pool (6x12x12), conv2, relu (16x8x8
	// each), pool, flatten (256 each), fc1, relu (120), fc2, relu (84), fc3 (10); then what
	// each weight layer multiplies: 25x24x24 and 150x8x8 patches, and the fc inputs
	outputs := 2*6*576 + 6*144 + 2*16*64 + 2*256 + 2*120 + 2*84 + 10
	if want := int64(outputs + 25*576 + 150*64 + 256 + 120 + 84); act != want {
		t.Errorf("LeNet-5: %d activations per sample, want %d", act, want)
	}
}

func TestJobsFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                   string
		cpus                   int
		avail, stage, datasetB int64
		want                   int
	}{
		{"plenty of memory: one per CPU", 8, 16 << 30, 40 * mib, 550 * mib, 8},
		{"memory bounds it", 8, 1 << 30, 40 * mib, 550 * mib, 5},
		{"never below one", 4, 256 * mib, 40 * mib, 550 * mib, 1},
		{"one CPU", 1, 16 << 30, 40 * mib, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jobsFor(tt.cpus, tt.avail, tt.stage, tt.datasetB); got != tt.want {
				t.Errorf("jobsFor(%d CPUs, %d MiB, %d MiB/stage, %d MiB data) = %d, want %d",
					tt.cpus, tt.avail/mib, tt.stage/mib, tt.datasetB/mib, got, tt.want)
			}
		})
	}
}

func TestEstimatesForMNIST(t *testing.T) {
	d := data.DefaultConfig()
	r := &pipeline.Recipe{Model: arch.Spec{Arch: "mlp", Inputs: 784, Hidden: []int{300, 100}, Classes: 10}, Data: &d}
	// docs/BRANCHES.md quotes these two numbers beside the measured memory.
	if got := StageBytes(r) >> 20; got != 39 {
		t.Errorf("LeNet-300-100 stage: %d MiB", got)
	}
	if got := DatasetBytes(r) >> 20; got != 523 {
		t.Errorf("MNIST: %d MiB", got)
	}
}

func TestDatasetBytesOfOtherSources(t *testing.T) {
	fashion := data.DefaultConfig()
	fashion.Dataset = data.KindFashionMNIST
	mnist := data.DefaultConfig()
	if a, b := DatasetBytes(&pipeline.Recipe{Data: &fashion}), DatasetBytes(&pipeline.Recipe{Data: &mnist}); a != b {
		t.Errorf("Fashion-MNIST %d bytes, MNIST %d", a, b)
	}
	// Four samples of [3, 2, 2] float32 in each split, from the .npy headers.
	npy := data.DefaultConfig()
	npy.Dataset = data.KindNPY
	npy.Train = &data.Arrays{X: "x_f4_4d.npy", Y: "y4_i8.npy"}
	npy.Test = &data.Arrays{X: "x_u1_4d.npy", Y: "y4_i8.npy"}
	r := &pipeline.Recipe{Data: &npy, Dir: filepath.Join("..", "data", "testdata", "npy")}
	if got, want := DatasetBytes(r), int64(float64(2*4*12*4)*datasetOverhead); got != want {
		t.Errorf("npy: %d bytes, want %d", got, want)
	}
}
