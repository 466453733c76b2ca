"""shrinkmodel: shrink's model section (models-v1.md) as a PyTorch module, the reference the Go
side is checked against.

    import shrinkmodel
    layers = shrinkmodel.expand({"arch": "resnet", "depth": 8, "width": 4,
                                 "input": [1, 16, 16], "classes": 10})
    model = shrinkmodel.build({"input": [1, 16, 16], "classes": 10, "layers": layers})
    logits = model(x)                      # x: [N, 1, 16, 16]

build() gives a module whose state_dict() names are exactly shrink's tensor names (a layer named
`layer1.0.conv1` owns `layer1.0.conv1.weight`, reachable as model.layer1[0].conv1), and whose
forward walks the layer list: each layer reads the previous layer's output, or `from:` (one name,
or a list for add and concat). Input sizes are inferred by pushing one zero sample through the
layers while they are built, like PyTorch's Lazy modules.

Preset expansions (expand()). Keys equal to the layer type's default are left out; parameter-free
layers are unnamed unless a `from:` edge must refer to them. The names given to parameter-free
layers, which the Go expansion must use too:
  resnet  `relu1`            the stem's ReLU (the first block's shortcut input)
          `layerS.I.add`     the block's residual sum, from [layerS.I.bn2, shortcut]
          `layerS.I.relu2`   the ReLU after the sum (the next block's shortcut input)
          where the shortcut is the block input, or `layerS.I.downsample.1` when the stride or
          the width changes (downsample.0 reads the block input through `from:`)
  mlp, lenet5, lstm          no parameter-free layer is named
testdata/layers/presets.json holds every preset's expansion for small sizes.
"""
import torch
import torch.nn as nn

# Per type: the keys a layer may carry besides name, type and from, with their defaults
# (None: required).
LAYER_KEYS = {
    "linear": {"out": None, "bias": True},
    "conv2d": {"out": None, "kernel": None, "stride": 1, "padding": 0, "dilation": 1,
               "groups": 1, "bias": True},
    "batchnorm2d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "batchnorm1d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "layernorm": {"eps": 1e-5},
    "relu": {}, "relu6": {}, "sigmoid": {}, "tanh": {}, "silu": {},
    "gelu": {"approximate": "none"},
    "maxpool2d": {"kernel": None, "stride": None, "padding": 0},  # stride None: the kernel
    "avgpool2d": {"kernel": None, "stride": None, "padding": 0},
    "adaptive_avgpool2d": {},
    "flatten": {},
    "dropout": {"p": 0.5},
    "add": {},
    "concat": {},
    "embedding": {"num": None, "dim": None},
    "lstm": {"hidden": None, "num_layers": 1, "bias": True},
    "last": {},
}
MULTI_INPUT = ("add", "concat")

PRESET_DEFAULTS = {
    "mlp": {"hidden": [300, 100]},
    "lenet5": {"channels": [6, 16], "hidden": [120, 84]},
    "resnet": {"depth": 20, "width": 16},
    "lstm": {"hidden": 128, "num_layers": 1},
}


# ---------------------------------------------------------------------------------------------
# Presets


def expand(section):
    """The explicit layer list a model section means: its `layers` as given, or a preset's
    expansion."""
    if "layers" in section:
        if "arch" in section:
            raise ValueError("model: give either arch or layers, not both")
        return [dict(l) for l in section["layers"]]
    arch = section.get("arch")
    if arch not in PRESET_DEFAULTS:
        raise ValueError("model: arch %r is not one of %s (or give layers)" % (arch, sorted(PRESET_DEFAULTS)))
    p = dict(PRESET_DEFAULTS[arch])
    p.update({k: v for k, v in section.items() if v is not None})
    classes = p["classes"]
    if arch == "mlp":
        return _mlp(p["hidden"], classes)
    if arch == "lenet5":
        return _lenet5(p["channels"], p["hidden"], classes)
    if arch == "resnet":
        return _resnet(p["depth"], p["width"], classes)
    return _lstm(p["hidden"], p["num_layers"], classes)


def _mlp(hidden, classes):
    layers = []
    for i, h in enumerate(hidden):
        layers += [{"name": "fc%d" % (i + 1), "type": "linear", "out": h}, {"type": "relu"}]
    layers.append({"name": "fc%d" % (len(hidden) + 1), "type": "linear", "out": classes})
    return layers


