// Package runner runs a planned recipe: stage by stage in DAG order, reusing
// results whose key is unchanged, writing every checkpoint atomically, and
// recording the run in run.json.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/shrink-ml/shrink/checkpoint"
	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/data"
	"github.com/shrink-ml/shrink/export"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/model"
	"github.com/shrink-ml/shrink/onnx/onnximport"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

// ErrLocked is returned when another run holds the run folder.
var ErrLocked = errors.New("run folder locked")

// ErrStageFailed is returned by Run when a stage failed; the manifest says which.
var ErrStageFailed = errors.New("a stage failed")

// Options configure a Runner.
type Options struct {
	RunDir   string // the run folder
	CacheDir string // the result store: a folder (default <RunDir>/.shrink/store) or s3://BUCKET/PREFIX
	Force    bool   // rerun every stage
	From     string // rerun this stage and every stage after it
	Only     string // run only this stage; its inputs must be stored
	Jobs     int    // stages run at once (default 1)
	Sets     []string
	Log      zerolog.Logger
	// LogOutput, when set, is where Log writes: a stage's own lines then also
	// go to its result's log.jsonl (kept in the store with the checkpoint, so a
	// cached stage still shows the log of the run that made it).
	LogOutput io.Writer
	// Progress returns a stage's training progress sink (nil: log lines only).
	// Several stages may report at once; a Progress with Epochs 0 means the
	// stage has ended.
	Progress func(stage string) func(model.Progress)
}

// Runner runs one recipe.
type Runner struct {
	reg    *stages.Registry
	recipe *pipeline.Recipe
	opt    Options
	store  *Store

	prev *Manifest // the run folder's last run.json, for explaining changes

	// datas holds each data section the stages use (the recipe's, and the
	// stages' own data keys), loaded and fingerprinted once.
	dataMu sync.Mutex
	datas  map[string]*dataOnce
}

// dataOnce is one data section, its fingerprint and its rows.
type dataOnce struct {
	cfg    *data.Config
	key    string // where it comes from, for messages: "data", "stages.ID.data"
	fpOnce sync.Once
	fp     string
	fpErr  error
	once   sync.Once
	ds     *data.Dataset
	err    error
}

// New prepares a runner.
func New(reg *stages.Registry, recipe *pipeline.Recipe, opt Options) *Runner {
	if opt.RunDir == "" {
		opt.RunDir = filepath.Join("runs", recipe.Name)
	}
	remote := openRemote(&opt) // an s3:// CacheDir; the local store is then the default one
	if opt.CacheDir == "" {
		opt.CacheDir = DefaultStore(opt.RunDir)
	}
	if opt.Jobs <= 0 {
		opt.Jobs = 1
	}
	return &Runner{reg: reg, recipe: recipe, opt: opt, store: &Store{Dir: opt.CacheDir, Remote: remote}}
}

// RunDir is the run folder.
func (r *Runner) RunDir() string { return r.opt.RunDir }

// PlanItem is what Plan says of one stage.
type PlanItem struct {
	Stage  *pipeline.Stage
	Folder string
	Status string // "cached" or "run"
	Reason string
	Key    string // empty when an input runs first
	Entry  *Entry // the stored result, when cached
	// Local says Entry's files are in the local store, verified (a remote
	// result is fetched when used).
	Local bool
	// Forced says a flag makes the stage run whatever is stored (Reason says
	// which).
	Forced bool
}

// Plan decides, without running anything, which stages are cached and which
// must run, and why.
func (r *Runner) Plan() ([]*PlanItem, error) {
	if err := r.checkFlags(); err != nil {
		return nil, err
	}
	if err := r.store.Check(); err != nil {
		return nil, err
	}
	// The last run explains changes and names the folders of dropped stages:
	// only a run.json that is shrink's own counts.
	if prev, err := ReadManifest(r.opt.RunDir); err == nil && prev.Validate() == nil {
		r.prev = prev
	}
	digests := map[string]string{}
	forcedSet := map[string]bool{}
	var items []*PlanItem
	for _, s := range r.recipe.Stages {
		it := &PlanItem{Stage: s, Folder: Folder(s.ID), Status: "run"}
		items = append(items, it)
		forced, why := r.forced(s, forcedSet)
		forcedSet[s.ID], it.Forced = forced, forced
		if pending := firstMissing(s.Deps(), digests); pending != "" {
			it.Reason = fmt.Sprintf("input %s runs first", pending)
			if forced {
				it.Reason = why
			}
			continue
		}
		doc, err := r.keyDoc(s, digests)
		if err != nil {
			return nil, err
		}
		it.Key = doc.Key()
		entry, local, lookErr := r.store.peek(it.Key) // a remote result is fetched when used
		switch {
		case forced:
			it.Reason = why
		case lookErr == nil:
			if bad := r.folderProblem(s, it.Folder, entry); bad != "" {
				it.Reason = bad
				break
			}
			it.Status, it.Entry, it.Local = "cached", entry, local
			digests[s.ID] = entry.Checkpoint
			continue
		case errors.Is(lookErr, fs.ErrNotExist):
			it.Reason = r.whyNew(s, doc)
		default:
			var ce *CorruptError
			if errors.As(lookErr, &ce) {
				it.Reason = "checkpoint " + filepath.ToSlash(filepath.Join(it.Folder, ce.Error()))
			} else {
				it.Reason = "stored result unusable: " + lookErr.Error()
			}
		}
	}
	for _, it := range items {
		if it.Status == "run" && it.Key != "" && !it.Forced {
			if at := r.resumePoint(it.Key); at != "" {
				it.Reason += "; " + at
			}
		}
	}
	return items, nil
}

