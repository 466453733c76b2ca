package export

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/model"
)

var meta = map[string]string{"stage": "prune", "recipe_sha256": "ab12", "key": "cd34"}

// saved is what the runner stores for m: its checkpoint file, and the model
// shrink loads from it (the reference every export must reproduce).
func saved(t *testing.T, m *model.Model) (*checkpoint.File, *model.Model) {
	t.Helper()
	f, err := m.ToFile(meta)
	mustT(t, err)
	ref, err := model.FromFile(f, nil)
	mustT(t, err)
	// The reference holds the source's values: saving changed none of them.
	for i, l := range m.WeightLayers() {
		for j, w := range l.Weights {
			if !sameBits(w.Data, ref.WeightLayers()[i].Weights[j].Data) {
				t.Fatalf("%s changed when saved: the test model is not what a stage would store", w.Name)
			}
		}
	}
	return f, ref
}

// The compressed export loads back into the identical model: every value,
// mask, scale and zero point bit for bit, the checkpoint byte for byte.
func TestCompressedRoundTrip(t *testing.T) {
	for name, m := range testModels() {
		t.Run(name, func(t *testing.T) {
			f, ref := saved(t, m)
			path := filepath.Join(t.TempDir(), "model.shkz")
			size, err := compress.WriteFile(path, f)
			mustT(t, err)
			got, err := LoadModel(path, nil)
			mustT(t, err)
			if err := sameModel(ref, got); err != nil {
				t.Fatal(err)
			}
			back, info, err := ReadFile(path)
			mustT(t, err)
			want, _ := checkpoint.Marshal(f)
			have, _ := checkpoint.Marshal(back)
			if !bytes.Equal(want, have) {
				t.Fatal("the decoded checkpoint differs from the stored one")
			}
			if info == nil || info.FileBytes != size {
				t.Fatalf("info %+v for a %d-byte file", info, size)
			}
			t.Logf("%d bytes compressed, %d as safetensors", size, len(want))
		})
	}
}

// denseBack is ref's dense export, checked to hold only F32 tensors, with the
// layers whose activation quantization it dropped and the model it loads back
// as from a file.
func denseBack(t *testing.T, ref *model.Model) (*checkpoint.File, []string, *model.Model) {
	t.Helper()
	df, dropped, err := Dense(ref, meta)
	mustT(t, err)
	for _, x := range df.Tensors {
		if x.DType != checkpoint.DTypeF32 {
			t.Errorf("%s is %s", x.Name, x.DType)
		}
	}
	path := filepath.Join(t.TempDir(), "dense.safetensors")
	_, err = checkpoint.WriteFile(path, df)
	mustT(t, err)
	got, err := LoadModel(path, nil)
	mustT(t, err)
	return df, dropped, got
}

// The dense export holds the same weights as floats: the values the integers
// stand for, the factors, the pruned zeros; and it computes the same logits.
func TestDenseRoundTrip(t *testing.T) {
	for name, m := range testModels() {
		t.Run(name, func(t *testing.T) {
			_, ref := saved(t, m)
			df, dropped, got := denseBack(t, ref)
			if df.Metadata["stage"] != "prune" || df.Metadata["recipe_sha256"] != "ab12" {
				t.Errorf("metadata not carried over: %v", df.Metadata)
			}
			// The float model: ref without its quantization.
			want := ref.Clone()
			var hadInput []string
			for _, l := range want.WeightLayers() {
				l.Quant = nil
				for _, w := range l.Weights {
					w.QParams = nil
				}
				if l.Input != nil {
					hadInput = append(hadInput, l.Name)
					l.Input = nil
				}
			}
			if err := sameModel(want, got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dropped, hadInput) {
				t.Errorf("dropped %v, want %v", dropped, hadInput)
			}
			if len(hadInput) > 0 {
				return // activations were quantized: the float model's outputs differ
			}
			split := testSplit(ref.Spec, 9)
			a, err := model.Logits(context.Background(), ref, split, 4)
			mustT(t, err)
			b, err := model.Logits(context.Background(), got, split, 4)
			mustT(t, err)
			if !sameBits(a, b) {
				t.Error("the dense model's logits differ from the quantized model's")
			}
		})
	}
}

func TestDenseF32Bytes(t *testing.T) {
	if got, _ := DenseF32Bytes(*mustArch(t, `{"arch":"mlp","inputs":784,"classes":10}`)); got != 1066440 {
		t.Errorf("LeNet-300-100: %d bytes, want 4 x 266,610 = 1,066,440", got)
	}
	if got, _ := DenseF32Bytes(*mustArch(t, `{"arch":"lenet5","classes":10}`)); got != 4*44426 {
		t.Errorf("LeNet-5: %d bytes, want 4 x 44,426", got)
	}
}
