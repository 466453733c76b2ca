"""The MNIST-family test and training sets as shrink reads them (models-v1.md, section 2):
IDX .gz files, pixel / 255, then (x - mean) / std, reshaped row-major to the model's input."""
import glob
import gzip
import os
import struct

import numpy as np
import torch

NORMALIZE = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def default_dir(dataset):
    """Where shrink finds the files when data.path is empty."""
    if dataset == "fashion-mnist":
        return os.environ.get("SHRINK_FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist"
    if os.environ.get("SHRINK_MNIST_DIR"):
        return os.environ["SHRINK_MNIST_DIR"]
    # The copy in the GoMNIST Go module, as shrink's data package finds it.
    roots = [os.environ.get("GOMODCACHE"), os.path.join(os.environ.get("GOPATH", ""), "pkg", "mod"),
             os.path.expanduser("~/go/pkg/mod")]
    for root in filter(None, roots):
        hits = sorted(glob.glob(os.path.join(root, "github.com", "petar", "!go!m!n!i!s!t@*", "data")))
        if hits:
            return hits[-1]
    raise FileNotFoundError("MNIST: no folder found; set SHRINK_MNIST_DIR or pass --data-dir")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: not an IDX file of unsigned bytes" % path)
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(folder, name):
    """NAME.gz, or its uncompressed copy."""
    for p in (os.path.join(folder, name), os.path.join(folder, name[:-3])):
        if os.path.exists(p):
            return p
    raise FileNotFoundError("%s: no %s (or %s) here" % (folder, name, name[:-3]))


def load(dataset, split, input_shape, folder=None, normalize=None):
    """(x float32 [N, *input_shape], y int64 [N]) for split train or test."""
    folder = folder or default_dir(dataset)
    x, y = (read_idx(_find(folder, f)) for f in FILES[split])
    mean, std = normalize or NORMALIZE[dataset]
    if int(np.prod(input_shape)) != 28 * 28:
        raise ValueError("model input %s does not hold the 784 pixels of a 28x28 image" % (input_shape,))
    # float32 throughout, the order of operations shrink uses: (x / 255 - mean) / std.
    xf = (x.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)
    return (torch.from_numpy(xf.reshape([len(x)] + list(input_shape))),
            torch.from_numpy(y.astype(np.int64)))
