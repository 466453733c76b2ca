package data

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func syntheticConfig(features, classes, samples int) Config {
	c := DefaultConfig()
	c.Dataset, c.Features, c.Classes, c.Samples = KindSynthetic, features, classes, samples
	return c
}

func TestSyntheticDeterministic(t *testing.T) {
	cfg := syntheticConfig(16, 4, 200)
	a, err := Load(cfg, "", 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Load(cfg, "", 42)
	c, _ := Load(cfg, "", 43)
	for _, pair := range [][2]*Split{{a.Train, b.Train}, {a.Test, b.Test}} {
		if !slices.Equal(f32bits(pair[0].X), f32bits(pair[1].X)) || !slices.Equal(pair[0].Y, pair[1].Y) {
			t.Fatal("same seed, different data")
		}
	}
	if slices.Equal(a.Train.X, c.Train.X) || a.Fingerprint == c.Fingerprint {
		t.Fatal("different seeds, same data")
	}
	if a.Fingerprint != b.Fingerprint {
		t.Fatal("same seed, different fingerprint")
	}
	if a.ImageShape != nil || a.Normalize != nil || a.Sources != nil || a.Kind != KindSynthetic {
		t.Fatalf("synthetic has image metadata: %+v", a)
	}
	for _, v := range a.Train.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite value")
		}
	}
}

// Golden values pin the generator: a change here changes every synthetic dataset
// (and so its fingerprint, which hashes the values).
func TestSyntheticGolden(t *testing.T) {
	ds, err := Load(syntheticConfig(4, 3, 10), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("X[:4] = %v, Y = %v, fingerprint %s", ds.Train.X[:4], slices.Concat(ds.Train.Y, ds.Test.Y), ds.Fingerprint)
	if got, want := slices.Concat(ds.Train.Y, ds.Test.Y), goldenSyntheticY; !slices.Equal(got, want) {
		t.Errorf("labels %v; want %v", got, want)
	}
	if got := ds.Train.X[:4]; !slices.Equal(got, goldenSyntheticX) {
		t.Errorf("first row %v; want %v", got, goldenSyntheticX)
	}
	if ds.Fingerprint != goldenSyntheticFingerprint {
		t.Errorf("fingerprint %s; want %s", ds.Fingerprint, goldenSyntheticFingerprint)
	}
}

var (
	goldenSyntheticY           = []int32{0, 2, 1, 1, 0, 0, 2, 0, 2, 1}
	goldenSyntheticX           = []float32{-1.5692759, -2.2748382, -1.0114563, 2.3626945}
	goldenSyntheticFingerprint = "f11edc78be02fc52eb87b37ad5b8e3d95c72817ad2de6fe26fa3ce61e4ac68ec"
)

func TestSyntheticSplitAndBalance(t *testing.T) {
	tests := []struct{ features, classes, samples, train, test int }{
		{32, 10, 1000, 800, 200},
		{2, 2, 10, 8, 2},
		{5, 3, 11, 8, 3},
		{1, 7, 999, 799, 200},
	}
	for _, tt := range tests {
		ds, err := Load(syntheticConfig(tt.features, tt.classes, tt.samples), "", 3)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Train.N != tt.train || ds.Test.N != tt.test || ds.Features != tt.features || ds.Classes != tt.classes ||
			len(ds.Train.X) != tt.train*tt.features || len(ds.Test.X) != tt.test*tt.features || ds.Val != nil {
			t.Fatalf("%+v: train %d test %d features %d", tt, ds.Train.N, ds.Test.N, ds.Features)
		}
		// Labels are balanced over the whole set: i mod classes.
		counts := make([]int, tt.classes)
		for _, s := range []*Split{ds.Train, ds.Test} {
			for k, n := range s.ClassCounts(tt.classes) {
				counts[k] += n
			}
		}
		for k, n := range counts {
			if want := tt.samples / tt.classes; n != want && n != want+1 {
				t.Fatalf("%+v: class %d has %d rows", tt, k, n)
			}
		}
	}
}

// The default synthetic set must be learnable but not trivially: softmax regression
// trained for 3 epochs lands between 80% and 99.5% test accuracy for every seed tried.
func TestSyntheticDifficulty(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small model")
	}
	var sum float64
	for seed := uint64(1); seed <= 5; seed++ {
		ds, err := Load(defaultSyntheticConfig(), "", seed)
		if err != nil {
			t.Fatal(err)
		}
		acc := softmaxAccuracy(ds, 3, 0.1)
		t.Logf("seed %d: test accuracy %.3f", seed, acc)
		if acc < 0.80 || acc > 0.995 {
			t.Errorf("seed %d: test accuracy %.3f, want in [0.80, 0.995]", seed, acc)
		}
		sum += acc
	}
	t.Logf("mean accuracy %.3f", sum/5)
}

// defaultSyntheticConfig returns the default config switched to synthetic data.
func defaultSyntheticConfig() Config {
	c := DefaultConfig()
	c.Dataset = KindSynthetic
	return c
}

func f32bits(x []float32) []uint32 {
	b := make([]uint32, len(x))
	for i, v := range x {
		b[i] = math.Float32bits(v)
	}
	return b
}

// softmaxAccuracy trains multinomial logistic regression with minibatch SGD (batch
// 32) and returns test accuracy.
func softmaxAccuracy(ds *Dataset, epochs int, lr float32) float64 {
	F, C := ds.Features, ds.Classes
	W := make([]float32, F*C)
	b := make([]float32, C)
	rng := rand.New(rand.NewPCG(1, 2))
	p := make([]float32, C)
	forward := func(x []float32) {
		m := float32(math.Inf(-1))
		for c := range C {
			s := b[c]
			for k, w := range W[c*F : (c+1)*F] {
				s += w * x[k]
			}
			p[c], m = s, max(m, s)
		}
		var z float32
		for c := range p {
			p[c] = float32(math.Exp(float64(p[c] - m)))
			z += p[c]
		}
		for c := range p {
			p[c] /= z
		}
	}
	const bs = 32
	bt := NewBatcher(ds.Train, bs, true)
	xb, yb := make([]float32, bs*F), make([]int32, bs)
	gW, gb := make([]float32, F*C), make([]float32, C)
	for range epochs {
		bt.Epoch(rng)
		for {
			n, ok := bt.Next(xb, yb)
			if !ok {
				break
			}
			clear(gW)
			clear(gb)
			for i := range n {
				x := xb[i*F : (i+1)*F]
				forward(x)
				p[yb[i]]--
				for c := range C {
					gb[c] += p[c]
					for k := range F {
						gW[c*F+k] += p[c] * x[k]
					}
				}
			}
			for i := range W {
				W[i] -= lr * gW[i] / float32(n)
			}
			for i := range b {
				b[i] -= lr * gb[i] / float32(n)
			}
		}
	}
	correct := 0
	for i := range ds.Test.N {
		forward(ds.Test.Row(i))
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		if int32(best) == ds.Test.Y[i] {
			correct++
		}
	}
	return float64(correct) / float64(ds.Test.N)
}
