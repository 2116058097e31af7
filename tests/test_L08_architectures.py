"""Lecture L8 (CNN architectures tour): counting parameters and multiply-adds, the idea blocks, and the
numbers the notebook teaches.

The notebook's own helpers live in cells tagged ``scratch`` (``conv_cost``, ``count_params``, ``count_macs``,
``Residual``, ``wrn_cost``, ``bottleneck_branch``, ``DenseLayer``, ``SqueezeExcite``, ``StochasticDepth``).
They are executed here and checked against hand formulas, against torchvision's reference models and blocks,
and against PyTorch's own operation counter, independently of the asserts the notebook makes. The last group
reads the values the notebook recorded (``notebook_records``) and asserts what its prose claims.

Large torchvision models are built on the meta device (shapes only), which gives exactly the same parameter
and multiply-add counts as a real build (checked once on ResNet-18) in a fraction of the time.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.densenet import _DenseLayer
from torchvision.models.resnet import Bottleneck

from conftest import load_scratch_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "lectures/L08_cnn_architectures.ipynb"
NAMES = (
    "conv_output_size",
    "conv_cost",
    "count_params",
    "count_macs",
    "Residual",
    "wrn_cost",
    "bottleneck_branch",
    "DenseLayer",
    "dense_layer_params",
    "SqueezeExcite",
    "se_params",
    "StochasticDepth",
)

# Parameter counts of torchvision's reference models (also listed in torchvision's model documentation).
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,  # aux_logits=False, as torchvision builds it for evaluation
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "densenet121": 7_978_856,
}


def build(name: str) -> nn.Module:
    kwargs = dict(aux_logits=False, init_weights=False) if name == "googlenet" else {}
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, **kwargs)


@pytest.fixture(scope="module")
def l8() -> dict:
    return load_scratch_cells(NOTEBOOK, required=tuple(NAMES), preload={"math": math, "torch": torch, "nn": nn})


# ----------------------------------------------------------------------------------------------
# Parameter counts and multiply-adds of torchvision's reference models
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_equal_torchvision(l8, name):
    model = build(name)
    assert l8["count_params"](model) == TORCHVISION_PARAMS[name]
    # torchvision's own metadata agrees (read from the weights enum; nothing is downloaded)
    assert torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"] == TORCHVISION_PARAMS[name]


def test_googlenet_auxiliary_heads_are_extra_parameters(l8):
    with torch.device("meta"):
        with_aux = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    heads = l8["count_params"](with_aux.aux1) + l8["count_params"](with_aux.aux2)
    assert l8["count_params"](with_aux) == TORCHVISION_PARAMS["googlenet"] + heads == 13_004_888


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_count_macs_matches_torchvision_documentation(l8, name):
    macs = l8["count_macs"](build(name), (1, 3, 224, 224))
    documented = torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"]  # GMACs, 3 decimals
    assert macs / 1e9 == pytest.approx(documented, abs=6e-4)


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "googlenet", "densenet121", "resnext50_32x4d"])
def test_count_macs_is_half_of_pytorch_flop_counter(l8, name):
    model = build(name).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(2, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() == 2 * l8["count_macs"](model, (2, 3, 224, 224))


def test_meta_build_counts_like_a_real_build(l8):
    real = torchvision.models.resnet18(weights=None)
    meta = build("resnet18")
    assert l8["count_params"](real) == l8["count_params"](meta)
    assert l8["count_macs"](real, (1, 3, 64, 64)) == l8["count_macs"](meta, (1, 3, 64, 64))
    assert real.training, "count_macs must restore the training mode"


# ----------------------------------------------------------------------------------------------
# The hand formulas and the hook-based counter on single layers
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "c_in,c_out,k,stride,padding,groups,size",
    [
        (3, 64, 11, 4, 2, 1, 224),
        (3, 96, 7, 2, 1, 1, 224),
        (64, 64, 3, 1, 1, 1, 56),
        (128, 128, 3, 1, 1, 32, 28),
        (256, 512, 1, 2, 0, 1, 14),
        (16, 48, 5, 1, 2, 4, 13),
        (6, 6, 3, 1, 1, 6, 9),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_counts_match_hand_formula(l8, c_in, c_out, k, stride, padding, groups, size, bias):
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups, bias=bias)
    side = l8["conv_output_size"](size, k, stride, padding)
    assert side == conv(torch.zeros(1, c_in, size, size)).shape[-1]
    params, macs = l8["conv_cost"](c_in, c_out, k, side, groups=groups, bias=bias)
    assert params == l8["count_params"](conv) == sum(p.numel() for p in conv.parameters())
    assert macs == l8["count_macs"](conv, (1, c_in, size, size))
    assert l8["count_macs"](conv, (3, c_in, size, size)) == 3 * macs  # MACs are per batch
    assert macs == c_out * side * side * (c_in // groups) * k * k


def test_alexnet_first_layer_by_hand(l8):
    conv = nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2)
    assert l8["conv_cost"](3, 64, 11, 55) == (23_296, 70_276_800)
    assert l8["count_macs"](conv, (1, 3, 224, 224)) == 55 * 55 * 64 * 3 * 11 * 11


def test_linear_layers_and_per_layer_counts(l8):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 3))
    per_layer = l8["count_macs"](model, (5, 3, 2, 2), per_layer=True)
    assert per_layer == {"1": 5 * 12 * 7, "3": 5 * 7 * 3}
    assert l8["conv_cost"](12, 7, 1, 1) == (12 * 7 + 7, 12 * 7)
    assert l8["count_params"](model) == 12 * 7 + 7 + 7 * 3 + 3


def test_pooling_output_size_with_ceil_mode(l8):
    size = l8["conv_output_size"]
    for n in (13, 26, 55, 110, 111):
        pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        assert size(n, 3, 2, ceil_mode=True) == pool(torch.zeros(1, 1, n, n)).shape[-1]
        assert size(n, 3, 2) == nn.MaxPool2d(3, 2)(torch.zeros(1, 1, n, n)).shape[-1]


def test_bad_inputs_raise_helpful_errors(l8):
    with pytest.raises(ValueError, match="groups"):
        l8["conv_cost"](10, 16, 3, 8, groups=4)
    with pytest.raises(ValueError, match="positive integer"):
        l8["conv_cost"](0, 16, 3, 8)
    with pytest.raises(ValueError, match="does not fit"):
        l8["conv_output_size"](3, 5)
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match="batch size"):
        l8["count_macs"](conv, (32,))
    with pytest.raises(ValueError, match="batch size"):
        l8["count_macs"](conv, (1, 3, 32.0, 32))
    with pytest.raises(ValueError, match="batch size"):
        l8["count_macs"](conv, "1,3,32,32")
    with pytest.raises(ValueError, match="cannot run"):
        l8["count_macs"](conv, (1, 1, 32, 32))  # wrong number of channels
    with pytest.raises(ValueError, match="no nn.Conv2d or nn.Linear"):
        l8["count_macs"](nn.Sequential(nn.ReLU()), (1, 3, 8, 8))
    with pytest.raises(TypeError):
        l8["count_params"]([nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="6n"):
        l8["wrn_cost"](27, 10)
    with pytest.raises(ValueError):
        l8["SqueezeExcite"](8, reduction=16)
    with pytest.raises(ValueError, match="p_drop"):
        l8["StochasticDepth"](nn.Identity(), 1.0)


# ----------------------------------------------------------------------------------------------
# The idea blocks
# ----------------------------------------------------------------------------------------------
def test_residual_wrapper(l8):
    branch = nn.Linear(5, 5)
    x = torch.randn(3, 5)
    assert torch.allclose(l8["Residual"](branch)(x), x + branch(x))


@pytest.mark.parametrize("channels,reduction", [(64, 16), (256, 16), (2048, 16), (96, 4), (50, 8)])
def test_squeeze_excite_shape_params_and_torchvision(l8, channels, reduction):
    torch.manual_seed(channels)
    se = l8["SqueezeExcite"](channels, reduction)
    x = torch.randn(2, channels, 5, 7)
    assert se(x).shape == x.shape
    hidden = channels // reduction
    assert l8["count_params"](se) == l8["se_params"](channels, reduction) == 2 * channels * hidden + hidden + channels
    if channels % reduction == 0:
        assert l8["se_params"](channels, reduction) == 2 * channels**2 // reduction + channels // reduction + channels
    reference = torchvision.ops.SqueezeExcitation(channels, hidden)
    with torch.no_grad():
        reference.fc1.weight.copy_(se.fc1.weight[:, :, None, None])
        reference.fc1.bias.copy_(se.fc1.bias)
        reference.fc2.weight.copy_(se.fc2.weight[:, :, None, None])
        reference.fc2.bias.copy_(se.fc2.bias)
        assert torch.allclose(se(x), reference(x), atol=1e-6)
    # every channel is only rescaled, by a factor in (0, 1)
    scale = se(x) / x
    assert torch.all((scale > 0) & (scale < 1))
    assert torch.allclose(scale, scale[:, :, :1, :1].expand_as(scale), atol=1e-5)


def test_se_resnet50_parameter_count(l8):
    with torch.device("meta"):
        model = torchvision.models.resnet50(weights=None)
        for block in model.modules():
            if isinstance(block, Bottleneck):
                block.bn3 = nn.Sequential(block.bn3, l8["SqueezeExcite"](block.bn3.num_features, 16))
    blocks = {256: 3, 512: 4, 1024: 6, 2048: 3}  # output channels -> bottlenecks per stage
    expected = TORCHVISION_PARAMS["resnet50"] + sum(n * l8["se_params"](c, 16) for c, n in blocks.items())
    assert l8["count_params"](model) == expected
    assert expected == pytest.approx(28.1e6, abs=0.05e6)  # the SENet paper's 28.1M


@pytest.mark.parametrize("c_in,growth,bn_size", [(64, 32, 4), (128, 32, 4), (200, 12, 4), (24, 16, 2)])
def test_dense_layer_matches_torchvision(l8, c_in, growth, bn_size):
    torch.manual_seed(c_in)
    ours = l8["DenseLayer"](c_in, growth, bn_size).eval()
    theirs = _DenseLayer(c_in, growth_rate=growth, bn_size=bn_size, drop_rate=0).eval()
    assert l8["count_params"](ours) == l8["count_params"](theirs) == l8["dense_layer_params"](c_in, growth, bn_size)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.5, 0.5)
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
            a.copy_(b)
        x = torch.randn(2, c_in, 6, 6)
        out = ours(x)
        assert out.shape == (2, c_in + growth, 6, 6)
        assert torch.equal(out[:, :c_in], x)  # concatenation keeps the input untouched
        assert torch.allclose(out[:, c_in:], theirs(x), atol=1e-5)


def test_dense_block_channel_growth(l8):
    block = nn.Sequential(*[l8["DenseLayer"](64 + i * 32, 32) for i in range(6)])
    assert block(torch.randn(1, 64, 8, 8)).shape[1] == 64 + 6 * 32 == 256


@pytest.mark.parametrize("groups", [1, 2, 4, 8, 32, 128])
def test_grouped_convolution_parameter_saving(l8, groups):
    conv = nn.Conv2d(128, 128, 3, padding=1, groups=groups, bias=False)
    assert l8["count_params"](conv) == 128 * 128 * 9 // groups
    assert l8["count_macs"](conv, (1, 128, 8, 8)) == 8 * 8 * 128 * 128 * 9 // groups


@pytest.mark.parametrize(
    "inplanes,planes,groups,base_width", [(256, 64, 32, 4), (512, 128, 32, 4), (256, 64, 1, 64), (1024, 256, 32, 8)]
)
def test_bottleneck_branch_matches_torchvision_block(l8, inplanes, planes, groups, base_width):
    torch.manual_seed(planes + groups)
    reference = Bottleneck(inplanes, planes, groups=groups, base_width=base_width).eval()
    width = int(planes * (base_width / 64.0)) * groups
    ours = l8["bottleneck_branch"](inplanes, width, groups).eval()
    assert l8["count_params"](ours) == l8["count_params"](reference)
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2)
        for a, b in zip(ours.state_dict().values(), reference.state_dict().values()):
            a.copy_(b)
        x = torch.randn(2, inplanes, 7, 7)
        assert torch.allclose(torch.relu(x + ours(x)), reference(x), atol=1e-4)


def test_resnext_and_resnet_bottlenecks_cost_about_the_same(l8):
    resnext = l8["count_params"](l8["bottleneck_branch"](256, 128, 32))
    resnet = l8["count_params"](l8["bottleneck_branch"](256, 64, 1))
    assert abs(resnext - resnet) / resnet < 0.02


def test_stochastic_depth_is_identity_at_eval(l8):
    torch.manual_seed(0)
    branch = nn.Sequential(nn.Linear(6, 6), nn.Tanh())
    block = l8["StochasticDepth"](branch, p_drop=0.5).eval()
    x = torch.randn(4, 6)
    with torch.no_grad():
        full = x + branch(x)
        for _ in range(50):
            assert torch.equal(block(x), full)
        reference = torchvision.ops.StochasticDepth(0.5, "batch").eval()
        assert torch.equal(block(x), x + reference(branch(x)))


def test_stochastic_depth_in_training(l8):
    torch.manual_seed(1)
    branch = nn.Sequential(nn.Linear(6, 6), nn.Tanh())
    p = 0.25
    block = l8["StochasticDepth"](branch, p_drop=p).train()
    x = torch.randn(4, 6)
    n, dropped = 4000, 0
    with torch.no_grad():
        kept_value = x + branch(x) / (1 - p)
        total = torch.zeros_like(x)
        for _ in range(n):
            out = block(x)
            if torch.equal(out, x):
                dropped += 1
            else:
                assert torch.allclose(out, kept_value, atol=1e-6)
            total += out
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(dropped / n - p) < 5 * sd
    assert torch.allclose(total / n, x + branch(x), atol=0.05)
    never = l8["StochasticDepth"](branch, p_drop=0.0).train()
    with torch.no_grad():
        assert torch.equal(never(x), x + branch(x))


# ----------------------------------------------------------------------------------------------
# Wide ResNet: the notebook's formula against a network built layer by layer
# ----------------------------------------------------------------------------------------------
class _PreActBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        a = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(a))))
        return out + (x if self.shortcut is None else self.shortcut(a))


def _wide_resnet(depth, k, num_classes=10):
    n = (depth - 4) // 6
    layers, c_in = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for group, width in enumerate((16 * k, 32 * k, 64 * k)):
        for b in range(n):
            layers.append(_PreActBlock(c_in, width, 2 if (group > 0 and b == 0) else 1))
            c_in = width
    layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("depth,k,classes", [(28, 10, 10), (16, 4, 10), (40, 2, 100), (10, 1, 10)])
def test_wrn_formula_matches_constructed_network(l8, depth, k, classes):
    with torch.device("meta"):
        model = _wide_resnet(depth, k, classes)
    params, macs = l8["wrn_cost"](depth, k, classes)
    assert params == l8["count_params"](model)
    assert macs == l8["count_macs"](model, (1, 3, 32, 32))


def test_wrn_28_10_is_the_quoted_size(l8):
    params, _ = l8["wrn_cost"](28, 10)
    assert params == 36_479_194
    assert round(params / 1e6, 1) == 36.5


# ----------------------------------------------------------------------------------------------
# The numbers the notebook teaches
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def records(notebook_records) -> dict:
    return notebook_records(NOTEBOOK)


def test_recorded_counts_equal_torchvision(records):
    assert records["alexnet_params"] == TORCHVISION_PARAMS["alexnet"]
    assert records["vgg16_params"] == TORCHVISION_PARAMS["vgg16"]
    assert records["googlenet_params"] == TORCHVISION_PARAMS["googlenet"]
    assert records["googlenet_params_with_aux"] == 13_004_888
    assert records["resnet50_params"] == TORCHVISION_PARAMS["resnet50"]
    assert records["resnet152_params"] == TORCHVISION_PARAMS["resnet152"]
    assert records["densenet121_params"] == TORCHVISION_PARAMS["densenet121"]
    comparison = records["comparison"]
    for table_name, tv_name in {
        "AlexNet": "alexnet",
        "VGG-16": "vgg16",
        "VGG-19": "vgg19",
        "GoogLeNet": "googlenet",
        "ResNet-18": "resnet18",
        "ResNet-50": "resnet50",
        "ResNet-152": "resnet152",
        "ResNeXt-50 32x4d": "resnext50_32x4d",
        "DenseNet-121": "densenet121",
    }.items():
        assert comparison[table_name]["params"] == TORCHVISION_PARAMS[tv_name], table_name
        documented = torchvision.models.get_model_weights(tv_name).DEFAULT.meta["_ops"]
        assert comparison[table_name]["macs"] / 1e9 == pytest.approx(documented, abs=6e-4), table_name
    assert set(comparison) >= {"LeNet-5", "ZFNet", "WRN-28-10", "SE-ResNet-50"}


def test_recorded_hand_computations(records):
    assert records["alexnet_conv1_params"] == 23_296
    assert records["alexnet_conv1_macs"] == records["alexnet_conv1_macs_hooks"] == 70_276_800
    assert records["resnet18_macs"] == 1_814_073_344
    assert records["lenet5_params"] == 60_000  # LeCun et al. 1998
    assert records["lenet5_connections"] == 340_908  # LeCun et al. 1998
    assert records["lenet5_macs"] == 28 * 28 * 6 * 25 + 10 * 10 * 60 * 25 + 120 * 400 + 84 * 120 + 840
    assert records["alexnet_2012_params"] == 60_965_224
    assert records["alexnet_2012_params"] == pytest.approx(60e6, rel=0.02)
    assert records["zfnet_params"] == 62_357_608
    assert records["vgg_three_3x3_vs_7x7"] == pytest.approx(27 / 49)
    assert records["wrn_28_10_params"] == 36_479_194
    assert records["grouped_conv_params"] == [147_456, 4_608]
    assert records["dense_block_out_channels"] == 256
    assert records["se_params_256"] == 2 * 256 * 16 + 16 + 256


def test_recorded_architecture_claims(records):
    assert records["alexnet_margin_points"] == pytest.approx(9.8)
    assert records["top5_improvement_2012_to_2017"] == pytest.approx(16.4 / 2.251)
    assert records["alexnet_fc_param_share"] > 0.9


def test_imagenet_size_and_topk(records):
    """Issue 12: 'ImageNet-1k has 150,000 images' is its validation + test sets; top-5 error <= top-1 error."""
    sizes = records["imagenet_1k_split_sizes"]
    assert sizes == {"train": 1_281_167, "validation": 50_000, "test": 100_000}
    assert sizes["validation"] + sizes["test"] == records["slide_imagenet_images"] == 150_000
    errors = records["topk_errors"]
    top1, top5 = errors["chance"]
    assert top1 == pytest.approx(1 - 1 / 1000, abs=0.003) and top5 == pytest.approx(1 - 5 / 1000, abs=0.005)
    top1, top5 = errors["weak classifier"]
    assert top5 < top1 - 0.2 and 0.2 < top1 < 0.9


def test_alexnet_training_recipe(records):
    """The paper's momentum + weight-decay update is torch.optim.SGD's; the plateau scheduler divides lr by 10."""
    assert records["alexnet_recipe_update_gap"] < 1e-12
    lrs = records["alexnet_recipe_plateau_lrs"]
    assert lrs[0] == pytest.approx(0.01)
    levels = sorted({round(lr, 12) for lr in lrs}, reverse=True)  # the made-up validation curve stalls three times
    assert levels == pytest.approx([1e-2, 1e-3, 1e-4, 1e-5], rel=1e-9)
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    # overlapping 3x3/2 pooling gives as many positions as 2x2/2 on AlexNet's 55x55 maps
    assert records["alexnet_pool_positions"] == {"3x3, stride 2": 27, "2x2, stride 2": 27}
    assert records["vgg16_conv_mac_share"] > 0.98 and records["vgg16_fc_param_share"] > 0.85
    assert records["gap_saving_factor_vgg16"] == pytest.approx(123_642_856 / 513_000)
    assert records["inception_bottleneck_saving"] == pytest.approx(120_422_400 / 12_443_648)
    assert records["googlenet_depth"] == 22 and records["resnet50_depth"] == 50
    # v1 puts the stride in the first 1x1 conv: cheaper; v1.5 (torchvision) in the 3x3 conv
    assert records["resnet50_v15_macs"] == 4_089_184_256
    assert records["resnet50_v1_macs"] < records["resnet50_v15_macs"]
    assert records["resnet50_v1_macs"] / 1e9 == pytest.approx(3.86, abs=0.01)
    costs = records["block_costs"]
    bottleneck, basic64 = costs["bottleneck 256-64-64-256 (ResNet-50)"], costs["basic, 64 channels (ResNet-34)"]
    assert bottleneck["macs"] < basic64["macs"] and bottleneck["params"] < basic64["params"]
    assert costs["basic, 256 channels"]["params"] > 10 * bottleneck["params"]
    r34, r50 = records["resnet34_resnet50_macs"]
    assert r34 < r50 < 1.2 * r34  # "little more compute than ResNet-34"
    assert records["identity_kept_v2"] == 1.0
    assert 0.3 < records["identity_kept_v1"] < 0.7
    assert records["se_resnet50_params"] == pytest.approx(28.1e6, abs=0.05e6)
    assert 0 < records["se_resnet50_extra_macs_fraction"] < 0.01
    assert records["sd_resnet110_expected_blocks"] == pytest.approx(54 - 55 / 4)
    assert 0.2 < records["sd_dropped_fraction"] < 0.4
    branch = records["bottleneck_branch_params"]
    assert abs(branch["resnext"] - branch["resnet"]) / branch["resnet"] < 0.02


def test_deeper_plain_net_trains_worse_than_residual(records):
    losses = records["plain_vs_residual_final_loss"]
    depths = sorted(int(key.split("-")[1]) for key in losses if key.startswith("plain-"))
    shallow, deep = depths[0], depths[-1]
    # the robust claims (margins from runs over several seeds: plain-20 is ~7x plain-2, ~20x residual-20)
    assert losses[f"plain-{deep}"] > 2 * losses[f"plain-{shallow}"]
    assert losses[f"residual-{deep}"] < losses[f"plain-{deep}"] / 3
