package lowrank

import (
	"fmt"
	"math"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/stages"
)

// Outcomes of factoring one layer, as LayerReport.Result says them.
const (
	Factored      = "factored"       // a dense layer became two factors
	Refactored    = "refactored"     // a factored layer's product was factored to a lower rank
	KeptDense     = "kept dense"     // the factors would not be smaller than the dense weight
	KeptFactored  = "kept factored"  // already factored at or below the rank asked for
	KeptUnchanged = "kept unchanged" // neither smaller as factors nor below the present rank
)

// factorLayer applies a rule to one layer in place and reports what it did. The
// weight it factors is the one the layer computes with: the dense weight (its
// dequantized values if quantized), or the product of its factors.
func factorLayer(l *model.Layer, r rule, log zerolog.Logger) (LayerReport, error) {
	rows, cols := l.Units(), l.FanIn()
	// The SVD only when it is needed: for an energy rule, or to factor. A rank
	// rule that keeps the layer as it is decides without it.
	var w []float64
	var d *decomposition
	svd := func() (err error) {
		w = l.DenseWeight()
		if d, err = decompose(w, rows, cols); err != nil {
			return fmt.Errorf("layer %s: %w", l.Name, err)
		}
		return nil
	}
	k := r.rank
	if k == 0 {
		if err := svd(); err != nil {
			return LayerReport{}, err
		}
		k = energyRank(d.values, r.energy)
	}
	rep := LayerReport{Rule: r.String(), Shape: l.WeightShape(), RankBefore: l.Rank, ParamsBefore: weightCount(l),
		MultiplyAddsBefore: l.MultiplyAdds(), EnergyKept: 1}
	lg := log.With().Str("layer", l.Name).Str("rule", rep.Rule).Int("rank", k).Logger()
	// A rank at or above min(rows, cols) never makes factors smaller than the
	// weight; capping it there keeps k x (rows + cols) from overflowing on any
	// rank a recipe may give (the schema bounds it only below).
	switch capped := min(k, rows, cols); {
	case capped*(rows+cols) >= rows*cols:
		how := "dense"
		rep.Result = KeptDense
		if l.Rank > 0 {
			rep.Result, how = KeptUnchanged, fmt.Sprintf("factored at rank %d", l.Rank)
		}
		if k > capped {
			lg.Info().Int("dense_params", rows*cols).
				Msgf("layer %s stays %s: rank %d is above the rank %d its %dx%d weight can have", l.Name, how, k, capped, rows, cols)
			break
		}
		lg.Info().Int("factored_params", k*(rows+cols)).Int("dense_params", rows*cols).
			Msgf("layer %s stays %s: rank %d factors of its %dx%d weight would hold %d parameters, the dense weight %d", l.Name, how, k, rows, cols, k*(rows+cols), rows*cols)
	case l.Rank > 0 && k >= l.Rank:
		rep.Result = KeptFactored
		lg.Info().Int("present_rank", l.Rank).
			Msgf("layer %s is already factored at rank %d <= %d: kept as it is", l.Name, l.Rank, k)
	default:
		rep.Result = Factored
		if l.Rank > 0 {
			rep.Result = Refactored
		}
		if d == nil {
			if err := svd(); err != nil {
				return LayerReport{}, err
			}
		}
		warnLosses(l, lg)
		first, second := d.factors(k)
		setFactors(l, first, second)
		rep.ReconstructionError = relativeError(w, l)
		if e := cumulativeEnergy(d.values)[k-1]; !math.IsNaN(e) { // NaN: an all-zero weight
			rep.EnergyKept = e
		}
		lg.Info().Int("params_before", rep.ParamsBefore).Int("params", weightCount(l)).
			Float64("relative_error", stages.Round6(rep.ReconstructionError)).Msgf("layer %s %s", l.Name, rep.Result)
	}
	rep.Rank, rep.Params, rep.MultiplyAdds = l.Rank, weightCount(l), l.MultiplyAdds()
	return rep, nil
}

// warnLosses says what factoring drops from the layer's compression.
func warnLosses(l *model.Layer, log zerolog.Logger) {
	if l.Pruned {
		log.Warn().Msgf("layer %s is pruned: its factors are dense, so its zeros are not kept and it is no longer marked pruned (prune after lowrank to sparsify the factors)", l.Name)
	}
	if l.Quant != nil {
		log.Info().Str("quant", l.Quant.String()).
			Msgf("layer %s is quantized: its dequantized weights are factored and both factors are quantized again with the same settings", l.Name)
	}
}

// setFactors makes the layer factored at rank k: NAME.0.weight [k, in(, kh, kw)],
// then NAME.1.weight [out, k(, 1, 1)], the bias becoming NAME.1.bias. Masks go
// (the factors are dense); quantized layers quantize their factors afresh.
func setFactors(l *model.Layer, first, second []float32) {
	l.SetFactors(first, second)
	l.Pruned = false
	l.Requantize() // a quantized layer's factors are quantized too
}

// relativeError is ||W - NAME.1.weight x NAME.0.weight||_F / ||W||_F for the
// factors as stored (0 for an all-zero W).
func relativeError(w []float64, l *model.Layer) float64 {
	p := l.DenseWeight()
	var diff, norm float64
	for i, x := range w {
		diff += (x - p[i]) * (x - p[i])
		norm += x * x
	}
	if norm == 0 {
		return 0
	}
	return math.Sqrt(diff / norm)
}

func weightCount(l *model.Layer) int {
	n := 0
	for _, w := range l.Weights {
		n += len(w.Data)
	}
	return n
}
