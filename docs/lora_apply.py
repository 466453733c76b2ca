#!/usr/bin/python3
"""Apply a shrink lora stage's PEFT adapter files to the PyTorch model and compare its logits with
shrink's: PEFT's LoRA semantics, without PEFT (which this machine does not have).

    /usr/bin/python3 docs/lora_apply.py BASE.safetensors ADAPTER_DIR --data fashion-mnist \\
        [--shrink-logits LOGITS.npy] [--data-dir DIR] [--split test] [--batch 1000]

- BASE is a shrink checkpoint whose model section (__metadata__ "arch") the PyTorch model is built
  from, with tools/torchref/shrinkmodel.py. Its weights may be float32, NF4 (bitsandbytes' tensors:
  packed codes, absmax or double-quantized absmax, quant_map, quant-state JSON; dequantized here
  with numpy, as bitsandbytes' dequantize_4bit does) or int8 with per-channel scales. Any lora_A /
  lora_B tensors in it are ignored: the adapters come from ADAPTER_DIR only. Pass the stage's
  model.safetensors (the frozen base it trained on), or for a float base its input checkpoint.
- ADAPTER_DIR holds adapter_config.json and adapter_model.safetensors as PEFT's
  save_pretrained writes them: base_model.model.<layer>.lora_A.weight [r, in] (conv: [r, in, kh,
  kw]), ...lora_B.weight [out, r] (conv: [out, r, 1, 1]), and each modules_to_save layer's
  tensors as base_model.model.<layer>.<tensor>. Every tensor must be used, every target found.
- Each target layer is wrapped as PEFT's lora.Linear / lora.Conv2d: base_layer(x) +
  lora_B(lora_A(dropout(x))) * scaling, scaling = lora_alpha / r (lora_alpha / sqrt(r) with
  use_rslora); lora_A is Conv2d(in, r, kernel, stride, padding) for a convolution, lora_B a 1x1
  Conv2d.
- Prints one JSON object: accuracy and loss on the split, and with --shrink-logits (what
  `shrink predict --stage STAGE --out` wrote for the same checkpoint and data) the largest
  absolute and relative difference of the logits and how many predictions differ.
"""
import argparse
import json
import math
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))  # shrinkmodel.py, mnistdata.py
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))  # stlite.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

PREFIX = "base_model.model."