// resumePoint says where an interrupted stage with this key will resume: the
// training state its last run saved after each epoch (verified, as the stage
// will), or "" when there is none.
func (r *Runner) resumePoint(key string) string {
	dir := filepath.Join(r.opt.RunDir, ".shrink", "state", key)
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	var saved []string
	for _, p := range files {
		f, err := checkpoint.ReadFile(p)
		if err != nil || checkpoint.CheckSeal(f) != nil || f.Metadata["epoch"] == "" {
			continue // not training state (the lottery's rewind point), or unusable
		}
		saved = append(saved, strings.TrimSuffix(filepath.Base(p), ".safetensors")+" "+f.Metadata["epoch"])
	}
	switch {
	case len(saved) == 0:
		return ""
	case len(saved) == 1:
		_, epoch, _ := strings.Cut(saved[0], " ")
		return "will resume after epoch " + epoch + " (its interrupted run saved it)"
	}
	return "will resume from its interrupted run's saved training (phase epoch: " + strings.Join(saved, ", ") + ")"
}

func firstMissing(ids []string, have map[string]string) string {
	for _, id := range ids {
		if have[id] == "" {
			return id
		}
	}
	return ""
}

// forced says whether flags make a stage run regardless of the store: --force,
// --from naming it, or --from naming a stage it depends on (forcedSet holds the
// stages forced so far, in run order).
func (r *Runner) forced(s *pipeline.Stage, forcedSet map[string]bool) (bool, string) {
	if r.opt.Only != "" && s.ID != r.opt.Only {
		return false, "" // not run: its stored result stands in, whatever the flags
	}
	switch {
	case r.opt.Force:
		return true, "--force"
	case r.opt.From != "" && (s.ID == r.opt.From || s.Base == r.opt.From):
		return true, "--from " + r.opt.From
	}
	for _, d := range s.Deps() {
		if forcedSet[d] {
			return true, "after --from " + r.opt.From
		}
	}
	return false, ""
}

// folderProblem checks the copy of a stored result in the stage folder. When the
// folder is meant to show this very result (the last run put it there) and its
// checkpoint differs, someone changed it (a flipped byte): the stage runs again.
// A folder showing another key's result is simply replaced.
func (r *Runner) folderProblem(s *pipeline.Stage, folder string, e *Entry) string {
	path := filepath.Join(r.opt.RunDir, folder, "model.safetensors")
	if sameFile(path, r.store.File(e.Key, "model.safetensors")) {
		return "" // the stored file itself (a hard link), which the lookup verified
	}
	got, err := checkpoint.Digest(path)
	if err != nil || got == e.Checkpoint {
		return "" // missing or intact: it is restored from the store if needed
	}
	if r.prev != nil {
		if rec := r.prev.Stage(s.ID); rec != nil && rec.Key == e.Key {
			return fmt.Sprintf("checkpoint %s is corrupt (sha256 differs from the recorded one)", filepath.ToSlash(filepath.Join(folder, "model.safetensors")))
		}
	}
	return ""
}

// whyNew explains a key the store lacks, from the last run's record.
func (r *Runner) whyNew(s *pipeline.Stage, doc KeyDoc) string {
	prev := r.prev
	if prev == nil {
		return "first run"
	}
	rec := prev.Stage(s.ID)
	if rec == nil {
		return "new stage"
	}
	if rec.KeyDoc == nil || rec.Key == "" {
		return "no earlier result"
	}
	if rec.Key == doc.Key() {
		return "checkpoint missing from the store"
	}
	if d := doc.Diff(*rec.KeyDoc); len(d) > 0 {
		return "changed: " + strings.Join(d, ", ")
	}
	return "key changed"
}

