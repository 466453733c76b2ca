#!/usr/bin/python3
"""Make the per-layer PyTorch fixtures shrink's layer graph is checked against (README.md here
states the contract).

    /usr/bin/python3 testdata/layers/make_layers.py          # writes *.safetensors, presets.json
    /usr/bin/python3 testdata/layers/make_layers.py --check  # also: float32 vs float64 table

Each case is a small model that exercises one layer type or option and ends in `classes` logits;
tools/torchref/shrinkmodel.py builds it from the same model section shrink reads. Every case is
seeded from its own name, so adding a case leaves the others' bytes alone, and running the script
twice writes identical files.
"""
import copy
import json
import os
import sys
import zlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))  # stlite.py
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))  # shrinkmodel.py

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

torch.set_num_threads(1)


def L(type_, name=None, **keys):
    """One layer dict, keys in the order a person would write them."""
    d = {"name": name} if name else {}
    d["type"] = type_
    for k, v in keys.items():
        d["from" if k == "from_" else k] = v
    return d


class Case:
    def __init__(self, name, desc, input, classes, layers=None, preset=None, n=6, eval_batch=4,
                 train=True, scale=1.0, shift=0.0, prep=None, check=None):
        self.name, self.desc = name, desc
        self.section = {"input": input, "classes": classes}
        if preset is not None:
            self.preset = dict(preset, input=input, classes=classes)
            layers = shrinkmodel.expand(self.preset)
        else:
            self.preset = None
        self.section["layers"] = layers
        self.n, self.eval_batch, self.train = n, eval_batch, train
        self.scale, self.shift = scale, shift
        self.prep = prep    # prep(model): set initial values that matter for the case
        self.check = check  # check(model, x): assert the inputs really exercise the case


# --- checks that the data reach the regions a case is about ---------------------------------

def _pre(model, x, type_):
    """The input of the first layer of type_ (eval mode)."""
    i = next(i for i, l in enumerate(model._layer_specs) if l["type"] == type_)
    with torch.no_grad():
        return x if i == 0 else model.eval().trace(x)[i - 1]


def regions(type_, below, above):
    def check(model, x):
        pre = _pre(model, x, type_)
        between = (pre > below) & (pre < above) if below < above else torch.tensor(True)
        assert (pre < below).any() and (pre > above).any() and between.any(), \
            "%s: inputs do not reach below %g, above %g and between" % (type_, below, above)
    return check


def pads_matter(type_, kernel, stride, padding):
    """The padding value changes the result: -inf vs 0 for max, counted vs not for average."""
    def check(model, x):
        pre = _pre(model, x, type_)
        if type_ == "maxpool2d":
            other = F.max_pool2d(F.pad(pre, [padding] * 4), kernel, stride)
            mine = F.max_pool2d(pre, kernel, stride, padding)
        else:
            other = F.avg_pool2d(pre, kernel, stride, padding, count_include_pad=False)
            mine = F.avg_pool2d(pre, kernel, stride, padding, count_include_pad=True)
        assert not torch.equal(mine, other), "%s: padding never changes a result" % type_
    return check


def bias_fill(layer, value):
    def prep(model):
        model.get_submodule(layer).bias.data.fill_(value)
    return prep


# --- the cases ---------------------------------------------------------------------------------

def head(classes, name="fc"):
    return [L("flatten"), L("linear", name, out=classes)]


def conv_case(name, desc, n=6, eval_batch=4, input=(3, 8, 8), **conv):
    return Case(name, desc, list(input), 3, [L("conv2d", "conv", **conv)] + head(3), n=n, eval_batch=eval_batch)


def act_case(type_, check, scale=3.0, **keys):
    name = type_ if not keys else "%s_%s" % (type_, "_".join("%s" % v for v in keys.values()))
    return Case(name, "linear -> %s%s -> linear" % (type_, "".join(" %s=%s" % kv for kv in keys.items())),
                [10], 4, [L("linear", "fc1", out=16), L(type_, **keys), L("linear", "fc2", out=4)],
                scale=scale, check=check)


