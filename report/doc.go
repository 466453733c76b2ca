// Package report writes a run folder's report: report.md, with every stage
// side by side and the recipe and seed that produced them, and PNG plots made
// with gonum.org/v1/plot (the compression frontier, accuracy against
// compressed size; and per-layer sparsity, bits and rank for every stage).
//
//	res, err := report.Write("runs/lenet300-compress")
//	// res.Files: report.md, frontier.png, layers-sparsity.png, ...
package report
