"""Checks of the reference builder against independently written PyTorch models.

    /usr/bin/python3 -m unittest discover -s tools/torchref -v
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

torch.set_num_threads(1)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, written out (torchvision is not installed)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)


class CifarResNet(nn.Module):
    def __init__(self, depth, width, cin, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(cin, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        c = width
        for s in range(3):
            w = width << s
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(c, w, 2 if s > 0 and i == 0 else 1))
                c = w
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def perturb_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.3, generator=gen)


class TestResNet(unittest.TestCase):
    def test_matches_torchvision_style(self):
        for depth, width, inp in [(8, 4, [1, 16, 16]), (14, 3, [3, 12, 12]), (20, 2, [1, 9, 9])]:
            with self.subTest(depth=depth, width=width):
                torch.manual_seed(1)
                ref = CifarResNet(depth, width, inp[0], 5)
                perturb_bn(ref, torch.Generator().manual_seed(2))
                got = shrinkmodel.build({"arch": "resnet", "depth": depth, "width": width,
                                         "input": inp, "classes": 5})
                self.assertEqual(list(ref.state_dict()), list(got.state_dict()))
                got.load_state_dict(ref.state_dict(), strict=True)
                x = torch.randn([4] + inp)
                for train in (False, True):
                    ref.train(train)
                    got.train(train)
                    torch.testing.assert_close(got(x), ref(x), rtol=1e-5, atol=1e-5)
                for k, v in ref.state_dict().items():
                    torch.testing.assert_close(got.state_dict()[k], v, msg=k)
                self.assertIs(got.layer2[0].downsample[0], got.get_submodule("layer2.0.downsample.0"))


class TestV1Fixtures(unittest.TestCase):
    """The v1 fixtures of testdata/torch were made by hand-written modules."""

    def check(self, file, section):
        t, _ = stlite.load(os.path.join(ROOT, "testdata", "torch", file))
        x, want = torch.from_numpy(t.pop("x")), torch.from_numpy(t.pop("logits"))
        m = shrinkmodel.build(section)
        m.load_state_dict({k: torch.from_numpy(v) for k, v in t.items()}, strict=True)
        with torch.no_grad():
            torch.testing.assert_close(m.eval()(x), want, rtol=1e-5, atol=1e-5)

    def test_mlp(self):
        self.check("mlp.safetensors", {"arch": "mlp", "inputs": 784, "input": [784], "classes": 10})

    def test_lenet5(self):
        self.check("lenet5.safetensors", {"arch": "lenet5", "input": [1, 28, 28], "classes": 10})


class TestFactorLike(unittest.TestCase):
    """A lowrank checkpoint (NAME.0.weight, NAME.1.weight, NAME.1.bias) loads strictly and
    computes W = W1 @ W0."""

    def test_linear_and_conv(self):
        torch.manual_seed(5)
        section = {"input": [2, 6, 6], "classes": 3, "layers": [
            {"name": "conv", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "stride": 2},
            {"type": "relu"}, {"type": "flatten"},
            {"name": "fc", "type": "linear", "out": 3}]}
        dense = shrinkmodel.build(section)
        sd = dense.state_dict()
        w0c, w1c = torch.randn(2, 2, 3, 3), torch.randn(4, 2, 1, 1)
        w0f, w1f = torch.randn(5, 36), torch.randn(3, 5)
        factored = {"conv.0.weight": w0c, "conv.1.weight": w1c, "conv.1.bias": sd["conv.bias"],
                    "fc.0.weight": w0f, "fc.1.weight": w1f, "fc.1.bias": sd["fc.bias"]}
        m = shrinkmodel.build(section)
        m.factor_like(factored)
        m.load_state_dict(factored, strict=True)
        dense.load_state_dict({
            "conv.weight": torch.einsum("ok,kihw->oihw", w1c[:, :, 0, 0], w0c), "conv.bias": sd["conv.bias"],
            "fc.weight": w1f @ w0f, "fc.bias": sd["fc.bias"]})
        x = torch.randn(3, 2, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(m.eval()(x), dense.eval()(x), rtol=1e-5, atol=1e-5)


class TestConcat(unittest.TestCase):
    """concat joins what shrink's concat joins: channels of images, features of vectors and of
    sequence steps."""

    def test_joined_dim(self):
        cases = [
            ([2, 5, 5], {"type": "conv2d", "kernel": 1}, [2 + 3, 5, 5]),
            ([4], {"type": "linear"}, [4 + 3]),
            ([6, 4], {"type": "linear"}, [6, 4 + 3]),
        ]
        for shape, branch, want in cases:
            with self.subTest(shape=shape):
                b = dict(branch, name="b", out=3, **{"from": "x"})
                m = shrinkmodel.build({"input": shape, "layers": [
                    {"name": "x", "type": "relu"}, b, {"type": "concat", "from": ["x", "b"]},
                    {"type": "flatten"}, {"name": "fc", "type": "linear", "out": 2}]})
                x = torch.randn([3] + shape)
                with torch.no_grad():
                    joined = m.eval().trace(x)[2]
                self.assertEqual(list(joined.shape[1:]), want)
                if len(shape) == 2:  # each step keeps its own features first
                    torch.testing.assert_close(joined[:, :, :4], x.relu())


class TestErrors(unittest.TestCase):
    def test_errors_name_the_layer(self):
        cases = [
            ({"input": [4], "classes": 2, "layers": [{"name": "a", "type": "linear"}]}, "needs 'out'"),
            ({"input": [4], "classes": 2, "layers": [{"type": "linar", "out": 2}]}, "type 'linar'"),
            ({"input": [4], "classes": 2, "layers": [{"name": "a", "type": "linear", "out": 2, "k": 1}]}, "no key 'k'"),
            ({"input": [4], "classes": 3, "layers": [{"name": "a", "type": "linear", "out": 2}]}, "want [3]"),
            ({"input": [4], "classes": 2, "layers": [{"name": "a", "type": "linear", "out": 2},
                                                      {"type": "add", "from": ["a", "b"]}]}, "'b' names no"),
            ({"input": [4], "classes": 2, "layers": [{"name": "a", "type": "linear", "out": 2},
                                                      {"name": "a", "type": "linear", "out": 2}]}, "used twice"),
            ({"input": [4], "classes": 2, "layers": [{"name": "a", "type": "conv2d", "out": 2, "kernel": 3}]}, "layers[0] (a)"),
            ({"arch": "resnet", "depth": 10, "input": [1, 8, 8], "classes": 2}, "6n+2"),
        ]
        for section, want in cases:
            with self.subTest(want=want):
                with self.assertRaises(ValueError) as cm:
                    shrinkmodel.build(section)
                self.assertIn(want, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