def pool_case(name, type_, kernel, stride=None, padding=0, input=(2, 7, 7), n=5, eval_batch=3):
    keys = {"kernel": kernel}
    if stride is not None:
        keys["stride"] = stride
    if padding:
        keys["padding"] = padding
    check = pads_matter(type_, kernel, stride or kernel, padding) if padding else None
    return Case(name, "conv2d (bias -1: mostly negative maps) -> %s %s -> flatten -> linear" % (type_, keys),
                list(input), 3, [L("conv2d", "conv", out=3, kernel=3, padding=1), L(type_, **keys)] + head(3),
                n=n, eval_batch=eval_batch, prep=bias_fill("conv", -1.0), check=check)


CASES = [
    Case("linear_vec", "linear on [F] vectors", [10], 4,
         [L("linear", "fc1", out=8), L("relu"), L("linear", "fc2", out=4)]),
    Case("linear_seq", "linear on [T, F] (applies to the last dim), then flatten", [5, 6], 3,
         [L("linear", "proj", out=4), L("relu"), L("flatten"), L("linear", "fc", out=3)], n=5, eval_batch=2),
    Case("linear_nobias", "linear with bias false", [10], 4,
         [L("linear", "fc1", out=8, bias=False), L("tanh"), L("linear", "fc2", out=4, bias=False)]),

    conv_case("conv_plain", "conv2d 3x3 -> flatten -> linear", n=5, eval_batch=2, out=4, kernel=3),
    conv_case("conv_stride2", "conv2d 3x3 stride 2 on 9x9", input=(3, 9, 9), out=4, kernel=3, stride=2),
    conv_case("conv_pad1", "conv2d 3x3 padding 1", out=4, kernel=3, padding=1),
    conv_case("conv_dilation2", "conv2d 3x3 dilation 2", out=4, kernel=3, dilation=2),
    conv_case("conv_groups2", "conv2d 4->6 channels, groups 2", input=(4, 6, 6), out=6, kernel=3, groups=2),
    conv_case("conv_depthwise", "depthwise conv2d: groups = channels = 4, 2 outputs per group",
              input=(4, 6, 6), out=8, kernel=3, padding=1, groups=4),
    conv_case("conv_kernel3x1", "conv2d kernel [3, 1]", out=4, kernel=[3, 1]),
    conv_case("conv_nobias", "conv2d bias false", out=4, kernel=3, bias=False),
    conv_case("conv_pad_stride_dil", "conv2d 3x3 stride 2 padding 2 dilation 2 on 10x9",
              n=7, eval_batch=3, input=(2, 10, 9), out=4, kernel=3, stride=2, padding=2, dilation=2),
    conv_case("conv_kernel5x3_pad", "conv2d kernel [5, 3] stride [2, 1] padding [2, 1]",
              input=(2, 9, 7), out=3, kernel=[5, 3], stride=[2, 1], padding=[2, 1]),

    Case("batchnorm2d", "conv2d -> batchnorm2d -> relu -> flatten -> linear", [2, 5, 5], 3,
         [L("conv2d", "conv", out=4, kernel=3), L("batchnorm2d", "bn"), L("relu")] + head(3)),
    Case("batchnorm2d_noaffine", "batchnorm2d affine false, eps 1e-3, momentum 0.3", [2, 5, 5], 3,
         [L("conv2d", "conv", out=4, kernel=3), L("batchnorm2d", "bn", eps=1e-3, momentum=0.3, affine=False),
          L("relu")] + head(3)),
    Case("batchnorm1d_vec", "linear -> batchnorm1d on [F] -> relu -> linear", [10], 4,
         [L("linear", "fc1", out=8), L("batchnorm1d", "bn"), L("relu"), L("linear", "fc2", out=4)]),
    Case("batchnorm1d_vec_noaffine", "batchnorm1d on [F], affine false", [10], 4,
         [L("linear", "fc1", out=8), L("batchnorm1d", "bn", affine=False), L("relu"), L("linear", "fc2", out=4)]),
    Case("batchnorm1d_cl", "linear over L -> batchnorm1d on [C, L] -> flatten -> linear", [4, 9], 3,
         [L("linear", "proj", out=6), L("batchnorm1d", "bn")] + head(3)),
    Case("batchnorm1d_cl_noaffine", "batchnorm1d on [C, L], affine false, momentum 0.5", [4, 9], 3,
         [L("linear", "proj", out=6), L("batchnorm1d", "bn", momentum=0.5, affine=False)] + head(3)),

    Case("layernorm_vec", "linear -> layernorm -> relu -> linear", [10], 4,
         [L("linear", "fc1", out=8), L("layernorm", "ln"), L("relu"), L("linear", "fc2", out=4)]),
    Case("layernorm_seq", "linear over F -> layernorm over the last dim of [T, F], eps 1e-3 -> flatten -> linear",
         [5, 6], 3, [L("linear", "proj", out=4), L("layernorm", "ln", eps=1e-3)] + head(3)),

    act_case("relu", regions("relu", 0, 0)),
    act_case("relu6", regions("relu6", 0, 6), scale=8.0),
    act_case("sigmoid", regions("sigmoid", -3, 3)),
    act_case("tanh", regions("tanh", -2, 2)),
    act_case("silu", regions("silu", -2, 2)),
    act_case("gelu", regions("gelu", -2, 2)),
    act_case("gelu", regions("gelu", -2, 2), approximate="tanh"),

    pool_case("maxpool2d_2", "maxpool2d", 2),
    pool_case("maxpool2d_3s2p1", "maxpool2d", 3, stride=2, padding=1, input=(2, 8, 8)),
    pool_case("avgpool2d_2", "avgpool2d", 2),
    pool_case("avgpool2d_3s2p1", "avgpool2d", 3, stride=2, padding=1, input=(2, 8, 8)),
    Case("adaptive_avgpool2d", "conv2d -> adaptive_avgpool2d -> flatten -> linear", [3, 7, 6], 3,
         [L("conv2d", "conv", out=5, kernel=3), L("adaptive_avgpool2d")] + head(3)),
    Case("flatten", "flatten [C, H, W] row-major -> linear", [2, 3, 4], 3, head(3), scale=1.0),

    Case("dropout_p05", "linear -> relu -> dropout 0.5 -> linear (eval only: masks are random)", [10], 4,
         [L("linear", "fc1", out=8), L("relu"), L("dropout", p=0.5), L("linear", "fc2", out=4)], train=False),
    Case("dropout_p0", "dropout p 0 (identity in training too)", [10], 4,
         [L("linear", "fc1", out=8), L("relu"), L("dropout", p=0.0), L("linear", "fc2", out=4)]),

    Case("add_residual", "conv -> relu (r1) -> conv (c2) -> add [c2, r1] -> relu -> flatten -> linear",
         [3, 6, 6], 3,
         [L("conv2d", "c1", out=4, kernel=3, padding=1), L("relu", "r1"),
          L("conv2d", "c2", out=4, kernel=3, padding=1), L("add", "sum", from_=["c2", "r1"]), L("relu")]
         + head(3)),
    Case("concat_conv", "stem conv; branches a (3x3) and b (1x1, from: stem); concat on channels",
         [2, 6, 6], 3,
         [L("conv2d", "stem", out=3, kernel=3, padding=1), L("conv2d", "a", out=4, kernel=3, padding=1),
          L("conv2d", "b", out=2, kernel=1, from_="stem"), L("concat", from_=["a", "b"]), L("relu")] + head(3),
         n=7, eval_batch=5),
    Case("concat_linear", "stem linear -> relu (h); branches a and b (from: h); concat on features",
         [10], 4,
         [L("linear", "stem", out=8), L("relu", "h"), L("linear", "a", out=5), L("linear", "b", out=3, from_="h"),
          L("concat", from_=["a", "b", "h"]), L("relu"), L("linear", "fc", out=4)]),

    Case("embedding_flatten", "embedding (20 ids, dim 4) on [T=6] ids -> flatten -> linear", [6], 3,
         [L("embedding", "emb", num=20, dim=4)] + head(3)),
    Case("embedding_lstm", "embedding -> lstm -> last -> linear", [6], 3,
         [L("embedding", "emb", num=20, dim=4), L("lstm", "lstm", hidden=5), L("last"), L("linear", "fc", out=3)],
         n=7, eval_batch=3),

    Case("lstm_1layer", "lstm hidden 8 on [T=7, F=5] -> last -> linear", [7, 5], 3,
         [L("lstm", "lstm", hidden=8), L("last"), L("linear", "fc", out=3)], n=7, eval_batch=3),
    Case("lstm_2layer", "lstm hidden 6, 2 layers -> last -> linear", [7, 5], 3,
         [L("lstm", "lstm", hidden=6, num_layers=2), L("last"), L("linear", "fc", out=3)], n=5, eval_batch=2),
    Case("lstm_nobias", "lstm bias false -> last -> linear", [7, 5], 3,
         [L("lstm", "lstm", hidden=6, bias=False), L("last"), L("linear", "fc", out=3)], n=7, eval_batch=4),
    Case("lstm_sequence", "lstm output sequence [T, H] -> flatten -> linear (every step, not only the last)",
         [4, 3], 3, [L("lstm", "lstm", hidden=5)] + head(3), n=5, eval_batch=4),

    Case("preset_mlp", "arch mlp, inputs 12, hidden [8, 6]", [12], 3, preset={"arch": "mlp", "inputs": 12,
                                                                            "hidden": [8, 6]}),
    Case("preset_lenet5", "arch lenet5 (the real one)", [1, 28, 28], 10, preset={"arch": "lenet5"},
         n=4, eval_batch=3),
    Case("preset_resnet", "arch resnet depth 8 width 4 on [1, 16, 16]", [1, 16, 16], 10,
         preset={"arch": "resnet", "depth": 8, "width": 4}, n=5, eval_batch=2),
    Case("preset_lstm", "arch lstm hidden 16 num_layers 2 on [7, 5]", [7, 5], 4,
         preset={"arch": "lstm", "hidden": 16, "num_layers": 2}, n=7, eval_batch=3),
]