def _lenet5(channels, hidden, classes):
    if len(channels) != 2 or len(hidden) != 2:
        raise ValueError("lenet5: channels and hidden take two widths each")
    layers = []
    for i, c in enumerate(channels):
        layers += [{"name": "conv%d" % (i + 1), "type": "conv2d", "out": c, "kernel": 5},
                   {"type": "relu"}, {"type": "maxpool2d", "kernel": 2}]
    layers.append({"type": "flatten"})
    return layers + _mlp(hidden, classes)


def _conv(name, out, kernel, stride=1, padding=0, frm=None):
    """A bias-free conv2d layer dict, keys in reading order, defaults left out."""
    d = {"name": name, "type": "conv2d", "out": out, "kernel": kernel}
    if stride != 1:
        d["stride"] = stride
    if padding:
        d["padding"] = padding
    d["bias"] = False
    if frm is not None:
        d["from"] = frm
    return d


def _resnet(depth, width, classes):
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError("resnet: depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), not %r" % depth)
    n = (depth - 2) // 6
    layers = [_conv("conv1", width, 3, padding=1),
              {"name": "bn1", "type": "batchnorm2d"},
              {"name": "relu1", "type": "relu"}]
    block_in, in_width = "relu1", width
    for stage in range(3):
        w = width << stage
        for i in range(n):
            p = "layer%d.%d." % (stage + 1, i)
            stride = 2 if stage > 0 and i == 0 else 1
            layers += [_conv(p + "conv1", w, 3, stride=stride, padding=1),
                       {"name": p + "bn1", "type": "batchnorm2d"},
                       {"type": "relu"},
                       _conv(p + "conv2", w, 3, padding=1),
                       {"name": p + "bn2", "type": "batchnorm2d"}]
            shortcut = block_in
            if stride != 1 or w != in_width:
                layers += [_conv(p + "downsample.0", w, 1, stride=stride, frm=block_in),
                           {"name": p + "downsample.1", "type": "batchnorm2d"}]
                shortcut = p + "downsample.1"
            layers += [{"name": p + "add", "type": "add", "from": [p + "bn2", shortcut]},
                       {"name": p + "relu2", "type": "relu"}]
            block_in, in_width = p + "relu2", w
    return layers + [{"type": "adaptive_avgpool2d"}, {"type": "flatten"},
                     {"name": "fc", "type": "linear", "out": classes}]


def _lstm(hidden, num_layers, classes):
    lstm = {"name": "lstm", "type": "lstm", "hidden": hidden}
    if num_layers != 1:
        lstm["num_layers"] = num_layers
    return [lstm, {"type": "last"}, {"name": "fc", "type": "linear", "out": classes}]


# ---------------------------------------------------------------------------------------------
# The module


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


class Container(nn.Module):
    """A node of the module tree that only groups children, so `layer1.0.conv1` is
    model.layer1[0].conv1 (Sequential-style indexing for numeric names)."""

    def __getitem__(self, key):
        return self._modules[str(key)]


class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    """Joins channels of images [N, C, H, W], features of vectors [N, F] and of sequences
    [N, T, F] (the last dim, as shrink's concat does: the steps stay aligned)."""

    def forward(self, *xs):
        return torch.cat(xs, dim=2 if xs[0].dim() == 3 else 1)


class Last(nn.Module):
    def forward(self, x):
        return x[:, -1, :]


class LSTM(nn.LSTM):
    """nn.LSTM(batch_first=True) that returns only the output sequence [N, T, H]."""

    def forward(self, x):
        return super().forward(x)[0]


