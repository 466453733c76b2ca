// Package bench holds shrink's speed benchmarks, run with `go test -bench` (see
// docs/PERFORMANCE.md): a training step, an MNIST epoch, forward passes at batch 1
// and 1000 for LeNet-300-100 and LeNet-5, and a no-op rerun of the quickstart.
// bench/torch_bench.py times the same work in PyTorch, and `go run ./bench/compare`
// runs both in one session and prints the shrink/PyTorch ratios.
package bench