// FlagError is a flag value the runner cannot use (a --from or --only that
// names no stage, a --cache-dir it cannot open): bad usage, found before
// anything runs or is written.
type FlagError struct{ Flag, Value, Why string }

func (e *FlagError) Error() string {
	if e.Flag == "" {
		return e.Why // the message names the flag itself
	}
	return fmt.Sprintf("--%s %s: %s", e.Flag, e.Value, e.Why)
}

func (r *Runner) checkFlags() error {
	noStage := "no such stage (stages: " + strings.Join(r.recipe.StageIDs(), ", ") + ")"
	if r.opt.Only != "" && r.recipe.Stage(r.opt.Only) == nil {
		return &FlagError{"only", r.opt.Only, noStage}
	}
	if r.opt.From != "" && !slices.ContainsFunc(r.recipe.Stages, func(s *pipeline.Stage) bool { return s.ID == r.opt.From || s.Base == r.opt.From }) {
		return &FlagError{"from", r.opt.From, noStage}
	}
	if b, ok := r.store.Remote.(brokenRemote); ok {
		return &FlagError{Why: b.err.Error()} // OpenRemote's errors name --cache-dir
	}
	return nil
}

// keyDoc gathers a stage's key ingredients; digests holds the input checkpoints'.
func (r *Runner) keyDoc(s *pipeline.Stage, digests map[string]string) (KeyDoc, error) {
	cfg, err := json.Marshal(s.Config)
	if err != nil {
		return KeyDoc{}, err
	}
	doc := KeyDoc{Format: model.Format, Stage: s.ID, Type: s.Type, Config: cfg, Seed: r.recipe.Seed}
	if len(s.Needs) > 0 || len(s.Refs) > 0 {
		doc.Inputs = map[string][]string{}
		for _, n := range s.Needs {
			doc.Inputs["needs"] = append(doc.Inputs["needs"], digests[n])
		}
		for _, ref := range s.Refs {
			doc.Inputs[ref.Path] = append(doc.Inputs[ref.Path], digests[ref.Stage])
		}
	}
	files, err := r.fileDigests(s)
	if err != nil {
		return KeyDoc{}, err
	}
	for key, sum := range files {
		if doc.Inputs == nil {
			doc.Inputs = map[string][]string{}
		}
		doc.Inputs[key] = []string{sum}
	}
	if len(s.Needs) == 0 {
		spec := struct {
			Arch       string `json:"arch"`
			Checkpoint string `json:"checkpoint,omitempty"`
			ONNX       string `json:"onnx,omitempty"`
		}{Arch: r.recipe.Model.JSON()}
		if p := r.recipe.Model.Checkpoint; p != "" {
			if spec.Checkpoint, err = checkpoint.Digest(p); err != nil {
				return KeyDoc{}, fmt.Errorf("model.checkpoint: %w", err)
			}
		}
		if p := r.recipe.Model.ONNX; p != "" {
			// The arch is the imported layer list; the weights are the file's.
			if spec.ONNX, err = onnximport.Digest(p); err != nil {
				return KeyDoc{}, fmt.Errorf("model.onnx: %w", err)
			}
		}
		doc.Model, _ = json.Marshal(spec)
	}
	if d := r.recipe.StageData(s); d != nil {
		fp, err := r.dataOf(s).fingerprint(r)
		if err != nil {
			return KeyDoc{}, err
		}
		doc.Data = fp
		doc.Batching, _ = json.Marshal(struct {
			BatchSize     int  `json:"batch_size"`
			EvalBatchSize int  `json:"eval_batch_size"`
			Shuffle       bool `json:"shuffle"`
		}{d.BatchSize, d.EvalBatchSize, d.Shuffle})
	}
	return doc, nil
}

// dataOf is the data section a stage uses (nil when it has none): the
// recipe's, or its own data key merged over it.
func (r *Runner) dataOf(s *pipeline.Stage) *dataOnce {
	d := r.recipe.StageData(s)
	if d == nil {
		return nil
	}
	key := "data"
	if s.Data != nil {
		key = "stages." + s.Base + ".data"
	}
	id, _ := json.Marshal(d)
	r.dataMu.Lock()
	defer r.dataMu.Unlock()
	if r.datas == nil {
		r.datas = map[string]*dataOnce{}
	}
	o := r.datas[string(id)]
	if o == nil {
		o = &dataOnce{cfg: d, key: key}
		r.datas[string(id)] = o
	}
	return o
}

// fingerprint is the data's fingerprint, computed from the files' digests without
// decoding them, so planning stays fast.
func (o *dataOnce) fingerprint(r *Runner) (string, error) {
	o.fpOnce.Do(func() {
		o.fp, o.fpErr = data.Fingerprint(*o.cfg, r.recipe.Dir, r.recipe.Seed)
		if o.fpErr != nil {
			o.fpErr = config.AsErrors(o.fpErr).Prefix(o.key) // name the recipe key: data.path
		}
	})
	return o.fp, o.fpErr
}

