package stages

import (
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/model"
)

// DivergenceFactor is how far above its first batch's loss an epoch's mean
// loss must be to count as diverging: training that works only lowers it, and
// a diverging one ends orders of magnitude above.
const DivergenceFactor = 10

// Training is the recipe's training settings, shared by every stage that trains:
// train itself, and finetune, qat and distill.
type Training struct {
	Epochs    int                   `json:"epochs" minimum:"0" doc:"passes over the training data"`
	Optimizer model.OptimizerConfig `json:"optimizer" doc:"optimizer: {name: adam|sgd, lr, momentum, weight_decay, lr_decay}"`
	BatchSize int                   `json:"batch_size,omitempty" minimum:"1" doc:"rows per step (default: data.batch_size)"`
}

// DefaultTraining is one epoch of Adam at lr 0.001.
func DefaultTraining(epochs int) Training {
	return Training{Epochs: epochs, Optimizer: model.DefaultOptimizer()}
}

// Finetune is an optional training pass after a compression: `finetune: {epochs,
// optimizer}`; epochs 0 (the default) means none.
type Finetune = Training

// Stream derives an independent random source for a purpose (model init, a
// pruning draw) from the recipe seed, so adding a stage never shifts another's
// randomness.
func Stream(seed uint64, purpose string) *rand.PCG {
	h := fnv.New64a()
	h.Write([]byte(purpose))
	return rand.NewPCG(seed, h.Sum64())
}

// Start returns the model the stage transforms: a copy of its needs input, or
// the recipe's model (its checkpoint, or fresh weights from the seed).
func (c *Context) Start() (*model.Model, error) {
	if c.Input != nil {
		return c.Input.Clone(), nil
	}
	if c.Spec.Checkpoint != "" {
		return LoadStart(c.Spec)
	}
	return c.Fresh(), nil
}

// LoadStart reads the recipe's model.checkpoint (safetensors, or a compressed
// export used as it is) and checks it holds the model section's architecture.
func LoadStart(spec arch.Spec) (*model.Model, error) {
	m, err := export.LoadModel(spec.Checkpoint, &spec)
	if err != nil {
		return nil, err
	}
	// A shrink checkpoint carries its architecture; the recipe's model section
	// must say the same, since validation, keys and data checks rely on it.
	if got, want := m.Spec.JSON(), spec.JSON(); got != want {
		return nil, fmt.Errorf("model.checkpoint %s holds the architecture %s, but the recipe's model section says %s: make the model section match the checkpoint", spec.Checkpoint, got, want)
	}
	return m, nil
}

// Fresh builds the recipe's model with weights drawn from the seed: the same
// initial weights in every stage of the recipe.
func (c *Context) Fresh() *model.Model {
	return model.New(c.Spec, rand.New(Stream(c.Seed, "model-init")))
}

// Dataset loads the data, or says the stage needs some.
func (c *Context) Dataset() (*data.Dataset, error) {
	if c.Data == nil {
		return nil, fmt.Errorf("this stage needs data: add a data section to the recipe")
	}
	return c.Data()
}

// Train runs a training phase with resumable state: after every epoch the
// weights, optimizer and random state are saved under StateDir/phase, and a
// rerun of the same stage continues from the last finished epoch with results
// bit-identical to an uninterrupted run.
func (c *Context) Train(phase string, m *model.Model, t Training, loss model.Loss, teacher func([]int32, []float32) error) error {
	return c.train(phase, m, nil, t, loss, teacher)
}

