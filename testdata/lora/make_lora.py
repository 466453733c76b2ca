#!/usr/bin/python3
"""Make the LoRA fixtures shrink's adapter graph is checked against (PyTorch 1.13, numpy).

    /usr/bin/python3 testdata/lora/make_lora.py

Each case is a small model (tools/torchref/shrinkmodel.py) whose target layers are wrapped as
PEFT's lora.Linear / lora.Conv2d (docs/lora_apply.py's LoraLayer: base_layer(x) +
lora_B(lora_A(dropout(x))) * scaling; dropout 0, since PyTorch's masks cannot be reproduced).
lora_B is random, not zero, so the branch matters. The frozen layers' tensors do not require
gradients; a layer frozen "all" runs in eval mode during the training forward (its batch norm
statistics stay), one frozen "params" in train mode (they update).

One CASE.safetensors per case. __metadata__: model (the model section, JSON), adapters (JSON
{layer: {r, alpha, rslora}}), frozen (JSON {layer: "params" | "all"}), eval_batch, case, torch,
script. Tensors, in shrink's names (PEFT's module paths without base_layer):

  every state_dict entry of the base      the initial model (NAME.weight, NAME.bias, bn buffers)
  NAME.lora_A.weight, NAME.lora_B.weight  the adapters
  x F32 [N, ...], y I64 [N]               inputs and labels
  eval.logits                             model.eval()(x)
  train.logits, train.loss                the training forward on the whole batch, its mean CE
  grad.<param>                            d loss / d param for every trainable parameter
  train.<buffer>                          every buffer after that forward
  merged.NAME.weight                      the weight with the adapter merged (PEFT's
                                          get_delta_weight, float32)
  merged.eval.logits                      the merged plain model's eval logits

Deterministic: seeded from the case name, one thread.
"""
import json
import os
import sys
import zlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))
sys.path.insert(0, os.path.join(ROOT, "docs"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lora_apply  # noqa: E402
import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

torch.set_num_threads(1)


def L(type_, name=None, **keys):
    d = {"name": name} if name else {}
    d["type"] = type_
    d.update(keys)
    return d


CONV = [L("conv2d", "conv1", out=6, kernel=3, stride=2, padding=1), L("batchnorm2d", "bn1"), L("relu"),
        L("conv2d", "conv2", out=5, kernel=1), L("relu"), L("flatten"), L("linear", "fc", out=3)]

CASES = [
    # name, description, input, classes, layers, adapters, frozen, n, eval_batch
    ("linear", "mlp: fc1 (r 3, alpha 6) and fc2 (r 2, alpha 3, rslora, no bias) adapted, fc3 trained",
     [10], 4, [L("linear", "fc1", out=8), L("relu"), L("linear", "fc2", out=6, bias=False), L("relu"),
               L("linear", "fc3", out=4)],
     {"fc1": {"r": 3, "alpha": 6}, "fc2": {"r": 2, "alpha": 3, "rslora": True}},
     {"fc1": "params", "fc2": "params"}, 6, 4),
    ("linear_seq", "linear over the last dim of [T, F] (r 2) -> flatten -> head trained",
     [5, 6], 3, [L("linear", "proj", out=4), L("flatten"), L("linear", "fc", out=3)],
     {"proj": {"r": 2, "alpha": 4}}, {"proj": "params"}, 5, 3),
    ("conv_bn_frozen", "conv k3 s2 p1 (r 3) -> bn frozen (eval statistics) -> conv 1x1 (r 2, rslora) -> "
     "linear (r 2), nothing trained in full",
     [3, 9, 9], 3, CONV,
     {"conv1": {"r": 3, "alpha": 3}, "conv2": {"r": 2, "alpha": 8, "rslora": True}, "fc": {"r": 2, "alpha": 2}},
     {"conv1": "params", "bn1": "all", "conv2": "params", "fc": "params"}, 6, 4),
    ("conv_bn_update", "the same, bn frozen but in train mode (statistics update), head fc trained in full",
     [3, 9, 9], 3, CONV,
     {"conv1": {"r": 3, "alpha": 3}, "conv2": {"r": 2, "alpha": 8, "rslora": True}},
     {"conv1": "params", "bn1": "params", "conv2": "params"}, 6, 4),
    ("conv_rect", "conv kernel [3, 1], stride [2, 1], padding [1, 0] (r 4, alpha 2) -> flatten -> linear",
     [2, 7, 6], 3, [L("conv2d", "conv", out=5, kernel=[3, 1], stride=[2, 1], padding=[1, 0]), L("flatten"),
                    L("linear", "fc", out=3)],
     {"conv": {"r": 4, "alpha": 2}}, {"conv": "params"}, 5, 2),
]


def randomize_norms(model, gen):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.num_batches_tracked.fill_(int(torch.randint(1, 100, (), generator=gen)))
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.3, generator=gen)


def shrink_name(k):
    """PyTorch's name in the wrapped model -> shrink's: fc1.base_layer.weight -> fc1.weight."""
    return k.replace(".base_layer.", ".")


def make(name, desc, input_, classes, layers, adapters, frozen, n, eval_batch):
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    section = {"input": input_, "classes": classes, "layers": layers}
    model = shrinkmodel.build(section)
    gen = torch.Generator().manual_seed(seed + 1)
    randomize_norms(model, gen)
    wrappers = {}
    for layer, a in adapters.items():
        w = lora_apply.wrap(model, layer, a["r"], a["alpha"], 0.0, a.get("rslora", False))
        with torch.no_grad():
            w.lora_B.weight.normal_(0, 0.3, generator=gen)
        wrappers[layer] = w
    for layer, how in frozen.items():
        mod = model.get_submodule(layer)
        base = mod.base_layer if isinstance(mod, lora_apply.LoraLayer) else mod
        for p in base.parameters():
            p.requires_grad_(False)
    x = torch.randn([n] + input_, generator=gen)
    y = torch.randint(classes, (n,), generator=gen)
    state = {shrink_name(k): v.clone() for k, v in model.state_dict().items()}

    out = {}
    model.eval()
    with torch.no_grad():
        out["eval.logits"] = model(x)
    model.train()
    for layer, how in frozen.items():
        if how == "all":
            model.get_submodule(layer).eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out["train.logits"], out["train.loss"] = logits.detach(), loss.detach()
    for k, p in model.named_parameters():
        if p.requires_grad:
            out["grad." + shrink_name(k)] = p.grad.detach().clone()
    for k, b in model.named_buffers():
        out["train." + shrink_name(k)] = b.detach().clone()

    # Merging, from the initial weights: PEFT's get_delta_weight added to the base weight.
    merged = shrinkmodel.build(section)
    merged.load_state_dict({k: v for k, v in state.items() if ".lora_" not in k})
    with torch.no_grad():
        for layer, w in wrappers.items():
            for part in ("lora_A", "lora_B"):
                getattr(w, part).weight.copy_(state[layer + "." + part + ".weight"])
            base = merged.get_submodule(layer)
            base.weight += w.delta_weight()
            out["merged." + layer + ".weight"] = base.weight.detach().clone()
        merged.eval()
        out["merged.eval.logits"] = merged(x)

    tensors = {k: v.numpy() for k, v in state.items()}
    tensors.update({k: v.numpy() for k, v in out.items()})
    tensors["x"], tensors["y"] = x.numpy(), y.numpy()
    meta = {
        "model": json.dumps(section, separators=(",", ":")),
        "adapters": json.dumps(adapters, separators=(",", ":"), sort_keys=True),
        "frozen": json.dumps(frozen, separators=(",", ":"), sort_keys=True),
        "eval_batch": str(eval_batch),
        "case": desc,
        "torch": torch.__version__,
        "script": "testdata/lora/make_lora.py",
    }
    stlite.save(os.path.join(HERE, name + ".safetensors"), tensors, meta)
    print(name, "loss %.6f" % loss.item())


def main():
    for c in CASES:
        make(*c)


if __name__ == "__main__":
    main()