// dataset loads the rows once.
func (o *dataOnce) dataset(r *Runner) (*data.Dataset, error) {
	o.once.Do(func() {
		start := time.Now()
		o.ds, o.err = data.Load(*o.cfg, r.recipe.Dir, r.recipe.Seed)
		if o.err == nil {
			o.err = o.unchangedSincePlanned(r)
		}
		if o.err == nil {
			if err := model.FitsData(r.recipe.Model, o.ds); err != nil {
				o.err = fmt.Errorf("%s: %w", o.key, err)
			}
		}
		if o.err == nil {
			r.opt.Log.Debug().Str("dataset", o.ds.Kind).Int("train", o.ds.Train.N).Int("test", o.ds.Test.N).
				Dur("took", time.Since(start)).Msg("data loaded")
		}
	})
	return o.ds, o.err
}

// unchangedSincePlanned refuses rows that are not the ones the stage keys
// were computed from: the keys hold the fingerprint of the files as they were
// when the run was planned, so a file rewritten meanwhile would otherwise
// store a checkpoint trained on other data under the old data's key.
func (o *dataOnce) unchangedSincePlanned(r *Runner) error {
	fp, err := o.fingerprint(r)
	if err != nil || fp == o.ds.Fingerprint {
		return err
	}
	files := make([]string, len(o.ds.Sources))
	for i, s := range o.ds.Sources {
		files[i] = s.Path
	}
	return fmt.Errorf("%s: the data changed while shrink was running (%s): run again once the files are final", o.key, strings.Join(files, ", "))
}

