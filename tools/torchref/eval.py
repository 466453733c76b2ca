#!/usr/bin/python3
"""Evaluate a shrink (or PyTorch) safetensors checkpoint in PyTorch, to show that a model shrink
trained computes the same in PyTorch.

    /usr/bin/python3 tools/torchref/eval.py CHECKPOINT.safetensors \\
        (--model MODEL.json | --recipe RECIPE.yaml) [--data fashion-mnist|mnist] \\
        [--data-dir DIR] [--split test|train] [--batch 1000]

prints one JSON object: {"accuracy": ..., "correct": ..., "loss": ..., "samples": ...}.

- MODEL.json is a model section ({"input": ..., "classes": ..., "layers" or "arch": ...}) or an
  object holding one under "model" (as testdata/models/resnet8-fashion.json does).
- RECIPE.yaml: its `model:` section, and its data.dataset, data.path and data.normalize.
  `--data` and `--data-dir` win over the recipe.
- The checkpoint is loaded strictly (every tensor used, none missing); shrink's __metadata__ is
  ignored. A factored layer (NAME.0.weight and NAME.1.weight, what lowrank writes) becomes
  PyTorch's Sequential of the two smaller layers. Quantized tensors are not floats: export the
  checkpoint first with `shrink export CHECKPOINT --format dense OUT`.
- The model is evaluated with model.eval() in batches of --batch; loss is the mean cross
  entropy of the float32 logits, summed in float64.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "testdata", "safetensors"))  # stlite.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mnistdata  # noqa: E402
import shrinkmodel  # noqa: E402
import stlite  # noqa: E402


def model_input(section, data):
    """One sample's shape: the section's, or shrink's default from the data (models-v1 section 1:
    [1, 28, 28] for networks that start with a convolution, [28, 28] for layout sequence, [784]
    otherwise)."""
    try:
        return shrinkmodel.input_shape(section)
    except ValueError:
        pass
    if data.get("layout") == "sequence":
        return [28, 28]
    layers = shrinkmodel.expand(section)
    return [1, 28, 28] if layers and layers[0]["type"] == "conv2d" else [784]


def load_checkpoint(path):
    tensors, _ = stlite.load(path)  # the metadata (shrink's format, arch, ...) is not needed
    out = {}
    for name, a in tensors.items():
        if a.dtype not in (np.float32, np.int64):
            raise SystemExit("%s: tensor %s is %s, not a float: export the checkpoint first with "
                             "`shrink export %s --format dense OUT`" % (path, name, a.dtype, path))
        out[name] = torch.from_numpy(a)
    return out


def evaluate(model, x, y, batch=1000):
    """accuracy, correct, loss (mean CE in float64) and samples of model.eval() on (x, y)."""
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch])
            yb = y[i:i + batch]
            correct += int((logits.argmax(1) == yb).sum())
            loss_sum += float(F.cross_entropy(logits.double(), yb, reduction="sum"))
    return {"accuracy": correct / len(x), "correct": correct, "loss": loss_sum / len(x), "samples": len(x)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="JSON model section, or an object with one under \"model\"")
    src.add_argument("--recipe", help="a shrink recipe (YAML): its model and data sections")
    ap.add_argument("--data", choices=sorted(mnistdata.NORMALIZE), help="dataset (default: the recipe's)")
    ap.add_argument("--data-dir", help="folder of the IDX files (default: where shrink looks)")
    ap.add_argument("--split", choices=["test", "train"], default="test")
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    data = {}
    if args.model:
        with open(args.model) as f:
            section = json.load(f)
        section = section.get("model", section)
    else:
        import yaml
        with open(args.recipe) as f:
            recipe = yaml.safe_load(f)
        section, data = recipe["model"], recipe.get("data") or {}
        if data.get("path"):
            data["path"] = os.path.join(os.path.dirname(os.path.abspath(args.recipe)), data["path"])
    dataset = args.data or data.get("dataset")
    if dataset not in mnistdata.NORMALIZE:
        raise SystemExit("--data: give fashion-mnist or mnist (the recipe says %r)" % (dataset,))
    norm = data.get("normalize")
    if norm:
        norm = (norm["mean"], norm["std"])

    section = {k: v for k, v in section.items() if k != "checkpoint"}
    section["input"] = model_input(section, data)
    model = shrinkmodel.build(section)
    state = load_checkpoint(args.checkpoint)
    model.factor_like(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # names the missing, unexpected or misshapen tensors
        raise SystemExit("%s does not fit the model section: %s" % (args.checkpoint, e))

    x, y = mnistdata.load(dataset, args.split, section["input"], args.data_dir or data.get("path"), norm)
    print(json.dumps(evaluate(model, x, y, args.batch)))


if __name__ == "__main__":
    main()
