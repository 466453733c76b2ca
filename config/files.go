package config

// FileRef is a file a stage config reads, other than the recipe's model
// checkpoint: a distillation teacher's checkpoint, say. Path is the key holding
// it ("teacher_checkpoint"); File is the path as written (relative to the recipe).
type FileRef struct {
	Path string
	File string
}

// FileReferrer is implemented by stage configs that read files the recipe names.
// The runner makes each file's sha256 part of the stage's key, so editing the
// file reruns the stage, and hands the digests to the stage.
type FileReferrer interface {
	FileReferences() []FileRef
}

// Warner is implemented by configs that can be valid yet likely not what was
// meant: a prune amount of 80, an integer, prunes 80 weights (torch's rule),
// where 80% was surely meant. Warnings name their keys as errors do; the
// recipe still runs.
type Warner interface {
	Warnings() Errors
}