// Run runs the recipe. It returns the manifest (also in run.json) and
// ErrStageFailed when a stage failed; ctx's cancellation stops stages between
// batches and leaves nothing half-written.
func (r *Runner) Run(ctx context.Context) (*Manifest, error) {
	if err := r.checkFlags(); err != nil {
		return nil, err // before the run folder exists: bad usage writes nothing
	}
	if err := MemoryProblem(r.recipe); err != nil {
		return nil, err
	}
	if err := claimRunDir(r.opt.RunDir); err != nil {
		return nil, err // a folder shrink did not make: nothing is written
	}
	unlock, err := lockDir(r.opt.RunDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	plan, err := r.Plan()
	if err != nil {
		return nil, err
	}
	man := newManifest()
	resolved, err := r.recipe.MarshalYAML()
	if err != nil {
		return nil, err
	}
	man.Recipe = RecipeRecord{Name: r.recipe.Name, SHA256: r.recipe.SHA256, File: r.recipe.File, Git: recipeGit(r.recipe.File),
		Sets: r.opt.Sets, Resolved: r.recipe.Resolved, YAML: string(resolved), Dir: r.recipe.Dir}
	man.Seed = r.recipe.Seed
	man.Started = time.Now().UTC()
	for _, it := range plan {
		rec := &StageRecord{ID: it.Stage.ID, Type: it.Stage.Type, Status: "pending", Folder: it.Folder, Needs: it.Stage.Needs}
		if len(it.Stage.Refs) > 0 {
			rec.Refs = map[string]string{}
			for _, ref := range it.Stage.Refs {
				rec.Refs[ref.Path] = ref.Stage
			}
		}
		if r.opt.Only != "" && it.Stage.ID != r.opt.Only {
			// Not run now: the stored result stands in, or nothing does (an
			// earlier run's failure would be stale next to the new result).
			if e := it.Entry; it.Status == "cached" && e != nil {
				rec.Status, rec.Key, rec.SHA256, rec.Metrics, rec.Seconds, rec.KeyDoc = "cached", it.Key, e.Checkpoint, e.Metrics, e.Seconds, &e.Inputs
			} else {
				rec.Reason = "not run: --only " + r.opt.Only
			}
		}
		man.Stages = append(man.Stages, rec)
	}
	w := &manifestWriter{path: filepath.Join(r.opt.RunDir, "run.json"), m: man}
	if err := w.update(nil); err != nil {
		return nil, err
	}
	ex := &execution{r: r, w: w, plan: plan, done: map[string]chan struct{}{}, digests: map[string]string{}, keys: map[string]string{}, failed: map[string]string{}}
	ex.run(ctx)
	r.removeDroppedStages(plan)
	status := "ok"
	switch {
	case ctx.Err() != nil:
		status = "interrupted"
	case len(ex.failed) > 0:
		status = "failed"
	}
	w.update(func(m *Manifest) { m.Status, m.Finished = status, time.Now().UTC() })
	if status != "ok" {
		return man, ErrStageFailed
	}
	return man, nil
}

// execution is one Run's shared state.
type execution struct {
	r    *Runner
	w    *manifestWriter
	plan []*PlanItem

	mu      sync.Mutex
	done    map[string]chan struct{}
	digests map[string]string // stage -> checkpoint sha256
	keys    map[string]string // stage -> key
	failed  map[string]string // stage -> why (failed or skipped)
	running atomic.Int32      // stages executing now: they share the cores
}

func (ex *execution) run(ctx context.Context) {
	for _, it := range ex.plan {
		ex.done[it.Stage.ID] = make(chan struct{})
	}
	sem := make(chan struct{}, ex.r.opt.Jobs)
	var wg sync.WaitGroup
	for _, it := range ex.plan {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(ex.done[it.Stage.ID])
			for _, d := range it.Stage.Deps() {
				<-ex.done[d]
			}
			if ex.r.opt.Only != "" && it.Stage.ID != ex.r.opt.Only {
				ex.adoptStored(it)
				return
			}
			if why := ex.blocked(it.Stage); why != "" {
				ex.finish(it, &StageRecord{Status: "skipped", Reason: why}, why)
				return
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			ex.stage(ctx, it)
		}()
	}
	wg.Wait()
}

// blocked says why a stage cannot run: an input failed or was skipped (one
// message for the whole cascade: the root cause is named).
func (ex *execution) blocked(s *pipeline.Stage) string {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for _, d := range s.Deps() {
		if why, ok := ex.failed[d]; ok {
			switch {
			case strings.HasPrefix(why, "needs "):
				return why
			case why == "interrupted":
				return "needs " + d + ", which was interrupted"
			}
			return "needs " + d + ", which failed"
		}
	}
	return ""
}

// adoptStored records a stage --only does not run: its stored result stands in,
// and its folder shows it, as run.json will say.
func (ex *execution) adoptStored(it *PlanItem) {
	if it.Entry == nil {
		return
	}
	// Only a local result: a remote one is fetched by the stages that read it,
	// not by every task that merely passes it by.
	if it.Local {
		if err := ex.materialize(it.Folder, it.Key, it.Entry); err != nil {
			ex.r.opt.Log.Warn().Err(err).Str("stage", it.Stage.ID).Msg("could not restore the stage folder from the store")
		}
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.digests[it.Stage.ID] = it.Entry.Checkpoint
	ex.keys[it.Stage.ID] = it.Key
}

// stored is the verified stored result for key, or nil: the plan's own when
// the key is the one planned (Plan checked its files and folder already).
func (ex *execution) stored(it *PlanItem, key string) *Entry {
	if key == it.Key && it.Local {
		return it.Entry
	}
	e, err := ex.r.store.Lookup(key)
	if err != nil || ex.r.folderProblem(it.Stage, it.Folder, e) != "" {
		return nil
	}
	return e
}

// stage runs or restores one stage.
func (ex *execution) stage(ctx context.Context, it *PlanItem) {
	r := ex.r
	s := it.Stage
	log := r.opt.Log.With().Str("stage", s.ID).Str("type", s.Type).Logger()
	if ctx.Err() != nil {
		ex.finish(it, &StageRecord{Status: "skipped", Reason: "interrupted"}, "interrupted")
		return
	}
	ex.mu.Lock()
	digests := make(map[string]string, len(ex.digests))
	for k, v := range ex.digests {
		digests[k] = v
	}
	ex.mu.Unlock()
	if r.opt.Only != "" {
		if missing := firstMissing(s.Deps(), digests); missing != "" {
			ex.finish(it, &StageRecord{Status: "failed", Error: fmt.Sprintf("input %s has no stored result: run it first (shrink run without --only, or --only %s)", missing, missing)}, "failed")
			return
		}
	}
	doc, err := r.keyDoc(s, digests)
	if err != nil {
		ex.finish(it, &StageRecord{Status: "failed", Error: err.Error()}, "failed")
		return
	}
	key := doc.Key()
	if !it.Forced {
		if e := ex.stored(it, key); e != nil {
			if err := ex.materialize(it.Folder, key, e); err != nil {
				ex.finish(it, &StageRecord{Status: "failed", Key: key, Error: err.Error()}, "failed")
				return
			}
			log.Info().Msg("cached")
			ex.finish(it, &StageRecord{Status: "cached", Key: key, SHA256: e.Checkpoint, Metrics: e.Metrics, Seconds: e.Seconds, KeyDoc: &doc}, "")
			return
		}
	}
	why := ex.reason(it, doc)
	log.Info().Str("why", why).Msg("running")
	start := time.Now()
	shareCores(ex.running.Add(1))
	e, err := ex.execute(ctx, it, doc, key, log)
	ex.progressDone(s.ID)
	shareCores(ex.running.Add(-1))
	if err != nil {
		if ctx.Err() != nil {
			why := "run the same command again to resume after the last finished epoch"
			log.Warn().Msg("interrupted: " + why)
			ex.finish(it, &StageRecord{Status: "interrupted", Reason: why, Seconds: time.Since(start).Seconds()}, "interrupted")
			return
		}
		log.Error().Err(err).Msg("stage failed")
		ex.finish(it, &StageRecord{Status: "failed", Error: err.Error(), Seconds: time.Since(start).Seconds()}, "failed")
		return
	}
	log.Info().Float64("seconds", round3(e.Seconds)).Interface("accuracy", e.Metrics["accuracy"]).Msg("done")
	ex.finish(it, &StageRecord{Status: "ran", Reason: why, Key: key, SHA256: e.Checkpoint, Metrics: e.Metrics, Seconds: e.Seconds, KeyDoc: &doc}, "")
}

// reason explains why a stage runs: the flag that forces it, or what changed
// since the run folder's last run.
func (ex *execution) reason(it *PlanItem, doc KeyDoc) string {
	if it.Forced || (it.Key == doc.Key() && it.Reason != "") {
		return it.Reason
	}
	return ex.r.whyNew(it.Stage, doc)
}

// finish records a stage's outcome. failure is "" on success; for a skipped
// stage it is the root cause, which its own dependents inherit.
func (ex *execution) finish(it *PlanItem, rec *StageRecord, failure string) {
	ex.mu.Lock()
	if failure == "" {
		ex.digests[it.Stage.ID] = rec.SHA256
		ex.keys[it.Stage.ID] = rec.Key
	} else {
		ex.failed[it.Stage.ID] = failure
	}
	ex.mu.Unlock()
	if failure != "" {
		// The folder must not show an older result next to a record that says
		// the stage failed (its stored results stay, for a rerun to restore).
		prevKey := ""
		if prev := ex.r.prev; prev != nil {
			if rec := prev.Stage(it.Stage.ID); rec != nil {
				prevKey = rec.Key
			}
		}
		if err := ex.r.clearFolder(it.Folder, prevKey); err != nil {
			ex.r.opt.Log.Warn().Err(err).Str("stage", it.Stage.ID).Msg("left the folder of a stage that did not finish")
		}
	}
	ex.w.update(func(m *Manifest) {
		old := m.Stage(it.Stage.ID)
		rec.ID, rec.Type, rec.Folder, rec.Needs, rec.Refs = old.ID, old.Type, old.Folder, old.Needs, old.Refs
		*old = *rec
	})
}

// execute runs the stage's plugin and publishes its result. A panic (a bug)
// fails this stage alone, its stack in the log: the stages beside it finish,
// run.json records the failure, and the work folder is removed as after any
// failure, so no half-written result is left.
func (ex *execution) execute(ctx context.Context, it *PlanItem, doc KeyDoc, key string, log zerolog.Logger) (e *Entry, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error().Str("panic", fmt.Sprint(p)).Str("stack", string(debug.Stack())).Msg("stage panicked")
			e, err = nil, fmt.Errorf("internal error, a bug in shrink (please report it with the recipe and the log's stack): %v", p)
		}
	}()
	return ex.executeStage(ctx, it, doc, key, log)
}