// train is Train, with a peer trained alongside m by mutual learning when peer
// is not nil (TrainMutual).
func (c *Context) train(phase string, m, peer *model.Model, t Training, loss model.Loss, teacher func([]int32, []float32) error) error {
	if t.Epochs == 0 {
		return nil
	}
	ds, err := c.Dataset()
	if err != nil {
		return err
	}
	bs := t.BatchSize
	if bs == 0 {
		bs = c.DataConfig.BatchSize
	}
	opt := model.TrainOptions{
		Epochs: t.Epochs, BatchSize: bs, Shuffle: c.DataConfig.Shuffle, Optimizer: t.Optimizer,
		Loss: loss, Teacher: teacher, Peer: peer, Progress: c.Progress,
	}
	state := m // what the saved training state holds
	if peer != nil {
		state = jointState(m, peer)
	}
	statePath := ""
	if c.StateDir != "" {
		statePath = filepath.Join(c.StateDir, phase+".safetensors")
		st, err := loadTrainState(statePath, state, c.Source)
		switch {
		case err == nil:
			opt.StartEpoch, opt.Resume = st.epoch, st.opt
			opt.ActRanges = st.act
			c.Log.Info().Str("phase", phase).Int("epoch", st.epoch).Msg("resuming from the last finished epoch")
		case !errors.Is(err, os.ErrNotExist):
			c.Log.Warn().Err(err).Str("phase", phase).Msg("ignoring unreadable training state; starting the phase over")
		}
	}
	warned := false
	opt.EpochEnd = func(epoch int, s model.EpochStats, st *model.TrainState) error {
		if s.StartLoss > 0 && s.Loss > DivergenceFactor*s.StartLoss && !warned {
			warned = true
			c.Log.Warn().Str("phase", phase).Int("epoch", epoch).Float64("loss", Sig6(s.Loss)).Float64("first_batch_loss", Sig6(s.StartLoss)).
				Msgf("training is diverging: the epoch's mean loss is %.3g times the first batch's; lower the learning rate (optimizer.lr)", s.Loss/s.StartLoss)
		}
		// Six significant digits: a loss's 17 digits are noise to a reader.
		ev := c.Log.Info().Str("phase", phase).Int("epoch", epoch).Int("of", t.Epochs).Float64("loss", Sig6(s.Loss))
		if peer != nil {
			ev = ev.Float64("peer_loss", Sig6(s.PeerLoss))
		}
		ev.Float64("seconds", math.Round(s.Seconds*1000)/1000).Msg("epoch done")
		if statePath == "" {
			return nil
		}
		return saveTrainState(statePath, state, st, c.Source)
	}
	return model.Train(c, m, ds.Train, opt, c.Rand)
}

type trainState struct {
	epoch int
	opt   *model.OptState
	act   map[string][2]float32
}

