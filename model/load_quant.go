package model

import (
	"fmt"
	"slices"

	"github.com/shrink-ml/shrink/quant"
)

// Reading quantized layers back: the integers (I8, or pack-quantized I32 for 4
// bits and below), their scale and zero point, and a static input's scale. The
// compression metadata, when present, says what to expect (the bit width of a
// packed weight, the scheme and granularity); a file without it (written by
// another tool) is read from its tensors alone.

// quantizedWeight reads w's integers and parameters, sets l.Quant when the
// metadata did not, and fills w.Data with the values the integers stand for.
func (ld *loader) quantizedWeight(l *Layer, w *Weight) *Weight {
	p := w.Name // companions: W_packed, W_shape, W_scale, W_zero_point
	var q []int32
	var bits int
	switch {
	case ld.has(p + "_packed"):
		q, bits = ld.packed(l, p, w.Shape)
	case ld.has(w.Name):
		q, bits = ld.int8s(l, w.Name, w.Shape)
	default:
		ld.missing = append(ld.missing, w.Name)
		return nil
	}
	if q == nil {
		return nil
	}
	params, spec := ld.weightParams(l, p, w.Shape)
	if params == nil {
		return nil
	}
	spec.Bits = bits
	if l.Quant == nil {
		l.Quant = &spec
	}
	qmin, qmax := l.Quant.Range()
	for c, z := range params.ZeroPoint {
		if z < qmin || z > qmax {
			ld.badType = append(ld.badType, fmt.Sprintf("%s_zero_point[%d] = %d is outside %d bits' range [%d, %d]", p, c, z, l.Quant.Bits, qmin, qmax))
			return nil
		}
	}
	w.QParams = params
	w.Data = make([]float32, len(q))
	quant.Dequantize(q, *params, w.Data)
	return w
}

// packed reads W_packed and W_shape (NAME.weight_packed, NAME.weight_shape). The bit width comes from
// the compression metadata; without it, from the packed row width (4 bits first,
// compressed-tensors' usual width, when two widths fit).
func (ld *loader) packed(l *Layer, p string, shape []int) ([]int32, int) {
	pk := ld.get(p + "_packed")
	st := ld.get(p + "_shape")
	if st == nil {
		ld.missing = append(ld.missing, p+"_shape")
		return nil, 0
	}
	dims, err := st.Int32s()
	if err != nil || !sameShape(dims, shape) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s_shape: want I32 %v", p, shape))
		return nil, 0
	}
	words, err := pk.Int32s()
	if err != nil || len(pk.Shape) != 2 || pk.Shape[0] != shape[0] {
		ld.badType = append(ld.badType, fmt.Sprintf("%s_packed is %s %v, want I32 [%d, words]", p, pk.DType, pk.Shape, shape[0]))
		return nil, 0
	}
	rows := shape[0]
	cols := prod(shape) / rows
	bits := 0
	if l.Quant != nil {
		bits = l.Quant.Bits
		if bits > 4 {
			ld.badType = append(ld.badType, fmt.Sprintf("%s_packed: the compression metadata says %d bits, but only 4 bits and below are packed (5 to 8 bits are I8 %s)", p, bits, p))
			return nil, 0
		}
	} else {
		var ok bool
		if bits, ok = quant.PackedBits(cols, pk.Shape[1]); !ok {
			ld.badType = append(ld.badType, fmt.Sprintf("%s_packed: %d words per row fit no width of 2 to 4 bits for %d columns", p, pk.Shape[1], cols))
			return nil, 0
		}
	}
	q, err := quant.Unpack(words, rows, cols, bits)
	if err != nil {
		ld.badType = append(ld.badType, p+"_packed: "+err.Error())
		return nil, 0
	}
	return q, bits
}