// executeStage is execute's work.
func (ex *execution) executeStage(ctx context.Context, it *PlanItem, doc KeyDoc, key string, log zerolog.Logger) (*Entry, error) {
	r := ex.r
	s := it.Stage
	typ, ok := r.reg.Get(s.Type)
	if !ok {
		return nil, fmt.Errorf("unknown stage type %q", s.Type)
	}
	cfg, ok := s.Config.(stages.Config)
	if !ok {
		return nil, fmt.Errorf("stage type %q: config %T cannot run", typ.Name, s.Config)
	}
	work, unlock, err := tempDir(filepath.Join(r.opt.CacheDir, "tmp"), Folder(s.ID)+"-")
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer os.RemoveAll(work) // gone after Publish moved it; cleans up after a failure
	var logFile *os.File
	if r.opt.LogOutput != nil {
		if logFile, err = os.Create(filepath.Join(work, "log.jsonl")); err != nil {
			return nil, err
		}
		defer logFile.Close() // on the early returns; closed again harmlessly
		// The file keeps info and above whatever the terminal shows (-q, -v).
		console := &zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: r.opt.LogOutput}, Level: r.opt.Log.GetLevel()}
		file := &zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: logFile}, Level: zerolog.InfoLevel}
		log = zerolog.New(zerolog.MultiLevelWriter(console, file)).Level(min(r.opt.Log.GetLevel(), zerolog.InfoLevel)).
			With().Timestamp().Str("stage", s.ID).Str("type", s.Type).Logger()
	}
	start := time.Now()
	sc, err := ex.context(ctx, it, key, work, log)
	if err != nil {
		return nil, err
	}
	res, err := cfg.Run(sc)
	if logFile != nil {
		logFile.Close() // the stage's lines end with Run; complete before Publish digests it
	}
	if err != nil {
		return nil, err
	}
	if res == nil || (res.Model == nil && res.SameAs == "") {
		return nil, fmt.Errorf("stage produced no model")
	}
	// dense_f32_bytes is the ratio's baseline (the recipe's model, dense F32): the
	// checkpoint carries it, so shrink export reports the ratio metrics.json does.
	denseBytes, _ := export.DenseF32Bytes(r.recipe.Model) // 0: an architecture this build cannot expand
	meta := map[string]string{"stage": s.ID, "recipe_sha256": r.recipe.SHA256, "key": key,
		"dense_f32_bytes": strconv.FormatInt(denseBytes, 10)}
	ckpt := filepath.Join(work, "model.safetensors")
	if res.SameAs != "" {
		err = ex.copyInput(s, res.SameAs, ckpt)
	} else {
		_, err = res.Model.Save(ckpt, meta)
	}
	if err != nil {
		return nil, err
	}
	for name, m := range res.Extra {
		if _, err := m.Save(filepath.Join(work, name+".safetensors"), meta); err != nil {
			return nil, err
		}
	}
	metrics, err := r.measure(ctx, ckpt, res.Metrics, r.dataOf(s), r.recipe.StageEvalBatch(s))
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start).Seconds()
	metrics["seconds"] = round3(elapsed)
	if err := checkFinite(metrics); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(metrics, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("metrics.json: %w", err)
	}
	if err := checkpoint.WriteBytes(filepath.Join(work, "metrics.json"), append(b, '\n')); err != nil {
		return nil, err
	}
	e := &Entry{Key: key, Stage: s.ID, Type: s.Type, Inputs: doc, Metrics: metrics, Seconds: round3(elapsed)}
	if err := r.store.Publish(work, e, it.Forced); err != nil {
		return nil, err
	}
	if err := ex.materialize(it.Folder, key, e); err != nil {
		return nil, err
	}
	if sc.StateDir != "" {
		os.RemoveAll(sc.StateDir)
	}
	return e, nil
}