def _layer_module(spec, shape):
    """The PyTorch module for one layer whose (first) input has per-batch shape `shape`."""
    t = spec["type"]
    k = dict(LAYER_KEYS[t])
    k.update({key: v for key, v in spec.items() if key not in ("name", "type", "from")})
    if t == "linear":
        return nn.Linear(shape[-1], k["out"], bias=k["bias"])
    if t == "conv2d":
        return nn.Conv2d(shape[1], k["out"], _pair(k["kernel"]), stride=_pair(k["stride"]),
                         padding=_pair(k["padding"]), dilation=_pair(k["dilation"]),
                         groups=k["groups"], bias=k["bias"])
    if t in ("batchnorm2d", "batchnorm1d"):
        cls = nn.BatchNorm2d if t == "batchnorm2d" else nn.BatchNorm1d
        return cls(shape[1], eps=k["eps"], momentum=k["momentum"], affine=k["affine"])
    if t == "layernorm":
        return nn.LayerNorm(shape[-1], eps=k["eps"])
    if t == "relu":
        return nn.ReLU()
    if t == "relu6":
        return nn.ReLU6()
    if t == "sigmoid":
        return nn.Sigmoid()
    if t == "tanh":
        return nn.Tanh()
    if t == "silu":
        return nn.SiLU()
    if t == "gelu":
        return nn.GELU(approximate=k["approximate"])
    if t in ("maxpool2d", "avgpool2d"):
        kernel = _pair(k["kernel"])
        stride = kernel if k["stride"] is None else _pair(k["stride"])
        if t == "maxpool2d":
            return nn.MaxPool2d(kernel, stride=stride, padding=_pair(k["padding"]))
        return nn.AvgPool2d(kernel, stride=stride, padding=_pair(k["padding"]), count_include_pad=True)
    if t == "adaptive_avgpool2d":
        return nn.AdaptiveAvgPool2d(1)
    if t == "flatten":
        return nn.Flatten()
    if t == "dropout":
        return nn.Dropout(k["p"])
    if t == "add":
        return Add()
    if t == "concat":
        return Concat()
    if t == "embedding":
        return nn.Embedding(k["num"], k["dim"])
    if t == "lstm":
        return LSTM(shape[-1], k["hidden"], num_layers=k["num_layers"], bias=k["bias"], batch_first=True)
    if t == "last":
        return Last()
    raise AssertionError(t)


def _check_layer(i, spec):
    where = "model.layers[%d]%s" % (i, " (%s)" % spec["name"] if "name" in spec else "")
    t = spec.get("type")
    if t not in LAYER_KEYS:
        raise ValueError("%s: type %r is not one of %s" % (where, t, ", ".join(LAYER_KEYS)))
    allowed = set(LAYER_KEYS[t]) | {"name", "type", "from"}
    for key in spec:
        if key not in allowed:
            raise ValueError("%s: %s takes no key %r (allowed: %s)" % (where, t, key, ", ".join(sorted(allowed))))
    for key, default in LAYER_KEYS[t].items():
        if default is None and key not in spec and not (key == "stride" and t.endswith("pool2d")):
            raise ValueError("%s: %s needs %r" % (where, t, key))
    frm = spec.get("from")
    if t in MULTI_INPUT:
        if not isinstance(frm, list) or len(frm) < 2:
            raise ValueError("%s: %s needs from: [a, b, ...] (two or more layer names)" % (where, t))
    elif isinstance(frm, list) and len(frm) != 1:
        raise ValueError("%s: %s reads one input; from: lists %d" % (where, t, len(frm)))
    return where