class LoraLayer(nn.Module):
    """PEFT's lora.Linear and lora.Conv2d (one adapter, no DoRA, no bias): the base layer's output
    plus lora_B(lora_A(dropout(x))) * scaling."""

    def __init__(self, base, r, alpha, dropout=0.0, rslora=False):
        super().__init__()
        self.base_layer = base
        if isinstance(base, nn.Linear):
            self.lora_A = nn.Linear(base.in_features, r, bias=False)
            self.lora_B = nn.Linear(r, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            if base.groups != 1:
                raise ValueError("PEFT cannot merge adapters of grouped convolutions")
            self.lora_A = nn.Conv2d(base.in_channels, r, base.kernel_size, base.stride, base.padding, bias=False)
            self.lora_B = nn.Conv2d(r, base.out_channels, (1, 1), (1, 1), bias=False)
        else:
            raise ValueError("LoRA adapts nn.Linear and nn.Conv2d, not %s" % type(base).__name__)
        self.lora_dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def delta_weight(self):
        """PEFT's get_delta_weight: B A * scaling in the base weight's layout."""
        a, b = self.lora_A.weight, self.lora_B.weight
        if isinstance(self.base_layer, nn.Linear):
            return (b @ a) * self.scaling
        if self.base_layer.weight.shape[2:4] == (1, 1):
            return (b.squeeze(3).squeeze(2) @ a.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3) * self.scaling
        return F.conv2d(a.transpose(0, 1), b).transpose(0, 1) * self.scaling


def wrap(model, name, r, alpha, dropout=0.0, rslora=False):
    """Replace layer `name` of a shrinkmodel model by a LoraLayer around it; returns the wrapper."""
    for i, (n, mod, frm) in enumerate(model._steps):
        if n == name:
            new = LoraLayer(mod, r, alpha, dropout, rslora)
            parent, _, leaf = name.rpartition(".")
            (model.get_submodule(parent) if parent else model)._modules[leaf] = new
            model._steps[i] = (name, new, frm)
            return new
    raise ValueError("target module %r is not a layer of the model" % name)


def dequantize_nf4(t, name):
    """bitsandbytes' dequantize_4bit of the NF4 tensors NAME, NAME.absmax, ... (docs/NF4.md)."""
    state = json.loads(bytes(t[name + ".quant_state.bitsandbytes__nf4"]).decode("utf-8"))
    assert state["quant_type"] == "nf4", state
    shape, bs = state["shape"], state["blocksize"]
    n = int(np.prod(shape))
    if "nested_offset" in state:
        codes = t[name + ".absmax"].astype(np.int64)
        nested = t[name + ".nested_absmax"].astype(np.float32)
        nmap = t[name + ".nested_quant_map"].astype(np.float32)
        nbs = state["nested_blocksize"]
        absmax = (nmap[codes] * nested[np.arange(len(codes)) // nbs]).astype(np.float32)
        absmax = (absmax + np.float32(state["nested_offset"])).astype(np.float32)
    else:
        absmax = t[name + ".absmax"].astype(np.float32)
    packed = t[name].reshape(-1)
    codes = np.empty(2 * len(packed), dtype=np.int64)
    codes[0::2], codes[1::2] = packed >> 4, packed & 15
    qmap = t[name + ".quant_map"].astype(np.float32)
    w = (qmap[codes[:n]] * absmax[np.arange(n) // bs]).astype(np.float32)
    return w.reshape(shape)


def base_state(t, model):
    """The model's state_dict from a shrink checkpoint's tensors: float32 as is, NF4 and int8
    dequantized; adapter tensors skipped."""
    out = {}
    for name, ref in model.state_dict().items():
        if name + ".quant_state.bitsandbytes__nf4" in t:
            out[name] = torch.from_numpy(dequantize_nf4(t, name))
        elif name in t and t[name].dtype == np.int8 and name.endswith(".weight"):
            scale = t[name[:-len("weight")] + "weight_scale"].astype(np.float32)
            q = t[name].astype(np.float32)
            zp = t.get(name[:-len("weight")] + "weight_zero_point")
            if zp is not None:
                q = q - zp.astype(np.float32).reshape(scale.shape + (1,) * (q.ndim - scale.ndim))
            out[name] = torch.from_numpy((q * scale.reshape(scale.shape + (1,) * (q.ndim - scale.ndim))).astype(np.float32))
        elif name in t:
            if t[name].dtype not in (np.float32, np.int64):
                raise SystemExit("tensor %s is %s: export the base dense first (shrink export --format dense)"
                                 % (name, t[name].dtype))
            out[name] = torch.from_numpy(np.array(t[name]))
        else:
            raise SystemExit("the base checkpoint has no %s" % name)
    return out


def read_adapter(adapter_dir):
    """adapter_config.json and adapter_model.safetensors, checked as PEFT would read them."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("peft_type") != "LORA":
        raise SystemExit("peft_type is %r, not LORA" % cfg.get("peft_type"))
    for key, want in (("bias", "none"), ("fan_in_fan_out", False), ("use_dora", False)):
        if cfg.get(key, want) != want:
            raise SystemExit("%s is %r: only %r is supported" % (key, cfg[key], want))
    tensors, _ = stlite.load(os.path.join(adapter_dir, "adapter_model.safetensors"))
    return cfg, tensors


def apply_adapter(model, cfg, tensors):
    """Wrap every target module and load the adapter and modules_to_save tensors, strictly."""
    used = set()
    r, alpha = cfg["r"], cfg["lora_alpha"]
    for name in cfg["target_modules"]:
        r_n = cfg.get("rank_pattern", {}).get(name, r)
        alpha_n = cfg.get("alpha_pattern", {}).get(name, alpha)
        layer = wrap(model, name, r_n, alpha_n, cfg.get("lora_dropout", 0.0), cfg.get("use_rslora", False))
        for part in ("lora_A", "lora_B"):
            key = PREFIX + name + "." + part + ".weight"
            if key not in tensors:
                raise SystemExit("adapter_model.safetensors has no %s" % key)
            p = getattr(layer, part).weight
            if tuple(tensors[key].shape) != tuple(p.shape):
                raise SystemExit("%s is %s, want %s" % (key, list(tensors[key].shape), list(p.shape)))
            with torch.no_grad():
                p.copy_(torch.from_numpy(tensors[key]))
            used.add(key)
    for name in cfg.get("modules_to_save") or []:
        mod = model.get_submodule(name)
        for tname, ref in mod.state_dict().items():
            key = PREFIX + name + "." + tname
            if key not in tensors:
                raise SystemExit("adapter_model.safetensors has no %s (modules_to_save %s)" % (key, name))
            with torch.no_grad():
                ref.copy_(torch.from_numpy(np.array(tensors[key])).reshape(ref.shape))
            used.add(key)
    extra = sorted(set(tensors) - used)
    if extra:
        raise SystemExit("adapter_model.safetensors has tensors no target or modules_to_save uses: %s" % extra)


def build(base_path):
    """The PyTorch model of a shrink checkpoint's model section, with its base weights."""
    t, meta = stlite.load(base_path)
    if not meta or "arch" not in meta:
        raise SystemExit("%s has no shrink metadata (arch)" % base_path)
    section = json.loads(meta["arch"])
    section = {k: v for k, v in section.items() if k != "checkpoint"}
    model = shrinkmodel.build(section)
    model.load_state_dict(base_state(t, model), strict=True)
    return model, section


def main(argv=None):
    import mnistdata

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("adapter_dir")
    ap.add_argument("--data", choices=sorted(mnistdata.NORMALIZE), required=True)
    ap.add_argument("--data-dir", help="folder of the IDX files (default: where shrink looks)")
    ap.add_argument("--split", choices=["test", "train"], default="test")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--shrink-logits", help=".npy [N, classes] float32 from `shrink predict --stage STAGE --out`")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    model, section = build(args.base)
    cfg, tensors = read_adapter(args.adapter_dir)
    apply_adapter(model, cfg, tensors)
    model.eval()
    x, y = mnistdata.load(args.data, args.split, model.input_shape, args.data_dir)
    logits = []
    with torch.no_grad():
        for i in range(0, len(x), args.batch):
            logits.append(model(x[i:i + args.batch]))
    logits = torch.cat(logits)
    out = {"samples": len(x), "accuracy": float((logits.argmax(1) == y).double().mean()),
           "loss": float(F.cross_entropy(logits.double(), y))}
    if args.shrink_logits:
        ref = torch.from_numpy(np.load(args.shrink_logits))
        if ref.shape != logits.shape:
            raise SystemExit("%s is %s, the model gives %s" % (args.shrink_logits, list(ref.shape), list(logits.shape)))
        diff = (logits.double() - ref.double()).abs()
        out["max_abs_diff"] = float(diff.max())
        out["max_rel_diff"] = float(diff.max() / ref.double().abs().max())
        out["argmax_differs"] = int((logits.argmax(1) != ref.argmax(1)).sum())
        out["shrink_accuracy"] = float((ref.argmax(1) == y).double().mean())
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