// int8s reads an I8 NAME.weight. Its width is the metadata's (5 to 8 bits are
// stored this way; narrower ones are accepted too, as PyTorch writes them), or 8.
func (ld *loader) int8s(l *Layer, name string, shape []int) ([]int32, int) {
	t := ld.get(name)
	v, err := t.Int8s()
	if err != nil || !slices.Equal(t.Shape, shape) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s is %s %v, want F32 or I8 %v", name, t.DType, t.Shape, shape))
		return nil, 0
	}
	bits := 8
	if l.Quant != nil {
		bits = l.Quant.Bits
	}
	qmin, qmax := quant.Spec{Bits: bits}.Range()
	q := make([]int32, len(v))
	for i, x := range v {
		q[i] = int32(x)
		if q[i] < qmin || q[i] > qmax {
			ld.badType = append(ld.badType, fmt.Sprintf("%s[%d] = %d is outside %d bits' range [%d, %d]", name, i, x, bits, qmin, qmax))
			return nil, 0
		}
	}
	return q, bits
}

// weightParams reads W_scale ([out, 1] per channel, [1] per tensor) and
// W_zero_point (asymmetric only), and the spec they imply.
func (ld *loader) weightParams(l *Layer, p string, shape []int) (*quant.Params, quant.Spec) {
	spec := quant.Spec{Scheme: quant.Symmetric, Granularity: quant.PerTensor}
	scale := ld.get(p + "_scale")
	if scale == nil {
		ld.missing = append(ld.missing, p+"_scale")
		return nil, spec
	}
	scales, err := scale.Float32s()
	if err != nil || (len(scales) != 1 && len(scales) != shape[0]) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s_scale: want F32 [1] or [%d, 1]", p, shape[0]))
		return nil, spec
	}
	if len(scales) > 1 || len(scale.Shape) == 2 {
		spec.Granularity = quant.PerChannel
	}
	if l.Quant != nil && l.Quant.Channels(shape) != len(scales) {
		ld.badType = append(ld.badType, fmt.Sprintf("%s_scale has %d values; %s needs %d", p, len(scales), l.Quant.Granularity, l.Quant.Channels(shape)))
		return nil, spec
	}
	zps := make([]int32, len(scales))
	zt := ld.get(p + "_zero_point")
	switch {
	case zt != nil:
		z, err := zt.Int8s()
		if err != nil || len(z) != len(scales) {
			ld.badType = append(ld.badType, p+"_zero_point: want I8 shaped like the scale")
			return nil, spec
		}
		for i, x := range z {
			zps[i] = int32(x)
		}
		spec.Scheme = quant.Asymmetric
	case l.Quant != nil && l.Quant.Scheme == quant.Asymmetric:
		ld.missing = append(ld.missing, p+"_zero_point")
		return nil, spec
	}
	return &quant.Params{Scale: scales, ZeroPoint: zps}, spec
}

// inputQuant reads a static input's NAME.input_scale and NAME.input_zero_point.
// Without metadata a file that has them is 8-bit static, asymmetric when it has a
// zero point.
func (ld *loader) inputQuant(l *Layer, p string) {
	s := ld.get(p + ".input_scale")
	if s == nil {
		if l.Input != nil && l.Input.Mode == "static" {
			ld.missing = append(ld.missing, p+".input_scale")
		}
		return
	}
	scale, err := s.Float32s()
	if err != nil || len(scale) != 1 {
		ld.badType = append(ld.badType, p+".input_scale: want F32 [1]")
		return
	}
	zp := []int32{0}
	zt := ld.get(p + ".input_zero_point")
	if zt != nil {
		z, err := zt.Int8s()
		if err != nil || len(z) != 1 {
			ld.badType = append(ld.badType, p+".input_zero_point: want I8 [1]")
			return
		}
		zp[0] = int32(z[0])
	}
	if l.Input == nil {
		scheme := quant.Symmetric
		if zt != nil {
			scheme = quant.Asymmetric
		}
		l.Input = &ActQuant{Mode: "static", Spec: quant.Spec{Bits: 8, Scheme: scheme, Granularity: quant.PerTensor}}
	}
	if l.Input.Spec.Scheme == quant.Asymmetric && zt == nil {
		ld.missing = append(ld.missing, p+".input_zero_point")
		return
	}
	l.Input.Params = quant.Params{Scale: scale, ZeroPoint: zp}
}
