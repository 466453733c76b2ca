package model

import (
	"github.com/chewxy/hm"

	"github.com/shrink-ml/shrink/internal/op"
)

// The model package's own ops (losses, quantizers, observers) share the
// helpers of internal/op with the layer ops of package nn.

type opBase = op.Base

func newBase(name string) opBase { return op.NewBase(name) }

var (
	tensorOf = op.Of
	shapeOf  = op.ShapeOf
	f32      = op.F32
	dims     = op.Dims
	buffer   = op.Buffer
	tA       = hm.TypeVariable('a')
)
