#!/usr/bin/python3
"""make_nf4.py: reference vectors for shrink's quant/nf4, computed by the bitsandbytes
NF4 algorithm re-written in numpy (bitsandbytes itself cannot be installed here).

Run from the repository root with /usr/bin/python3 (numpy + PyTorch 1.13):

    /usr/bin/python3 testdata/nf4/make_nf4.py

It writes testdata/nf4/vectors.safetensors (via testdata/safetensors/stlite.py).

What it follows, in bitsandbytes (bitsandbytes-foundation/bitsandbytes, recent main-branch
sources read through a code index; file names given so each step can be checked):

* bitsandbytes/functional.py  quantize_4bit: the kernel gives (packed, absmax); with
  compress_statistics, offset = absmax.mean(); quantize_blockwise(absmax - offset,
  blocksize=256) with the default code create_dynamic_map(); QuantState.as_dict(packed=True)
  (the JSON of pack_dict_to_tensor = json.dumps of the non-tensor items, in that order).
* bitsandbytes/functional.py  dequantize_4bit / dequantize_blockwise: absmax =
  code[q] * nested_absmax (float32), then += offset; weight = nf4[nibble] * absmax.
* bitsandbytes/functional.py  get_4bit_type("nf4"): the 16 float32 NF4 values.
* bitsandbytes/functional.py  create_dynamic_map(signed=True, max_exponent_bits=7,
  total_bits=8), with torch.linspace emulated (see linspace_f32 below).
* csrc/kernels.cu (csrc/cuda/blockwise_quantization.cu in newer trees)
  kQuantizeBlockwise<T, 64, 2, 0, NF4>: absmax = max |x| of the block; each value is
  multiplied by the float32 reciprocal 1.0f / absmax; dQuantizeNF4 (a decision tree on 15
  float literals, "x > t" going up); two codes per byte, element 2i in the high nibble.
* the same kernel with General8bit: dQuantize<0> (binary search in the 256-entry code and a
  float32 midpoint test) -- ported literally in dquantize8 below.
* backends/cuda/ops.py quantize_4bit: out is uint8 [(n + 1) // 2, 1], absmax float32 [blocks].
* nn/modules.py Linear4bit._save_to_state_dict: tensor names "weight" + "." + key.

Where the issue (shrink#19, authoritative for shrink) fixes what bitsandbytes leaves
undefined or gets wrong, this script follows the issue, marked "ISSUE" below:

* an all-zero block stores absmax 0 and code 7 (the code of 0.0). bitsandbytes' CUDA kernel
  computes 1.0f/0 = inf, 0 * inf = NaN, and NaN fails every test of dQuantizeNF4, giving
  code 0 (-1.0): the same zero on dequantization without double quantization, but
  -absmax' (not 0) after it, since the block's dequantized absmax is no longer 0.
  The same rule is applied to an all-zero block of the 8-bit absmax quantization (code 127,
  the map's 0.0).
* an odd element count pads the last low nibble with 7 (the kernel pads with 0.0, which is 7
  whenever the block is not all-zero).
* nested_offset, "the float32 mean of the absmax values": the float64 sum of the absmax
  values in index order, divided by their count in float64, rounded once to float32.
  torch's absmax.mean() sums in float32 in an order that depends on the device and the CPU's
  vector width, so it is not reproducible bit for bit; the script reports how often torch
  1.13's mean differs from this one on the fixtures.

Everything else is float32 arithmetic in the kernels' order, done with numpy float32 scalars
(one rounding per operation, no fused multiply-add).
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "safetensors"))
import stlite  # noqa: E402

f32 = np.float32
f64 = np.float64

# get_4bit_type("nf4") in bitsandbytes/functional.py (also nf4_dequantization_lut in
# csrc/kernels.cu): float32 constants, copied exactly.
NF4 = np.array([
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
], dtype=np.float32)

# The float literals of dQuantizeNF4 (csrc/kernels.cu), as the CUDA compiler reads them:
# each decimal rounded to the nearest float32. Sorted ascending: code k is chosen when
# T[k-1] < x <= T[k].
NF4_THRESHOLDS = np.array([float(s) for s in [
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906",
    "-0.33967943489551544", "-0.23460740596055984", "-0.13791173323988914",
    "-0.045525018125772476", "0.03979014977812767", "0.1202552504837513",
    "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
]], dtype=np.float32)


def check_thresholds():
    """The literals are the midpoints of adjacent NF4 values (exact in float64, rounded to
    float32), which is what "the 15 midpoints" means in the issue."""
    for k in range(15):
        mid = f32((f64(NF4[k]) + f64(NF4[k + 1])) / 2)
        assert mid == NF4_THRESHOLDS[k], (k, mid, NF4_THRESHOLDS[k])


def dquantize_nf4(x):
    """dQuantizeNF4 of csrc/kernels.cu, the decision tree as written (NaN fails every test
    and ends at 0b0000)."""
    t = NF4_THRESHOLDS
    if x > t[7]:
        if x > t[11]:
            if x > t[13]:
                return 0b1111 if x > t[14] else 0b1110
            return 0b1101 if x > t[12] else 0b1100
        if x > t[9]:
            return 0b1011 if x > t[10] else 0b1010
        return 0b1001 if x > t[8] else 0b1000
    if x > t[3]:
        if x > t[5]:
            return 0b0111 if x > t[6] else 0b0110
        return 0b0101 if x > t[4] else 0b0100
    if x > t[1]:
        return 0b0011 if x > t[2] else 0b0010
    return 0b0001 if x > t[0] else 0b0000


def linspace_f32(start, end, steps):
    """torch.linspace(start, end, steps) in float32, as the map bitsandbytes users get was
    built: step = (end - start) / (steps - 1); the first half start + step*i, the second
    half end - step*(steps - 1 - i), each a fused multiply-add (one rounding). This is
    PyTorch's linspace kernel (RangeFactories: the "halfway" formula) compiled with FMA
    contraction. It reproduces, value for value, the published 256-entry map that other
    projects copied out of bitsandbytes (checked below); PyTorch 1.13's CPU linspace on this
    machine gives a map that differs in 42 entries, so torch.linspace is not called."""
    s, e = f32(start), f32(end)
    step = f32((e - s) / f32(steps - 1))
    half = steps // 2
    out = np.empty(steps, dtype=np.float32)
    for i in range(steps):
        # float64 holds step*i and the sum exactly here (24-bit step, i < 2^7, |start|,
        # |end| <= 1), so one rounding to float32 is the fused multiply-add.
        if i < half:
            out[i] = f32(f64(s) + f64(step) * i)
        else:
            out[i] = f32(f64(e) - f64(step) * (steps - 1 - i))
    return out


def create_dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) of
    bitsandbytes/functional.py: for i in 0..6, the means of linspace(0.1, 1, 2^i + 1)
    scaled by +-10^(i-6) (a Python float times a float32 tensor: the scalar rounded to
    float32, then a float32 product), plus 0 and 1.0, sorted."""
    data = []
    for i in range(7):
        b = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = (b[:-1] + b[1:]) / f32(2.0)
        scale = 10.0 ** (-6 + i)
        data += [f32(f32(scale) * m) for m in means]
        data += [f32(f32(-scale) * m) for m in means]
    data += [f32(0.0), f32(1.0)]
    data.sort()
    out = np.array(data, dtype=np.float32)
    assert out.shape == (256,)
    return out