// saveTrainState writes the weights (raw floats, not quantized), the optimizer's
// moments and the random source's state, atomically and sealed with a digest
// of its content (checkpoint.Seal), which loadTrainState verifies.
func saveTrainState(path string, m *model.Model, st *model.TrainState, src *rand.PCG) error {
	rng, err := src.MarshalBinary()
	if err != nil {
		return err
	}
	f := &checkpoint.File{Metadata: map[string]string{
		"epoch": strconv.Itoa(st.Epoch), "step": strconv.Itoa(st.Opt.Step),
		"lr": strconv.FormatFloat(st.Opt.LR, 'g', -1, 64), "rng": base64.StdEncoding.EncodeToString(rng),
	}}
	for _, l := range m.Layers {
		for _, w := range l.Weights {
			f.Tensors = append(f.Tensors, checkpoint.F32("w:"+w.Name, w.Shape, w.Data))
		}
		f.Tensors = append(f.Tensors, checkpoint.F32("w:"+l.BiasName(), []int{len(l.Bias)}, l.Bias))
	}
	for i, mo := range st.Opt.Moments {
		f.Tensors = append(f.Tensors, checkpoint.F32(fmt.Sprintf("opt:%04d", i), []int{len(mo)}, mo))
	}
	for name, r := range st.ActRanges {
		f.Tensors = append(f.Tensors, checkpoint.F32("act:"+name, []int{2}, r[:]))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	checkpoint.Seal(f) // a flipped bit would otherwise resume into a different result
	_, err = checkpoint.WriteFile(path, f)
	return err
}

// loadTrainState restores what saveTrainState wrote into m and src.
func loadTrainState(path string, m *model.Model, src *rand.PCG) (*trainState, error) {
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := checkpoint.CheckSeal(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st := &trainState{opt: &model.OptState{}, act: map[string][2]float32{}}
	if st.epoch, err = strconv.Atoi(f.Metadata["epoch"]); err != nil {
		return nil, fmt.Errorf("%s: bad epoch", path)
	}
	if st.opt.Step, err = strconv.Atoi(f.Metadata["step"]); err != nil {
		return nil, fmt.Errorf("%s: bad step", path)
	}
	if st.opt.LR, err = strconv.ParseFloat(f.Metadata["lr"], 64); err != nil {
		return nil, fmt.Errorf("%s: bad lr", path)
	}
	rng, err := base64.StdEncoding.DecodeString(f.Metadata["rng"])
	if err != nil {
		return nil, fmt.Errorf("%s: bad rng", path)
	}
	// Decode and check everything before touching m or src: a state that does
	// not fully fit is refused whole, and the phase starts over from m as it was.
	type fill struct{ dst, src []float32 }
	var fills []fill
	want := func(name string, dst []float32) error {
		t, ok := f.Get("w:" + name)
		if !ok {
			return fmt.Errorf("%s: no %s", path, name)
		}
		v, err := t.Float32s()
		if err != nil || len(v) != len(dst) {
			return fmt.Errorf("%s: %s does not fit the model", path, name)
		}
		fills = append(fills, fill{dst, v})
		return nil
	}
	for _, l := range m.Layers {
		for _, w := range l.Weights {
			if err := want(w.Name, w.Data); err != nil {
				return nil, err
			}
		}
		if err := want(l.BiasName(), l.Bias); err != nil {
			return nil, err
		}
	}
	for _, n := range f.Names() {
		t, _ := f.Get(n)
		switch {
		case strings.HasPrefix(n, "opt:"):
			v, err := t.Float32s()
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, n, err)
			}
			st.opt.Moments = append(st.opt.Moments, v)
		case strings.HasPrefix(n, "act:"):
			v, err := t.Float32s()
			if err == nil && len(v) == 2 {
				st.act[n[4:]] = [2]float32{v[0], v[1]}
			}
		}
	}
	if err := new(rand.PCG).UnmarshalBinary(rng); err != nil {
		return nil, fmt.Errorf("%s: bad rng: %w", path, err)
	}
	for _, fl := range fills {
		copy(fl.dst, fl.src)
	}
	src.UnmarshalBinary(rng) // checked above
	return st, nil
}

// LayerNames is a `layers` key: which layers a stage touches (default: all).
type LayerNames []string

// Validate rejects duplicates.
func (l LayerNames) Validate() error {
	seen := map[string]bool{}
	for i, n := range l {
		if seen[n] {
			return config.Errorf(strconv.Itoa(i), "layer %q is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// CheckLayers reports each name of a layers list (key.0, key.1, ...) that is not
// a layer of a model with this architecture.
func CheckLayers(in arch.Spec, key string, names []string) config.Errors {
	var errs config.Errors
	for i, n := range names {
		errs = append(errs, checkLayer(in, key+"."+strconv.Itoa(i), n)...)
	}
	return errs
}

// CheckLayerKeys does the same for a map keyed by layer name (key.fc1, ...).
func CheckLayerKeys[V any](in arch.Spec, key string, m map[string]V) config.Errors {
	names := slices.Sorted(maps.Keys(m))
	var errs config.Errors
	for _, n := range names {
		errs = append(errs, checkLayer(in, key+"."+n, n)...)
	}
	return errs
}

func checkLayer(in arch.Spec, path, name string) config.Errors {
	have := in.LayerNames()
	if slices.Contains(have, name) {
		return nil
	}
	return config.Errors{config.Errorf(path, "layer %q is not in the model (its layers: %s)%s",
		name, strings.Join(have, ", "), config.DidYouMean(name, have))}
}
