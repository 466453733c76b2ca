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
	"github.com/shrink-ml/shrink/onnx/onnximport"
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

// TrainableMetrics are what training a model holds: the values it updates
// (trainable_params), their share of all parameters (trainable_share), and
// the bytes of the optimizer's state for them (optimizer_state_bytes: Adam
// keeps two float32 moments a value, SGD with momentum one).
func TrainableMetrics(m *model.Model, t Training) map[string]any {
	n := m.Trainable()
	per := 0
	switch {
	case t.Optimizer.Name == "adam":
		per = 2
	case t.Optimizer.Momentum != 0:
		per = 1
	}
	return map[string]any{
		"trainable_params":      n,
		"trainable_share":       Round6(float64(n) / float64(max(m.Count().Total, 1))),
		"optimizer_state_bytes": 4 * per * n,
	}
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
	if c.Spec.ONNX != "" {
		return LoadONNX(c.Spec)
	}
	if c.Spec.Checkpoint != "" {
		return LoadStart(c.Spec)
	}
	return c.Fresh()
}

// LoadONNX builds the model of `model: {onnx: FILE}` from the file: its
// network, which must still be the one the recipe was validated with, and
// its weights.
func LoadONNX(spec arch.Spec) (*model.Model, error) {
	res, err := onnximport.ReadFile(spec.ONNX)
	if err != nil {
		return nil, err
	}
	m, err := model.FromFile(res.Weights, &res.Spec)
	if err == nil {
		err = CheckFinite(m)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.ONNX, err)
	}
	if got, want := m.Spec.JSON(), spec.JSON(); got != want {
		return nil, fmt.Errorf("model.onnx %s now holds the network %s, not the %s the recipe was checked with: did the file change during the run?", spec.ONNX, got, want)
	}
	return m, nil
}

// LoadStart reads the recipe's model.checkpoint (safetensors, or a compressed
// export used as it is) and checks it holds the model section's architecture.
func LoadStart(spec arch.Spec) (*model.Model, error) {
	m, err := LoadFile("model.checkpoint ", spec.Checkpoint, &spec)
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

// LoadFile reads a model file a recipe names (safetensors or a compressed
// export, export.LoadModel) and refuses one whose weights are not finite
// (CheckFinite), naming the file after what, the key that named it: every
// stage that starts from a user's file gets the check.
func LoadFile(what, path string, spec *arch.Spec) (*model.Model, error) {
	m, err := export.LoadModel(path, spec)
	if err != nil {
		return nil, err
	}
	if err := CheckFinite(m); err != nil {
		return nil, fmt.Errorf("%s%s: %w", what, path, err)
	}
	return m, nil
}

// CheckFinite refuses a model read from a file the recipe names if a float
// tensor holds a NaN or an infinity: every stage would compute garbage from it
// (pruning ranks NaN arbitrarily, an SVD does not converge), far from the
// cause, which is usually a training that diverged before the file was saved.
func CheckFinite(m *model.Model) error {
	for _, l := range m.Layers {
		for _, group := range [][]*model.Weight{l.Weights, l.Params, l.Buffers} {
			for _, w := range group {
				for i, v := range w.Data {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return fmt.Errorf("tensor %s holds %v (value %d of %d): the weights must be finite numbers; was the file saved from a training that diverged?", w.Name, v, i, len(w.Data))
					}
				}
			}
		}
	}
	return nil
}