DYNAMIC = create_dynamic_map()

# Spot values of the published map (bitsandbytes' create_dynamic_map() as copied into
# third-party code, e.g. candle's bitsandbytes INT8_CODE table): entries 0, 1, 20, 64, 127,
# 128, 254, 255. Index 1 and 20 are where PyTorch 1.13's linspace differs.
PUBLISHED = {0: -0.992968738079071, 1: -0.9789062738418579, 20: -0.7117187976837158,
             64: -0.09859374910593033, 126: -5.500000384017767e-07, 127: 0.0,
             254: 0.992968738079071, 255: 1.0}


# sha256 of the whole published table as little-endian float32 (256 values).
PUBLISHED_SHA256 = "e732639a65f497b4ad684bb166a4467708255edd5207757de8b8f0c7e1fda89c"


def check_dynamic_map():
    for i, v in PUBLISHED.items():
        assert DYNAMIC[i] == f32(v), (i, DYNAMIC[i], v)
    assert hashlib.sha256(DYNAMIC.astype("<f4").tobytes()).hexdigest() == PUBLISHED_SHA256
    assert np.all(np.diff(DYNAMIC) > 0)
    assert DYNAMIC[127] == 0 and DYNAMIC[255] == 1
    assert np.all(DYNAMIC[128:255] == -DYNAMIC[126::-1])