class ShrinkModel(nn.Module):
    """The layer graph of a model section. Layers with tensors live in the module tree under their
    names; every layer (named or not) is a step of forward, in list order."""

    def __init__(self, section):
        super().__init__()
        self._section = section
        self._layer_specs = expand(section)
        self.input_shape = input_shape(section)
        self.classes = section.get("classes")
        ids = bool(self._layer_specs) and self._layer_specs[0]["type"] == "embedding"
        # One zero sample, pushed through the layers in eval mode (no batch statistics, no
        # dropout, no random numbers drawn), tells each layer its input size.
        x = torch.zeros([1] + self.input_shape, dtype=torch.int64 if ids else torch.float32)
        outs = {}
        self._steps = []  # (name or None, module, input names or None for "the previous output")
        names = set()
        for i, spec in enumerate(self._layer_specs):
            where = _check_layer(i, spec)
            name = spec.get("name")
            frm = spec.get("from")
            if isinstance(frm, str):
                frm = [frm]
            for f in frm or []:
                if f not in outs:
                    raise ValueError("%s: from: %r names no earlier named layer" % (where, f))
            inputs = [outs[f] for f in frm] if frm else [x]
            mod = _layer_module(spec, inputs[0].shape)
            mod.eval()
            if name is not None:
                if name in names:
                    raise ValueError("%s: name %r is used twice" % (where, name))
                names.add(name)
                if any(True for _ in mod.parameters()) or any(True for _ in mod.buffers()):
                    self._place(name, mod, where)
            with torch.no_grad():
                try:
                    x = mod(*inputs)
                except Exception as e:  # the shapes do not fit: say which layer
                    raise ValueError("%s: %s on input %s: %s" % (where, spec["type"],
                                     [list(t.shape[1:]) for t in inputs], e)) from None
            if name is not None:
                outs[name] = x
            self._steps.append((name, mod, frm))
        if x.dim() != 2 or (self.classes is not None and x.shape[1] != self.classes):
            raise ValueError("model: the last layer gives %s per sample, want [%s] (classes)"
                             % (list(x.shape[1:]), self.classes))
        self.train()

    def _place(self, name, mod, where):
        parts = name.split(".")
        if any(p == "" for p in parts):
            raise ValueError("%s: name %r has an empty path segment" % (where, name))
        node = self
        for p in parts[:-1]:
            child = node._modules.get(p)
            if child is None:
                child = Container()
                node.add_module(p, child)
            elif not isinstance(child, Container):
                raise ValueError("%s: %r lies inside layer %r, which holds tensors" % (where, name, p))
            node = child
        if parts[-1] in node._modules:
            raise ValueError("%s: %r is already a module path of other layers" % (where, name))
        try:
            node.add_module(parts[-1], mod)
        except KeyError as e:  # a name like "training" that nn.Module itself uses
            raise ValueError("%s: name %r cannot be a PyTorch module path: %s" % (where, name, e)) from None

    def train(self, mode=True):
        # Parameter-free steps are not in the module tree; they follow the model's mode too.
        super().train(mode)
        for _, mod, _ in self._steps:
            mod.train(mode)
        return self

    def factor_like(self, state):
        """Replace each layer that `state` holds factored (NAME.0.weight and NAME.1.weight, what
        shrink's lowrank stage writes) by the two smaller layers: a rank-k linear or conv (no
        bias) and a linear or 1x1 conv back to the layer's width, as nn.Sequential."""
        for i, (name, mod, frm) in enumerate(self._steps):
            if name is None or not isinstance(mod, (nn.Linear, nn.Conv2d)):
                continue
            w0, w1 = state.get(name + ".0.weight"), state.get(name + ".1.weight")
            if w0 is None or w1 is None:
                continue
            k = w0.shape[0]
            if isinstance(mod, nn.Linear):
                new = nn.Sequential(nn.Linear(mod.in_features, k, bias=False),
                                    nn.Linear(k, mod.out_features, bias=mod.bias is not None))
            else:
                new = nn.Sequential(nn.Conv2d(mod.in_channels, k, mod.kernel_size, mod.stride, mod.padding,
                                              mod.dilation, mod.groups, bias=False),
                                    nn.Conv2d(k, mod.out_channels, 1, bias=mod.bias is not None))
            parent, _, leaf = name.rpartition(".")
            (self.get_submodule(parent) if parent else self)._modules[leaf] = new
            self._steps[i] = (name, new, frm)

    def trace(self, x):
        """Every layer's output, in list order (forward's last entry is the logits)."""
        outs, trace = {}, []
        for name, mod, frm in self._steps:
            x = mod(*[outs[f] for f in frm]) if frm else mod(x)
            if name is not None:
                outs[name] = x
            trace.append(x)
        return trace

    def forward(self, x):
        return self.trace(x)[-1]


def input_shape(section):
    """One sample's shape: `input`, or what the v1 presets imply (mlp: [inputs]; lenet5:
    [1, 28, 28]). Other models take theirs from the data, which the builder does not see."""
    if "input" in section:
        return list(section["input"])
    if section.get("arch") == "mlp" and "inputs" in section:
        return [section["inputs"]]
    if section.get("arch") == "lenet5":
        return [1, 28, 28]
    raise ValueError("model: input (one sample's shape) is needed to build the PyTorch module")


def build(section):
    """A PyTorch module for a shrink model section (a dict: the recipe's `model:` as JSON).
    It needs `input`; `classes` is checked against the last layer when present."""
    return ShrinkModel(section)
