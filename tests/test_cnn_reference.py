"""Reference checks for the CNN assignments A3-A6 (LeNet-5, AlexNet/VGG, NiN/GoogLeNet, ResNet-18).

The exact parameter and multiply-add counts the assignments teach are computed here from
reference models written directly with torch (nothing is imported from the notebooks), and then

* compared with the constants below, which the notebooks' hidden tests also use;
* looked up in the notebooks' hidden-test cells, so that a notebook and this file cannot drift apart;
* compared with what the instructor notebooks record when they run (``notebook_records``).

A change that breaks a taught count therefore fails here, with the name of the count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from tools import markers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "A3": "solutions/A3_lenet5/A3_lenet5.ipynb",
    "A4": "solutions/A4_alexnet_vgg/A4_alexnet_vgg.ipynb",
    "A5": "solutions/A5_nin_googlenet/A5_nin_googlenet.ipynb",
    "A6": "solutions/A6_resnet18/A6_resnet18.ipynb",
}

# name -> (exact value, notebook whose hidden tests use it)
EXPECTED = {
    "lenet5_params": (61_706, "A3"),
    "lenet5_c5_params": (48_120, "A3"),
    "vgg13_params": (9_935_434, "A4"),
    "vgg13_bn_params": (9_938_378, "A4"),
    "alexnet_cifar_params": (7_706_442, "A4"),
    "alexnet_cifar_bn_params": (7_707_594, "A4"),
    "vgg13_half_params": (2_486_570, "A4"),
    "alexnet_cifar_bn_half_params": (1_931_754, "A4"),
    "vgg13_bn_eighth_params": (156_802, "A4"),
    "nin_params": (968_394, "A5"),
    "nin_macs": (222_486_528, "A5"),
    "inception_example_naive_macs": (854_196_224, "A5"),
    "inception_example_bottleneck_macs": (271_351_808, "A5"),
    "inception_example_bottleneck_params": (347_328, "A5"),
    "googlenet_params": (5_983_402, "A5"),
    "googlenet_no_bottleneck_params": (24_289_322, "A5"),
    "googlenet_macs": (391_620_608, "A5"),
    "googlenet_no_bottleneck_macs": (1_320_232_960, "A5"),
    "resnet18_cifar_params": (11_173_962, "A6"),
    "resnet18_preact_params": (11_172_170, "A6"),
    "resnet18_width8_params": (176_402, "A6"),
    "resnet18_preact_width8_params": (176_178, "A6"),
    "resnet18_cifar_macs": (555_422_720, "A6"),
    "basic_block_64_128_params": (230_144, "A6"),
}


# --------------------------------------------------------------------------- reference models
def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    total = [0]

    def hook(m, _inputs, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += out[0].numel() * m.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return total[0]


def cbr(c_in: int, c_out: int, k: int, bn: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    return layers + [nn.ReLU()]


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def vgg13(bn: bool = False, width: float = 1.0) -> nn.Module:
    w = lambda c: max(1, round(c * width))  # noqa: E731
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += cbr(c, w(v), 3, bn)
            c = w(v)
    h = w(512)
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(c, h),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(h, 10),
    )


def alexnet_cifar(bn: bool = False, width: float = 1.0) -> nn.Module:
    c1, c2, c3, c4, c5, h = (max(1, round(c * width)) for c in (64, 192, 384, 256, 256, 1024))
    return nn.Sequential(
        *cbr(3, c1, 5, bn),
        nn.MaxPool2d(2),
        *cbr(c1, c2, 5, bn),
        nn.MaxPool2d(2),
        *cbr(c2, c3, 3, bn),
        *cbr(c3, c4, 3, bn),
        *cbr(c4, c5, 3, bn),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(),
        nn.Linear(c5 * 16, h),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Linear(h, 10),
    )


def nin() -> nn.Module:
    def block(c_in, chans, k):
        layers, c = [], c_in
        for i, o in enumerate(chans):
            layers += cbr(c, o, k if i == 0 else 1)
            c = o
        return layers

    return nn.Sequential(
        *block(3, (192, 160, 96), 5),
        nn.MaxPool2d(3, 2, 1),
        *block(96, (192, 192, 192), 5),
        nn.MaxPool2d(3, 2, 1),
        *block(192, (192, 192), 3),
        nn.Conv2d(192, 10, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


class Inception(nn.Module):
    def __init__(self, c_in, c1, c3r, c3, c5r, c5, pool_proj):
        super().__init__()
        self.b1 = nn.Sequential(*cbr(c_in, c1, 1))
        self.b2 = nn.Sequential(*(cbr(c_in, c3r, 1) if c3r else []), *cbr(c3r or c_in, c3, 3))
        self.b3 = nn.Sequential(*(cbr(c_in, c5r, 1) if c5r else []), *cbr(c5r or c_in, c5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), *(cbr(c_in, pool_proj, 1) if pool_proj else []))
        self.out_channels = c1 + c3 + c5 + (pool_proj or c_in)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


GOOGLENET = [
    (64, 96, 128, 16, 32, 32),
    (128, 128, 192, 32, 96, 64),
    "M",
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
    "M",
    (256, 160, 320, 32, 128, 128),
    (384, 192, 384, 48, 128, 128),
]


def googlenet_cifar(bottleneck: bool = True) -> nn.Module:
    layers, c = [*cbr(3, 64, 3), nn.MaxPool2d(3, 2, 1), *cbr(64, 64, 1), *cbr(64, 192, 3)], 192
    for cfg in GOOGLENET:
        if cfg == "M":
            layers.append(nn.MaxPool2d(3, 2, 1))
            continue
        c1, c3r, c3, c5r, c5, pp = cfg
        module = Inception(c, c1, c3r if bottleneck else None, c3, c5r if bottleneck else None, c5, pp)
        layers.append(module)
        c = module.out_channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(c, 10))


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride=1, preact=False):
        super().__init__()
        self.preact = preact
        self.bn1 = nn.BatchNorm2d(c_in if preact else c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            proj = [nn.Conv2d(c_in, c_out, 1, stride, bias=False)] + ([] if preact else [nn.BatchNorm2d(c_out)])
            self.shortcut = nn.Sequential(*proj)

    def forward(self, x):
        if self.preact:
            a = torch.relu(self.bn1(x))
            skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(a)
            return self.conv2(torch.relu(self.bn2(self.conv1(a)))) + skip
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, width=64, preact=False):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width if not preact else 8 * width)  # preact: the final BN instead
        c, stages = width, []
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            stages += [Block(c, width * mult, stride, preact), Block(width * mult, width * mult, 1, preact)]
            c = width * mult
        self.blocks = nn.Sequential(*stages)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.conv1(x)
        if not self.preact:
            x = torch.relu(self.bn1(x))
        x = self.blocks(x)
        if self.preact:
            x = torch.relu(self.bn1(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def reference_values() -> dict[str, int]:
    return {
        "lenet5_params": n_params(lenet5()),
        "lenet5_c5_params": n_params(nn.Conv2d(16, 120, 5)),
        "vgg13_params": n_params(vgg13()),
        "vgg13_bn_params": n_params(vgg13(bn=True)),
        "alexnet_cifar_params": n_params(alexnet_cifar()),
        "alexnet_cifar_bn_params": n_params(alexnet_cifar(bn=True)),
        "vgg13_half_params": n_params(vgg13(width=0.5)),
        "alexnet_cifar_bn_half_params": n_params(alexnet_cifar(bn=True, width=0.5)),
        "vgg13_bn_eighth_params": n_params(vgg13(bn=True, width=0.125)),
        "nin_params": n_params(nin()),
        "nin_macs": macs(nin(), (3, 32, 32)),
        "inception_example_naive_macs": macs(Inception(256, 128, None, 192, None, 96, None), (256, 28, 28)),
        "inception_example_bottleneck_macs": macs(Inception(256, 128, 64, 192, 64, 96, 64), (256, 28, 28)),
        "inception_example_bottleneck_params": n_params(Inception(256, 128, 64, 192, 64, 96, 64)),
        "googlenet_params": n_params(googlenet_cifar()),
        "googlenet_no_bottleneck_params": n_params(googlenet_cifar(bottleneck=False)),
        "googlenet_macs": macs(googlenet_cifar(), (3, 32, 32)),
        "googlenet_no_bottleneck_macs": macs(googlenet_cifar(bottleneck=False), (3, 32, 32)),
        "resnet18_cifar_params": n_params(ResNet18()),
        "resnet18_preact_params": n_params(ResNet18(preact=True)),
        "resnet18_width8_params": n_params(ResNet18(width=8)),
        "resnet18_preact_width8_params": n_params(ResNet18(width=8, preact=True)),
        "resnet18_cifar_macs": macs(ResNet18(), (3, 32, 32)),
        "basic_block_64_128_params": n_params(Block(64, 128, 2)),
    }


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return reference_values()


def load_notebook(key: str) -> dict:
    return json.loads((ROOT / NOTEBOOKS[key]).read_text())


def grade_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]


# --------------------------------------------------------------------------- the counts themselves
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_count(reference, name):
    assert reference[name] == EXPECTED[name][0], f"{name}: reference model gives {reference[name]:,}"


def test_count_relations(reference):
    # BatchNorm adds 2 parameters per conv channel and removes the conv bias (1 per channel)
    channels = 64 * 2 + 128 * 2 + 256 * 2 + 512 * 4
    assert reference["vgg13_bn_params"] - reference["vgg13_params"] == channels
    # the lecture's numbers: naive Inception ~854M MACs; LeNet's S4 -> C5 weights 16*5*5*120
    assert round(reference["inception_example_naive_macs"] / 1e6) == 854
    assert nn.Conv2d(16, 120, 5).weight.numel() == 48_000
    assert Inception(256, 128, None, 192, None, 96, None).out_channels == 672


def test_resnet18_vs_torchvision():
    tv = torchvision.models.resnet18(weights=None, num_classes=10)
    assert n_params(tv) - EXPECTED["resnet18_cifar_params"][0] == 3 * 64 * (7 * 7 - 3 * 3) == 7_680
    assert macs(tv, (3, 32, 32)) == 37_016_576
    assert macs(tv, (3, 224, 224)) == 1_813_566_464  # the well-known ~1.8 GMACs of ResNet-18


# --------------------------------------------------------------------------- notebooks use the same numbers
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hidden_tests_use_the_reference_number(name):
    value, key = EXPECTED[name]
    sources = "\n".join("".join(c["source"]) for c in grade_cells(load_notebook(key)))
    hidden = "\n".join(ln.text for ln in markers.classify(sources) if ln.region == markers.HIDDEN)
    assert re.search(rf"(?<![\d_]){value}(?![\d_])", hidden), f"{name}={value} is not checked by {key}'s hidden tests"


@pytest.mark.parametrize("key", sorted(NOTEBOOKS))
def test_nbgrader_metadata(key):
    nb = load_notebook(key)
    ids, auto, manual = [], 0, 0
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader")
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "store notebooks without outputs"
        if not meta:
            continue
        assert meta["schema_version"] == 3 and meta["task"] is False
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", meta["grade_id"])
        ids.append(meta["grade_id"])
        source = "".join(cell["source"])
        if meta["grade"]:
            assert isinstance(meta["points"], int) and meta["points"] > 0
            if meta["solution"]:
                assert cell["cell_type"] == "markdown", "written answers are markdown cells"
                manual += meta["points"]
            else:
                assert cell["cell_type"] == "code" and meta["locked"], "test cells are locked code cells"
                assert "### BEGIN HIDDEN TESTS" in source and "### END HIDDEN TESTS" in source
                assert "Visible tests passed." in source
                assert f"({meta['points']} points" in source.splitlines()[0], "first line states the points"
                auto += meta["points"]
        elif meta["solution"]:
            assert "### BEGIN SOLUTION" in source and "### END SOLUTION" in source
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    assert manual > 0 and auto > 0
    intro = next("".join(c["source"]) for c in nb["cells"] if "How this assignment is graded" in "".join(c["source"]))
    stated = re.search(r"\*\*Total: (\d+) points\*\*: (\d+) points from autograded test cells and (\d+) points", intro)
    assert stated, "the grading section states the total"
    assert tuple(int(g) for g in stated.groups()) == (auto + manual, auto, manual)
    headings = re.findall(
        r"^## Part \d+ · .*?\((\d+) points", "\n".join("".join(c["source"]) for c in nb["cells"]), re.M
    )
    assert sum(int(h) for h in headings) == auto + manual, "the part headings add up to the total"


# --------------------------------------------------------------------------- what the notebooks record
RECORDED = {
    "A3": {"lenet5_params": "lenet5_params", "lenet5_c5_weights": 48_000},
    "A4": {
        "vgg13_params": "vgg13_params",
        "vgg13_bn_params": "vgg13_bn_params",
        "alexnet_params": "alexnet_cifar_params",
        "alexnet_bn_params": "alexnet_cifar_bn_params",
    },
    "A5": {
        "nin_params": "nin_params",
        "nin_macs": "nin_macs",
        "example_naive_macs": "inception_example_naive_macs",
        "example_bottleneck_macs": "inception_example_bottleneck_macs",
        "example_naive_depth": 672,
        "example_bottleneck_depth": 480,
        "googlenet_bottleneck_params": "googlenet_params",
        "googlenet_no_bottleneck_params": "googlenet_no_bottleneck_params",
        "googlenet_bottleneck_macs": "googlenet_macs",
        "googlenet_no_bottleneck_macs": "googlenet_no_bottleneck_macs",
        "conv1x1_params": 96 * 192 + 96,
        "nin_gap_head_params": 192 * 10 + 10,
        "nin_fc_head_params": 192 * 8 * 8 * 10 + 10,
    },
    "A6": {
        "resnet18_cifar_params": "resnet18_cifar_params",
        "resnet18_preact_params": "resnet18_preact_params",
        "resnet18_torchvision_params": 11_181_642,
        "resnet18_param_difference": 7_680,
        "resnet18_cifar_macs": "resnet18_cifar_macs",
        "resnet18_torchvision_macs_32": 37_016_576,
        "layer4_map_torchvision_32": [1, 1],
        "layer4_map_cifar_32": [4, 4],
    },
}


@pytest.mark.parametrize("key", sorted(NOTEBOOKS))
def test_notebook_records(notebook_records, key):
    records = notebook_records(NOTEBOOKS[key])
    for record_key, expected in RECORDED[key].items():
        value = EXPECTED[expected][0] if isinstance(expected, str) else expected
        assert records[record_key] == value, f"{key} recorded {record_key}={records[record_key]}, expected {value}"


def test_taught_phenomena(notebook_records):
    a3 = notebook_records(NOTEBOOKS["A3"])
    assert abs(a3["lenet5_initial_loss"] - 2.302585) < 0.1  # ln 10 at initialisation
    assert 0.1 < a3["lenet5_test_acc"] <= 1.0
    a4 = notebook_records(NOTEBOOKS["A4"])
    default, kaiming, small = a4["relu_stds_default"], a4["relu_stds_kaiming"], a4["relu_stds_small"]
    assert len(default) == len(kaiming) == len(small) == 12
    assert small[9] / small[0] < 1e-4, "the too-small Gaussian makes the signal vanish"
    assert default[9] / default[0] < 0.1, "PyTorch's default init shrinks the signal with depth"
    assert 0.2 < kaiming[9] / kaiming[0] < 5, "Kaiming init keeps the signal's scale"
    for scheme in ("default", "kaiming", "small"):
        bn = a4[f"relu_stds_{scheme}_bn"]
        assert 0.5 < bn[9] / bn[0] < 2, "with BatchNorm the conv activations keep their scale"
    assert a4["conv_grad_norms_small"][0] < 1e-4 * a4["conv_grad_norms_kaiming"][0]
    a5 = notebook_records(NOTEBOOKS["A5"])
    assert a5["googlenet_param_ratio"] > 4 and a5["googlenet_mac_ratio"] > 3
    assert all(
        w > b for w, b in zip(a5["googlenet_module_macs"]["no_bottleneck"], a5["googlenet_module_macs"]["bottleneck"])
    )
    a6 = notebook_records(NOTEBOOKS["A6"])
    assert a6["resnet18_torchvision_macs_224"] == 1_813_566_464
    assert 0.0 <= a6["resnet18_test_acc"] <= 1.0
