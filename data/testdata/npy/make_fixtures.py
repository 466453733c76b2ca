#!/usr/bin/python3
"""Writes the .npy fixtures of the data package's tests (run from anywhere):

    /usr/bin/python3 data/testdata/npy/make_fixtures.py

Inputs (x_*), labels (y_*) and files shrink must refuse (bad_*) are written with
numpy.save, as a PyTorch user would. The expected values (want_*) are computed
with torch, exactly as torchvision's ToTensor and Normalize do (float32 division
by 255, then tensor.sub_(mean).div_(std) with one mean and std per channel), so the
Go tests compare shrink's conversion with PyTorch's bit for bit. Seeded: rerunning
writes the same bytes.
"""
import io
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240515)


def save(name, a, **kw):
    np.save(os.path.join(HERE, name), a, **kw)


def write(name, b):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(b)


def raw(a, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def normalize(x, mean, std, channel_dim):
    """torchvision.transforms.Normalize on a batch, channel at channel_dim."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.dtype == torch.uint8:
        t = t.float().div(255)  # ToTensor
    shape = [1] * t.dim()
    shape[channel_dim] = -1
    m = torch.tensor(mean, dtype=torch.float32).view(shape)
    s = torch.tensor(std, dtype=torch.float32).view(shape)
    return t.sub(m).div(s).numpy()


# Inputs of every supported dtype and shape.
f4_2d = rng.normal(size=(5, 4)).astype(np.float32)
f4_3d = rng.normal(size=(4, 3, 5)).astype(np.float32)        # [N, T, F]
f4_4d = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)     # [N, C, H, W]
u1_2d = rng.integers(0, 256, size=(5, 4), dtype=np.uint8)
u1_3d = rng.integers(0, 256, size=(4, 3, 5), dtype=np.uint8)
u1_4d = rng.integers(0, 256, size=(4, 3, 2, 2), dtype=np.uint8)
u1_4d[0, 0, 0, 0], u1_4d[0, 0, 0, 1] = 0, 255
tok = rng.integers(0, 1000, size=(4, 6))
tok[0, 0], tok[3, 5] = 0, (1 << 24) - 1                      # the smallest and largest id

save("x_f4_2d.npy", f4_2d)
save("x_f4_3d.npy", f4_3d)
save("x_f4_4d.npy", f4_4d)
save("x_u1_2d.npy", u1_2d)
save("x_u1_3d.npy", u1_3d)
save("x_u1_4d.npy", u1_4d)
save("x_i8_tok.npy", tok.astype(np.int64))
save("x_i4_tok.npy", tok.astype(np.int32))
# The same values stored other ways numpy can write them.
save("x_f4_2d_be.npy", f4_2d.astype(">f4"))
save("x_f4_4d_fortran.npy", np.asfortranarray(f4_4d))
save("x_u1_3d_fortran.npy", np.asfortranarray(u1_3d))
save("x_i8_tok_be.npy", tok.astype(">i8"))
write("x_f4_2d_v2.npy", raw(f4_2d, (2, 0)))
write("x_f4_2d_v3.npy", raw(f4_2d, (3, 0)))

# Labels of every supported dtype.
save("y5_i8.npy", np.array([0, 3, 1, 2, 9], dtype=np.int64))
save("y4_i8.npy", np.array([2, 0, 1, 1], dtype=np.int64))
save("y4_i4.npy", np.array([1, 0, 4, 2], dtype=np.int32))
save("y4_u1.npy", np.array([3, 3, 0, 1], dtype=np.uint8))
save("y4_i8_be.npy", np.array([2, 0, 1, 1], dtype=">i8"))

# What PyTorch makes of them.
save("want_u1_4d.npy", normalize(u1_4d, [0.0], [1.0], 1))
save("want_u1_4d_norm.npy", normalize(u1_4d, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], 1))
save("want_u1_3d_norm.npy", normalize(u1_3d, [0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1], 2))
save("want_u1_2d_norm.npy", normalize(u1_2d, [0.1307], [0.3081], 1))
save("want_f4_4d_norm.npy", normalize(f4_4d, [0.5, -0.25, 1.0], [2.0, 0.5, 3.0], 1))
save("want_f4_3d_norm.npy", normalize(f4_3d, [1.0], [0.25, 0.5, 1.0, 2.0, 4.0], 2))
save("want_f4_2d_norm.npy", normalize(f4_2d, [0.1], [0.7], 1))

# A small learnable task for end-to-end runs (testdata/script/npy.txtar): four
# Gaussian blobs in 8 dimensions, as uint8 "images" [N, 1, 4, 2] and int64 labels.
centers = rng.normal(scale=40, size=(4, 8)) + 128
labels = rng.permutation(np.arange(300) % 4)
points = np.clip(centers[labels] + rng.normal(scale=12, size=(300, 8)), 0, 255)
blobs = points.round().astype(np.uint8).reshape(300, 1, 4, 2)
save("blobs_x_train.npy", blobs[:200])
save("blobs_y_train.npy", labels[:200].astype(np.int64))
save("blobs_x_test.npy", blobs[200:])
save("blobs_y_test.npy", labels[200:].astype(np.int64))

# Files shrink refuses, each with its own message.
save("bad_object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
save("bad_structured.npy", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
save("bad_f8.npy", f4_2d.astype(np.float64))
save("bad_f2.npy", f4_2d.astype(np.float16))
save("bad_i2.npy", tok.astype(np.int16))
save("bad_bool.npy", u1_2d > 128)
save("bad_str.npy", np.array(["cat", "dog"]))
save("bad_datetime.npy", np.array(["2024-01-01"], dtype="datetime64[D]"))
save("bad_1d.npy", f4_2d[:, 0].copy())
save("bad_scalar.npy", np.float32(1.5))
save("bad_no_rows.npy", np.zeros((0, 4), dtype=np.float32))
save("bad_empty_rows.npy", np.zeros((3, 0), dtype=np.float32))
save("bad_nan.npy", np.array([[0, 1], [np.nan, 2]], dtype=np.float32))
save("bad_inf.npy", np.array([[0, 1], [2, -np.inf]], dtype=np.float32))
save("bad_tok_big.npy", np.array([[0, 1 << 24]], dtype=np.int64))
save("bad_tok_neg.npy", np.array([[3, -1]], dtype=np.int32))
save("bad_tok_3d.npy", np.zeros((2, 3, 4), dtype=np.int64))
save("bad_y_2d.npy", np.array([[2], [0], [1], [1]], dtype=np.int64))
save("bad_y_f4.npy", np.array([2, 0, 1, 1], dtype=np.float32))
save("bad_y_neg.npy", np.array([2, 0, -1, 1], dtype=np.int64))
save("bad_y_big.npy", np.array([2, 0, 1 << 31, 1], dtype=np.int64))
save("bad_y_3.npy", np.array([2, 0, 1], dtype=np.int64))
good = raw(f4_2d)
write("bad_truncated.npy", good[:-3])
write("bad_trailing.npy", good + b"\0\0")
write("bad_version.npy", b"\x93NUMPY\x04\x00" + good[8:])
write("bad_magic.npy", b"\x93NUMPZ" + good[6:])
write("bad_header.npy", good.replace(b"'shape': (5, 4)", b"'shape': [5, 4"))
buf = io.BytesIO()
np.savez(buf, x=f4_2d)
write("bad_archive.npz", buf.getvalue())
