// Package data loads the datasets that shrink trains and evaluates on, as described
// by a recipe's data section (Config; docs/DATA.md for users):
//
//   - mnist: the four MNIST IDX files. With data.path empty they are found with no
//     action from the user in the GoMNIST Go module (a dependency of shrink, so
//     building shrink downloads it), or in $SHRINK_MNIST_DIR.
//   - fashion-mnist: the same four files of Fashion-MNIST, from the Debian package
//     dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), data.path or
//     $SHRINK_FASHION_MNIST_DIR.
//   - idx: any four IDX files of unsigned bytes (images and labels), raw or gzip.
//   - npy: NumPy arrays (ParseNPY reads the .npy format): inputs [N, ...] of float32
//     or uint8, or int32/int64 token ids [N, T]; integer labels [N].
//   - synthetic: seeded Gaussian blobs, split 80/20 into train and test.
//
// Images (and uint8 arrays) are normalized exactly as torchvision's ToTensor and
// Normalize do in float32, x = float32(pixel)/255 then (x - mean)/std, per channel,
// so a model evaluated here agrees with a PyTorch model holding the same weights.
// Every row is stored flat, row-major; Split.Shape says what one row is ([1, 28, 28]
// for an MNIST image, [28, 28] in the sequence layout, the sample shape of an npy
// array), and the model decides how it reads it. The recipe seed is the only
// randomness: it draws the synthetic data and the validation subset, each from its
// own PCG stream.
//
// A Dataset's Fingerprint changes whenever the rows it holds change, so stages can
// tell when cached results are stale; Peek reads what the files' headers say of
// the rows (shape, counts) without loading them.
//
// Training iterates with a Batcher, which copies shuffled batches into
// caller-owned buffers without allocating:
//
//	ds, err := data.Load(cfg, recipeDir, seed)
//	if err != nil {
//		return err
//	}
//	b := data.NewBatcher(ds.Train, cfg.BatchSize, cfg.Shuffle)
//	x := make([]float32, cfg.BatchSize*ds.Features)
//	y := make([]int32, cfg.BatchSize)
//	rng := rand.New(rand.NewPCG(seed, epochStream))
//	for epoch := 0; epoch < epochs; epoch++ {
//		b.Epoch(rng)
//		for n, ok := b.Next(x, y); ok; n, ok = b.Next(x, y) {
//			step(x[:n*ds.Features], y[:n])
//		}
//	}
//
// Evaluation walks a split in order without copying, with Split.Batch.
package data
