package export

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/compress"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/onnx/onnximport"
)

// ReadFile reads a checkpoint in either format (see compress.ReadFile).
func ReadFile(path string) (*checkpoint.File, *compress.Info, error) {
	return compress.ReadFile(path)
}

// LoadModel is model.Load for either format: a compressed file is decoded to
// the checkpoint it was made from. spec is the architecture of a checkpoint
// without shrink's metadata. A .onnx file is imported (network and weights,
// onnx/onnximport).
func LoadModel(path string, spec *arch.Spec) (*model.Model, error) {
	if strings.EqualFold(filepath.Ext(path), ".onnx") {
		res, err := onnximport.ReadFile(path)
		if err != nil {
			return nil, err
		}
		m, err := model.FromFile(res.Weights, &res.Spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return m, nil
	}
	f, _, err := compress.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := model.FromFile(f, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