# --- making one case ---------------------------------------------------------------------------

def randomize_norms(model, gen):
    """Non-default statistics and affine parameters, so eval mode really uses them."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.num_batches_tracked.fill_(int(torch.randint(1, 100, (), generator=gen)))
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) and m.weight is not None:
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.3, generator=gen)


def run(model, x, y, train):
    """Eval logits, and when train: the training forward's logits and loss, the gradients and
    the buffers after that forward."""
    out = {}
    model.eval()
    with torch.no_grad():
        out["eval.logits"] = model(x)
    if train:
        model.train()
        model.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        out["train.logits"] = logits.detach()
        out["train.loss"] = loss.detach()
        for k, p in model.named_parameters():
            out["grad." + k] = p.grad.detach().clone()
        for k, b in model.named_buffers():
            out["train." + k] = b.detach().clone()
    return out


def make(case):
    seed = zlib.crc32(case.name.encode())
    torch.manual_seed(seed)
    model = shrinkmodel.build(case.section)
    gen = torch.Generator().manual_seed(seed + 1)
    randomize_norms(model, gen)
    if case.prep:
        case.prep(model)
    first = case.section["layers"][0]
    shape = [case.n] + case.section["input"]
    if first["type"] == "embedding":
        x = torch.randint(first["num"], shape, generator=gen)
    else:
        x = torch.randn(shape, generator=gen) * case.scale + case.shift
    y = torch.randint(case.section["classes"], (case.n,), generator=gen)
    if case.check:
        case.check(model, x)
    initial = copy.deepcopy(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = run(model, x, y, case.train)

    tensors = {k: v.numpy() for k, v in state.items()}
    tensors.update({k: v.numpy() for k, v in results.items()})
    tensors["x"], tensors["y"] = x.numpy(), y.numpy()
    meta = {
        "model": json.dumps(case.section, separators=(",", ":")),
        "case": case.desc,
        "torch": torch.__version__,
        "eval_batch": str(case.eval_batch),
        "train": "true" if case.train else "false",
        "script": "testdata/layers/make_layers.py",
    }
    if case.preset:
        meta["preset"] = json.dumps(case.preset, separators=(",", ":"))
    for k, v in tensors.items():
        want = "int64" if k.endswith("num_batches_tracked") or k == "y" or (k == "x" and first["type"] == "embedding") \
            else "float32"
        assert v.dtype == want, (case.name, k, v.dtype)
    path = os.path.join(HERE, case.name + ".safetensors")
    stlite.save(path, tensors, meta)
    return path, initial, x, y, results


def rel(a, b):
    """max |a - b| over max |b|: the error relative to the tensor's scale."""
    scale = b.abs().max().item()
    return (a.double() - b).abs().max().item() / scale if scale else (a.double() - b).abs().max().item()


