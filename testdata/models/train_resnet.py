#!/usr/bin/python3
"""Train the PyTorch ResNet the interop test loads into shrink (README.md here).

    flock /tmp/shrink-heavy.lock /usr/bin/python3 testdata/models/train_resnet.py

resnet preset, depth 8, width 8, on Fashion-MNIST ([1, 28, 28], (x/255 - 0.2860)/0.3530), one
epoch of Adam (lr 1e-3) in batches of 128 (the last one 96), order torch.randperm after
torch.manual_seed(0), one thread. Writes:
  resnet8-fashion.safetensors  the state_dict only (plain PyTorch names, no metadata)
  resnet8-fashion.json         {"model", "accuracy", "correct", "loss", "first_logits", ...}:
                               model.eval() on the 10,000 test images in batches of 1000
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import eval as torchref_eval  # noqa: E402
import mnistdata  # noqa: E402
import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

SECTION = {"arch": "resnet", "depth": 8, "width": 8, "input": [1, 28, 28], "classes": 10}
EPOCHS, BATCH, LR = 1, 128, 1e-3


def to_json(out):
    """One key per line, one logits row or layer per line."""
    def dump(v):
        return json.dumps(v, separators=(", ", ": "))
    lines = []
    for k, v in out.items():
        if isinstance(v, list) and v and isinstance(v[0], (list, dict)):
            rows = ",\n".join("  " + dump(r) for r in v)
            lines.append(" %s: [\n%s\n ]" % (dump(k), rows))
        else:
            lines.append(" %s: %s" % (dump(k), dump(v)))
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    assert json.loads(text) == out
    return text


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = shrinkmodel.build(SECTION)
    xtr, ytr = mnistdata.load("fashion-mnist", "train", SECTION["input"])
    xte, yte = mnistdata.load("fashion-mnist", "test", SECTION["input"])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    start = time.time()
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xtr))
        for step, i in enumerate(range(0, len(xtr), BATCH)):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            if step % 100 == 0:
                print("epoch %d step %d loss %.4f (%.0f s)" % (epoch, step, loss.item(), time.time() - start))

    result = torchref_eval.evaluate(model, xte, yte, batch=1000)
    with torch.no_grad():
        first = model.eval()(xte[:8])
    stlite.save(os.path.join(HERE, "resnet8-fashion.safetensors"),
                {k: v.numpy() for k, v in model.state_dict().items()})
    out = {
        "model": SECTION,
        "accuracy": result["accuracy"],
        "correct": result["correct"],
        "loss": result["loss"],
        "first_logits": first.tolist(),
        "layers": shrinkmodel.expand(SECTION),
        "training": "1 epoch, Adam lr 1e-3, batch 128, torch.manual_seed(0), randperm order, 1 thread",
        "torch": torch.__version__,
    }
    with open(os.path.join(HERE, "resnet8-fashion.json"), "w") as f:
        f.write(to_json(out))
    print("test accuracy %.4f, loss %.4f, %.0f s" % (result["accuracy"], result["loss"], time.time() - start))


if __name__ == "__main__":
    main()