// context builds what the stage plugin sees.
func (ex *execution) context(ctx context.Context, it *PlanItem, key, work string, log zerolog.Logger) (*stages.Context, error) {
	r := ex.r
	s := it.Stage
	src := stages.Stream(r.recipe.Seed, "stage:"+s.ID)
	sc := &stages.Context{
		Context: ctx, ID: s.ID, Log: log, Source: src, Seed: r.recipe.Seed,
		Spec: r.recipe.Model, Stage: s, Dir: work,
		StateDir:     filepath.Join(r.opt.RunDir, ".shrink", "state", key),
		Inputs:       map[string]*model.Model{},
		InputMetrics: map[string]map[string]any{},
		InputDigests: map[string]string{},
		CacheDir:     filepath.Join(r.opt.CacheDir, "derived"),
		Refs:         map[string]string{},
		LoadCheckpoint: func(path string) (*model.Model, error) {
			return stages.LoadFile("", r.recipe.Path(path), &r.recipe.Model)
		},
	}
	sc.Rand = rand.New(src)
	files, err := r.fileDigests(s)
	if err != nil {
		return nil, err
	}
	sc.FileDigests = files
	if d := r.dataOf(s); d != nil {
		sc.Data = func() (*data.Dataset, error) { return d.dataset(r) }
		sc.DataConfig = d.cfg
		fp, err := d.fingerprint(r)
		if err != nil {
			return nil, err
		}
		sc.DataFingerprint = fp
	}
	if r.opt.Progress != nil {
		sc.Progress = r.opt.Progress(s.ID) // parallel stages report to their own sinks
	}
	ex.mu.Lock()
	keys := make(map[string]string, len(ex.keys))
	for k, v := range ex.keys {
		keys[k] = v
	}
	ex.mu.Unlock()
	load := func(id string) error {
		if _, ok := sc.Inputs[id]; ok {
			return nil
		}
		e, err := r.store.Lookup(keys[id])
		if err != nil {
			return fmt.Errorf("input %s: %w", id, err)
		}
		m, err := model.Load(r.store.File(keys[id], "model.safetensors"), &r.recipe.Model)
		if err != nil {
			return fmt.Errorf("input %s: %w", id, err)
		}
		sc.Inputs[id] = m
		sc.InputMetrics[id] = e.Metrics
		sc.InputDigests[id] = e.Checkpoint
		return nil
	}
	for _, n := range s.Needs {
		if err := load(n); err != nil {
			return nil, err
		}
	}
	if len(s.Needs) == 1 {
		sc.Input = sc.Inputs[s.Needs[0]]
	}
	for _, ref := range s.Refs {
		if err := load(ref.Stage); err != nil {
			return nil, err
		}
		sc.Refs[ref.Path] = ref.Stage
	}
	return sc, nil
}