def float64_errors(case, initial, x, y, results):
    """How far the float32 results are from the same computation in float64."""
    m64 = initial.double()
    x64 = x if x.dtype == torch.int64 else x.double()
    r64 = run(m64, x64, y, case.train)
    errs = {"eval.logits": rel(results["eval.logits"], r64["eval.logits"])}
    if case.train:
        errs["train.logits"] = rel(results["train.logits"], r64["train.logits"])
        errs["train.loss"] = rel(results["train.loss"], r64["train.loss"])
        grads = [k for k in results if k.startswith("grad.")]
        errs["grad"] = max(rel(results[k], r64[k]) for k in grads)
        # A bias right before batch norm has a true gradient of 0: its float32 value is rounding
        # noise, so also measure against the largest gradient of the whole model.
        gmax = max(r64[k].abs().max().item() for k in grads)
        errs["grad/model"] = max((results[k].double() - r64[k]).abs().max().item() for k in grads) / gmax
        bufs = [k for k in results if k.startswith("train.") and "num_batches" not in k
                and k not in ("train.logits", "train.loss")]
        errs["buffers"] = max((rel(results[k], r64[k]) for k in bufs), default=0.0)
    return errs


def presets():
    """Every preset's expansion, for the Go expansion to match name for name."""
    out = []
    for p in [
        {"arch": "mlp", "inputs": 784, "classes": 10},
        {"arch": "mlp", "inputs": 12, "hidden": [8, 6], "classes": 3},
        {"arch": "lenet5", "classes": 10},
        {"arch": "resnet", "depth": 8, "width": 4, "input": [1, 28, 28], "classes": 10},
        {"arch": "resnet", "depth": 14, "width": 4, "input": [3, 32, 32], "classes": 10},
        {"arch": "lstm", "classes": 10, "input": [28, 28]},
        {"arch": "lstm", "hidden": 16, "num_layers": 2, "classes": 4, "input": [7, 5]},
    ]:
        m = shrinkmodel.build(p)
        out.append({"preset": p, "input": m.input_shape, "classes": p["classes"], "layers": shrinkmodel.expand(p),
                    "state_dict": list(m.state_dict())})
    return out