// Fresh builds the recipe's model with weights drawn from the seed: the same
// initial weights in every stage of the recipe.
func (c *Context) Fresh() (*model.Model, error) {
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
	state := stateOf(m, "") // what the saved training state holds
	if peer != nil {
		state = append(state, stateOf(peer, "peer/")...)
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
func saveTrainState(path string, state []stateTensor, st *model.TrainState, src *rand.PCG) error {
	rng, err := src.MarshalBinary()
	if err != nil {
		return err
	}
	f := &checkpoint.File{Metadata: map[string]string{
		"epoch": strconv.Itoa(st.Epoch), "step": strconv.Itoa(st.Opt.Step),
		"lr": strconv.FormatFloat(st.Opt.LR, 'g', -1, 64), "rng": base64.StdEncoding.EncodeToString(rng),
	}}
	for _, t := range state {
		if t.count != nil {
			f.Tensors = append(f.Tensors, checkpoint.I64("c:"+t.name, []int{}, []int64{*t.count}))
		} else {
			f.Tensors = append(f.Tensors, checkpoint.F32("w:"+t.name, t.shape, t.data))
		}
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
func loadTrainState(path string, state []stateTensor, src *rand.PCG) (*trainState, error) {
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
	type count struct {
		dst *int64
		v   int64
	}
	var counts []count
	for _, s := range state {
		if s.count == nil {
			if err := want(s.name, s.data); err != nil {
				return nil, err
			}
			continue
		}
		t, ok := f.Get("c:" + s.name)
		if !ok {
			return nil, fmt.Errorf("%s: no %s", path, s.name)
		}
		v, err := t.Int64s()
		if err != nil || len(v) != 1 {
			return nil, fmt.Errorf("%s: %s does not fit the model", path, s.name)
		}
		counts = append(counts, count{s.count, v[0]})
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
	for _, c := range counts {
		*c.dst = c.v
	}
	src.UnmarshalBinary(rng) // checked above
	return st, nil
}

// stateTensor is one tensor training changes, as the training-state file
// names it: a float tensor (weights, other parameters, buffers such as batch
// norm's running statistics) or an int64 counter (num_batches_tracked). It
// shares the model's memory, so restoring the state writes into the model.
type stateTensor struct {
	name  string
	shape []int
	data  []float32
	count *int64
}

// stateOf lists a model's state tensors, their names prefixed (a mutual
// learning peer's are "peer/...").
func stateOf(m *model.Model, prefix string) []stateTensor {
	var out []stateTensor
	for _, l := range m.Layers {
		for _, set := range [][]*model.Weight{l.Weights, l.Params, l.Buffers} {
			for _, w := range set {
				out = append(out, stateTensor{name: prefix + w.Name, shape: w.Shape, data: w.Data})
			}
		}
		for _, c := range l.Counters {
			out = append(out, stateTensor{name: prefix + c.Name, count: &c.Value})
		}
		if a := l.Adapter; a != nil {
			for _, w := range []*model.Weight{a.A, a.B} {
				out = append(out, stateTensor{name: prefix + w.Name, shape: w.Shape, data: w.Data})
			}
		}
	}
	return out
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

// Layers says which layers of a model a stage acts on, for checking the names
// and patterns its keys hold.
type Layers struct {
	// What names them in messages: "layers with weights", "linear and conv2d
	// layers".
	What string
	// OK accepts a layer; nil accepts every layer with weights.
	OK func(n *arch.Node) bool
	// Learnable also admits layers whose learnable tensors are not weights
	// (a batch norm's affine parameters).
	Learnable bool
}

// AnyWeights is every layer with weights: what pruning acts on.
var AnyWeights = Layers{What: "layers with weights"}

// AnyLearnable is every layer with learnable tensors: what training acts on.
var AnyLearnable = Layers{What: "layers with learnable tensors", Learnable: true}

func (f Layers) accepts(n *arch.Node) bool {
	if !HasWeights(n) && !(f.Learnable && n.Params() > 0) {
		return false
	}
	return f.OK == nil || f.OK(n)
}

// HasWeights reports whether a layer has tensors compressions act on.
func HasWeights(n *arch.Node) bool {
	for _, t := range n.Tensors() {
		if t.Role == arch.Weight {
			return true
		}
	}
	return false
}

// Candidates lists the names of the layers f accepts.
func (f Layers) Candidates(g *arch.Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		if f.accepts(n) {
			out = append(out, n.Name)
		}
	}
	return out
}

// CheckLayers reports each selector of a layers list (key.0, key.1, ...) that
// is malformed or selects none of the layers f accepts. Selectors are names,
// globs or re: patterns (arch.Resolve).
func CheckLayers(in arch.Spec, key string, selectors []string, f Layers) config.Errors {
	g, err := in.Graph()
	if err != nil {
		return nil // the model section's own errors are reported for it
	}
	var errs config.Errors
	for i, sel := range selectors {
		errs = append(errs, checkSelector(g, key+"."+strconv.Itoa(i), sel, f)...)
	}
	return errs
}

// CheckLayerKeys does the same for a map keyed by layer selectors (key.fc1, ...).
func CheckLayerKeys[V any](in arch.Spec, key string, m map[string]V, f Layers) config.Errors {
	g, err := in.Graph()
	if err != nil {
		return nil
	}
	var errs config.Errors
	for _, sel := range slices.Sorted(maps.Keys(m)) {
		errs = append(errs, checkSelector(g, key+"."+sel, sel, f)...)
	}
	return errs
}

func checkSelector(g *arch.Graph, path, sel string, f Layers) config.Errors {
	if _, err := f.Resolve(g, []string{sel}); err != nil {
		return config.Errors{config.Errorf(path, "%v", err)}
	}
	return nil
}

// Resolve turns selectors into the names of the layers they select among
// those f accepts, in forward order. A name the model has but f does not
// accept is an error saying why.
func (f Layers) Resolve(g *arch.Graph, selectors []string) ([]string, error) {
	candidates := f.Candidates(g)
	for _, sel := range selectors {
		if n := g.Node(sel); n != nil && !f.accepts(n) {
			return nil, fmt.Errorf("layer %q is a %s: this stage acts on %s (%s)", sel, n.Type, f.What, strings.Join(candidates, ", "))
		}
	}
	return arch.Expand(selectors, candidates, f.What)
}

// Lookup finds a layer's entry in a map keyed by layer selectors (names,
// globs, re: patterns): its exact name first, then the one pattern matching
// it; key is the selector that matched. Two patterns matching one layer is an
// error naming both.
func Lookup[V any](m map[string]V, name string) (v V, key string, err error) {
	if v, ok := m[name]; ok {
		return v, name, nil
	}
	for _, sel := range slices.Sorted(maps.Keys(m)) {
		if !arch.IsPattern(sel) {
			continue
		}
		match, err := arch.Matcher(sel)
		if err != nil {
			return v, "", err
		}
		if !match(name) {
			continue
		}
		if key != "" {
			return v, "", fmt.Errorf("layer %s is matched by both %q and %q: make the patterns exclusive or name the layer", name, key, sel)
		}
		v, key = m[sel], sel
	}
	return v, key, nil
}

// Factorable is the layers lowrank factors and LoRA adapts: linear, and
// ungrouped conv2d.
var Factorable = Layers{What: "linear and conv2d layers (ungrouped)", OK: func(n *arch.Node) bool { return n.Caps().Factor }}