// materialize makes <run-dir>/<folder>/ show a stored result: every stored file
// linked (or copied) in atomically, stale files from an earlier result removed.
func (ex *execution) materialize(folder, key string, e *Entry) error {
	dir := filepath.Join(ex.r.opt.RunDir, folder)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	keep := map[string]bool{}
	for rel := range e.Files {
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		keep[filepath.Clean(dst)] = true
		src := ex.r.store.File(key, rel)
		if sameFile(dst, src) {
			continue // already the stored file, verified by the lookup
		}
		if got, err := checkpoint.Digest(dst); err == nil && got == e.Files[rel] {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := linkOrCopy(src, dst); err != nil {
			return err
		}
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p)
		case !keep[filepath.Clean(p)]:
			return os.Remove(p)
		}
		return nil
	})
	// Folders an earlier result had and this one lacks (a lottery's round-03/
	// after rounds went down), deepest first; os.Remove leaves non-empty ones.
	for i := len(dirs) - 1; i > 0; i-- {
		os.Remove(dirs[i])
	}
	return err
}

// removeDroppedStages deletes the folders of stages the last run had and this
// recipe no longer has, so the run folder shows this recipe's stages only (their
// results stay in the store). Only what shrink provably wrote goes (see
// clearFolder), from folders a validated run.json names.
func (r *Runner) removeDroppedStages(plan []*PlanItem) {
	if r.prev == nil {
		return
	}
	current := map[string]bool{}
	for _, it := range plan {
		current[it.Folder] = true
	}
	for _, s := range r.prev.Stages {
		if current[s.Folder] {
			continue
		}
		if err := r.clearFolder(s.Folder, s.Key); err != nil {
			r.opt.Log.Warn().Err(err).Str("folder", s.Folder).Msg("left the folder of a stage the recipe dropped")
		}
	}
}

// clearFolder empties a stage folder of the result shrink put there, so it
// never shows an older result than run.json says: the files of the stored
// result its checkpoint names (shrink writes the key into the metadata) or of
// key, each only while it is still that file (the store's hard link, or the
// recorded digest). Anything else stays, and then so does the folder.
func (r *Runner) clearFolder(folder, key string) error {
	dir := filepath.Join(r.opt.RunDir, folder)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	keys := []string{key}
	if f, err := checkpoint.ReadFile(filepath.Join(dir, "model.safetensors")); err == nil {
		keys = append(keys, f.Metadata["key"])
	}
	for _, k := range keys {
		if e, err := r.store.readEntry(k); err == nil {
			if err := removeResult(dir, e, r.store); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("it holds files shrink did not write")
	}
	return nil
}

// removeResult removes from dir the files of a stored result that are still
// the stored files, then the folders left empty.
func removeResult(dir string, e *Entry, st *Store) error {
	var dirs []string
	for rel, sum := range e.Files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if !sameFile(p, st.File(e.Key, rel)) {
			if got, err := checkpoint.Digest(p); err != nil || got != sum {
				continue
			}
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		for d := filepath.Dir(p); d != dir && strings.HasPrefix(d, dir); d = filepath.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) }) // deepest first
	for _, d := range dirs {
		os.Remove(d) // only when empty
	}
	return nil
}

// UseAllCores gives the matrix products of a command outside a run (eval) every
// core, or SHRINK_THREADS of them.
func UseAllCores() { shareCores(1) }

// shareCores splits the cores among the stages running now: a lone stage's
// matrix products use them all, parallel stages one each. Products are
// bit-identical whatever the thread count, so this changes speed only.
// SHRINK_THREADS fixes it.
func shareCores(running int32) {
	if s := os.Getenv("SHRINK_THREADS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			gemm.SetThreads(n)
			return
		}
	}
	gemm.SetThreads(max(1, runtime.NumCPU()/max(int(running), 1)))
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// sameFile says whether two paths are one file (a run folder's hard link to
// the store), so a verified digest of one holds for the other.
func sameFile(a, b string) bool {
	ia, err := os.Stat(a)
	if err != nil {
		return false
	}
	ib, err := os.Stat(b)
	return err == nil && os.SameFile(ia, ib)
}