def dquantize8(code, x):
    """dQuantize<0> of csrc/kernels.cu, ported line by line: a 7-step binary search from
    pivot 127, then the float32 midpoint of the final pivot and its neighbour decides.
    (An exact tie returns the pivot, the element the search ended on.)"""
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = f32(-1.0), f32(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot = pivot
            lower = val
            pivot += i
        else:
            upper_pivot = pivot
            upper = val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        midpoint = f32(f32(upper + val) * f32(0.5))
        return upper_pivot if x > midpoint else pivot
    midpoint = f32(f32(lower + val) * f32(0.5))
    return lower_pivot if x < midpoint else pivot


def blocks(n, bs):
    return [(b, min(b + bs, n)) for b in range(0, n, bs)]


def quantize_nf4(w, bs):
    """kQuantizeBlockwise<float, bs, ., 0, NF4>: returns packed uint8 [(n+1)//2, 1] and
    absmax float32 [blocks]."""
    n = w.size
    codes = np.zeros(n + (n & 1), dtype=np.uint8)
    codes[n:] = 7  # ISSUE: the pad nibble is 7
    absmax = np.zeros(-(-n // bs), dtype=np.float32)
    for k, (a, b) in enumerate(blocks(n, bs)):
        m = f32(0.0)
        for x in w[a:b]:
            m = max(m, abs(x))  # fmaxf(local, fabsf(x)): no NaN here
        absmax[k] = m
        if m == 0:
            codes[a:b] = 7  # ISSUE: an all-zero block stores code 7
            continue
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            inv = f32(f32(1.0) / m)
            for j in range(a, b):
                codes[j] = dquantize_nf4(f32(w[j] * inv))
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed.reshape(-1, 1).astype(np.uint8), absmax


def quantize_blockwise8(v, code, bs):
    """kQuantizeBlockwise<float, bs, ., 0, General8bit> (quantize_blockwise)."""
    n = v.size
    q = np.zeros(n, dtype=np.uint8)
    absmax = np.zeros(-(-n // bs), dtype=np.float32)
    zero_code = int(np.nonzero(code == 0)[0][0])
    for k, (a, b) in enumerate(blocks(n, bs)):
        m = f32(0.0)
        for x in v[a:b]:
            m = max(m, abs(x))
        absmax[k] = m
        if m == 0:
            q[a:b] = zero_code  # ISSUE: all-zero block, the code of 0.0 as for NF4
            continue
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            inv = f32(f32(1.0) / m)
            for j in range(a, b):
                q[j] = dquantize8(code, f32(v[j] * inv))
    return q, absmax


def mean_offset(absmax):
    """ISSUE: the float32 mean, defined as float32(float64 sum in index order / count)."""
    s = 0.0
    for x in absmax:
        s += float(x)
    return f32(s / len(absmax))


def dequant_absmax_nested(q, nabs, offset, code, bs):
    out = np.empty(q.size, dtype=np.float32)
    for j in range(q.size):
        out[j] = f32(f32(code[q[j]] * nabs[j // bs]) + offset)
    return out


def dequantize_nf4(packed, absmax, n, bs):
    flat = packed.reshape(-1)
    codes = np.empty(flat.size * 2, dtype=np.uint8)
    codes[0::2] = flat >> 4
    codes[1::2] = flat & 15
    out = np.empty(n, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(n):
            out[j] = f32(NF4[codes[j]] * absmax[j // bs])
    return out


def quant_state_json(shape, bs, nested=None):
    """pack_dict_to_tensor(non_tensor_dict) of QuantState.as_dict(packed=True)."""
    d = {"quant_type": "nf4", "blocksize": bs, "dtype": "float32", "shape": list(shape)}
    if nested is not None:
        d.update({"nested_blocksize": nested[0], "nested_dtype": "float32",
                  "nested_offset": float(nested[1])})  # self.offset.item()
    return np.frombuffer(json.dumps(d).encode("utf-8"), dtype=np.uint8).copy()


NESTED_BS = 256
torch_mean_differs = []


def add_case(out, name, w, shape, bs=64):
    """Both layouts of one weight: NAME.nf4.* (absmax F32) and NAME.dq.* (double quant)."""
    w = np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
    n = w.size
    out[name + ".input"] = w.reshape(shape)
    packed, absmax = quantize_nf4(w, bs)
    p = name + ".nf4.weight"
    out[p] = packed
    out[p + ".absmax"] = absmax
    out[p + ".quant_map"] = NF4.copy()
    out[p + ".quant_state.bitsandbytes__nf4"] = quant_state_json(shape, bs)
    out[name + ".nf4.dequant"] = dequantize_nf4(packed, absmax, n, bs).reshape(shape)

    offset = mean_offset(absmax)
    tmean = torch.from_numpy(absmax).mean().item()
    if f32(tmean) != offset:
        torch_mean_differs.append(name)
    centred = (absmax - offset).astype(np.float32)  # float32 subtraction
    q, nabs = quantize_blockwise8(centred, DYNAMIC, NESTED_BS)
    p = name + ".dq.weight"
    out[p] = packed
    out[p + ".absmax"] = q
    out[p + ".quant_map"] = NF4.copy()
    out[p + ".nested_absmax"] = nabs
    out[p + ".nested_quant_map"] = DYNAMIC.copy()
    out[p + ".quant_state.bitsandbytes__nf4"] = quant_state_json(shape, bs, (NESTED_BS, offset))
    dq_absmax = dequant_absmax_nested(q, nabs, offset, DYNAMIC, NESTED_BS)
    out[name + ".dq.absmax_dequant"] = dq_absmax
    out[name + ".dq.dequant"] = dequantize_nf4(packed, dq_absmax, n, bs).reshape(shape)


def tie_weights():
    """Every NF4 threshold hit exactly (block absmax 1 and 2: reciprocals 1 and 0.5 are
    exact), with the float32 neighbours on either side."""
    vals = []
    for t in NF4_THRESHOLDS:
        vals += [t, np.nextafter(t, f32(-2)), np.nextafter(t, f32(2))]
    vals += list(NF4)  # the code values themselves
    a = np.array(vals, dtype=np.float32)
    assert len(a) < 64
    pad = np.zeros(63 - len(a), dtype=np.float32)
    b1 = np.concatenate([[f32(1.0)], a, pad])              # absmax 1.0
    b2 = np.concatenate([[f32(-2.0)], a * f32(2.0), pad])  # absmax 2.0: x * 0.5 == a exactly
    return np.concatenate([b1, b2]).astype(np.float32)


def nested_tie_weights():
    """Block maxima m_k = 0.5 + d_k in symmetric pairs (mean exactly 0.5) with max |d| = 0.5
    (one block of max 1.0, its partner all-zero), so the nested reciprocal is 2 and
    2*d_k lands exactly on midpoints of the dynamic map where 0.5 + d_k is representable."""
    half = f32(0.5)
    mids = []
    for j in range(255):
        m = f32(f32(DYNAMIC[j] + DYNAMIC[j + 1]) * half)  # dQuantize's midpoint
        d = f32(m * half)
        exact = f64(half + d) == 0.5 + f64(d) and f64(half - d) == 0.5 - f64(d)
        if exact and f32(d * f32(2.0)) == m and abs(d) < 0.5:
            mids.append(d)
    sel = [mids[i] for i in np.linspace(0, len(mids) - 1, 24).astype(int)]
    ds = [f32(0.5)] + sel
    maxima = []
    for d in ds:
        maxima += [f32(0.5) + d, f32(0.5) - d]
    rng = np.random.default_rng(7)
    w = []
    for m in maxima:
        blk = np.zeros(64, dtype=np.float32)
        if m > 0:
            blk = (rng.uniform(-1, 1, 64) * m).astype(np.float32)
            blk[rng.integers(64)] = -m if rng.integers(2) else m
        w.append(blk)
    return np.concatenate(w)


def main():
    check_thresholds()
    check_dynamic_map()
    rng = np.random.default_rng(19)
    out = {}
    out["maps.nf4"] = NF4.copy()
    out["maps.nf4_thresholds"] = NF4_THRESHOLDS.copy()
    out["maps.dynamic"] = DYNAMIC.copy()

    add_case(out, "tiny3", np.array([0.5, -1.25, 0.0], dtype=np.float32), [3])
    add_case(out, "one", np.array([-3.0], dtype=np.float32), [1, 1])
    add_case(out, "odd63", rng.standard_normal(63).astype(np.float32), [7, 9])
    w = rng.standard_normal(200).astype(np.float32)
    w[64:128] = 0
    w[5] = 0
    w[130] = -0.0
    add_case(out, "zero_block", w, [4, 50])
    w = rng.laplace(size=201).astype(np.float32)
    w[192:] = 0
    add_case(out, "zero_tail", w, [3, 67])
    add_case(out, "allzero", np.zeros(130, dtype=np.float32), [10, 13])
    t = tie_weights()
    add_case(out, "ties", t, [t.size])
    w = nested_tie_weights()
    add_case(out, "nested_ties", w, [w.size // 64, 64])
    # huge and tiny magnitudes: float32 max (reciprocal subnormal), subnormal maxima
    # (reciprocal overflows to inf: zeros in such a block become NaN and code 0), and the
    # smallest normal.
    big = np.array([3.4028235e38, -3.0e38, 1.0e38, 5.0e37, 0.0, -1.0, 2.0e-38, 7.0e37], np.float32)
    sub_finite = np.array([1e-45, -2.8e-45, 0.0, 1e-40, -1e-42, 3e-39, 0.0, -1e-39], np.float32)
    sub_inf = np.array([1e-45, -2.8e-45, 0.0, 1e-40, -1e-42, 7e-41, 0.0, -5e-41], np.float32)
    nrm = np.array([1.1754944e-38, -5e-39, 2e-38, 0.0, 1e-45, -1.1754944e-38, 3e-38, 0.0], np.float32)
    with np.errstate(over="ignore", divide="ignore"):
        assert np.isinf(f32(1) / f32(1e-40)) and np.isfinite(f32(1) / f32(3e-39))
    tail = rng.standard_normal(37).astype(np.float32) * f32(1e30)
    w = np.concatenate([np.tile(b, 8) for b in (big, sub_finite, sub_inf, nrm)] + [tail])
    add_case(out, "extremes", w, [w.size])
    add_case(out, "rand_33x97", (rng.standard_normal((33, 97)) * 0.05).astype(np.float32), [33, 97])
    w = rng.standard_t(3, size=(130, 129)).astype(np.float32) * f32(0.02)
    add_case(out, "multi_nested_130x129", w, [130, 129])
    add_case(out, "bs128_odd", rng.standard_normal(517).astype(np.float32), [11, 47], bs=128)

    meta = {"generator": "testdata/nf4/make_nf4.py", "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_mean_differs": ",".join(torch_mean_differs)}
    path = os.path.join(HERE, "vectors.safetensors")
    stlite.save(path, out, meta)
    probs = stlite.validate(path)
    assert not probs, probs
    print("wrote", path, os.path.getsize(path), "bytes;", len(out), "tensors")
    print("torch 1.13 absmax.mean() differs from the float64 mean in:", torch_mean_differs or "none")


if __name__ == "__main__":
    main()