def presets_json(entries):
    """JSON with one layer (and one state_dict name list) per line, so diffs read well."""
    def dump(v):
        return json.dumps(v, separators=(", ", ": "))
    out = []
    for e in entries:
        lines = ['  {"preset": %s,' % dump(e["preset"]),
                 '   "input": %s, "classes": %d,' % (dump(e["input"]), e["classes"]),
                 '   "layers": [']
        lines += ["    %s," % dump(l) for l in e["layers"]]
        lines[-1] = lines[-1][:-1]
        lines += ['   ],', '   "state_dict": %s}' % dump(e["state_dict"])]
        out.append("\n".join(lines))
    text = "[\n" + ",\n".join(out) + "\n]\n"
    assert json.loads(text) == entries
    return text


def main():
    check = "--check" in sys.argv[1:]
    total = 0
    worst = {}
    for case in CASES:
        path, initial, x, y, results = make(case)
        size = os.path.getsize(path)
        total += size
        line = "%-26s %7d B" % (case.name, size)
        if check:
            errs = float64_errors(case, initial, x, y, results)
            line += "  " + "  ".join("%s %.1e" % kv for kv in errs.items())
            for k, v in errs.items():
                worst[k] = max(worst.get(k, 0.0), v)
        print(line)
    with open(os.path.join(HERE, "presets.json"), "w") as f:
        f.write(presets_json(presets()))
    print("%d cases, %d bytes in all" % (len(CASES), total))
    if check:
        print("worst float32 vs float64 error, relative to each tensor's max |value|: " +
              "  ".join("%s %.1e" % kv for kv in worst.items()))


if __name__ == "__main__":
    main()
