"""Memory layouts on the CPU: no channels-last batches into an NCHW model (issue 11, point 2).

On an AVX2-only CPU (AMD EPYC without AVX-512) oneDNN's convolution backward crashes the process
(segmentation fault or abort, torch 2.14.1) when a batch is channels-last, e.g. the batch that
``random_crop_flip`` used to return as a permuted view. The smallest trigger found: a 1x1 convolution
with stride 2 fed channels-last activations. Any machine can emulate such a CPU for PyTorch and oneDNN with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``, so the subprocess tests below crash without the fix
on this AVX-512 machine too. The in-process tests assert the invariant behind the fix: on a CPU every batch
that ``fit``/``evaluate`` hand to a model is contiguous in the model's own (NCHW) layout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils.augment import random_crop_flip

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
# Conv (channels-last output when its input is) -> 1x1 stride-2 conv: backward crashes under AVX2 on a CL batch.
SENSITIVE_MODEL = (
    "nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 1, stride=2), nn.ReLU(), "
    "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))"
)
PRELUDE = textwrap.dedent(f"""
    import warnings
    import torch
    from torch import nn
    import course_utils as cu
    from course_utils.augment import random_crop_flip
    torch.manual_seed(0)
    print("cpu capability:", torch.backends.cpu.get_cpu_capability(), flush=True)
    def sensitive():
        return {SENSITIVE_MODEL}
""")


def _run_as_avx2(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **AVX2},
    )


def _explain(result: subprocess.CompletedProcess) -> str:
    crash = {-11: "segmentation fault", -6: "abort", 139: "segmentation fault", 134: "abort"}.get(result.returncode, "")
    return f"exit code {result.returncode} {crash}\n{result.stdout}\n{result.stderr[-3000:]}"


def test_conv_backward_on_an_augmented_batch_survives_an_avx2_cpu():
    result = _run_as_avx2("""
        x = torch.rand(16, 3, 32, 32)
        batch = random_crop_flip(x)
        model = sensitive()
        nn.functional.cross_entropy(model(batch), torch.randint(0, 10, (16,))).backward()
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, _explain(result)


def test_fit_with_crop_flip_and_channels_last_requests_survive_an_avx2_cpu():
    result = _run_as_avx2("""
        X, y = torch.rand(64, 3, 32, 32), torch.randint(0, 10, (64,))
        common = dict(epochs=1, batch_size=16, device="cpu", live_plot=False, progress=False)
        cu.fit(sensitive(), (X, y), augment="crop_flip", fast=True, **common)
        # a user's augmentation that returns channels-last batches, and a model stored channels-last
        to_cl = lambda b: random_crop_flip(b, memory_format=torch.channels_last)
        cu.fit(sensitive().to(memory_format=torch.channels_last), (X, y), augment=to_cl, **common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cu.fit(sensitive(), (X, y), channels_last=True, **common)  # ignored on a CPU (with a warning)
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, _explain(result)


def test_random_crop_flip_keeps_the_layout_it_was_given():
    x = torch.rand(8, 3, 12, 12)
    assert random_crop_flip(x).is_contiguous()
    cl = x.contiguous(memory_format=torch.channels_last)
    assert random_crop_flip(cl).is_contiguous(memory_format=torch.channels_last)
    assert random_crop_flip(x, memory_format=torch.channels_last).is_contiguous(memory_format=torch.channels_last)
    g = torch.Generator
    assert torch.equal(
        random_crop_flip(x, generator=g().manual_seed(1)), random_crop_flip(cl, generator=g().manual_seed(1))
    )


class _Recorder(nn.Module):
    """A small CNN that records, for every batch it sees, whether batch and weights share the NCHW layout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
        )
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.is_contiguous(), self.net[0].weight.is_contiguous()))
        return self.net(x)


def _data(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 3, 16, 16), torch.randint(0, 10, (n,))


CASES = {
    "crop_flip": dict(augment="crop_flip"),
    "crop_flip, fast": dict(augment="crop_flip", fast=True),
    "user augment returning channels-last": dict(
        augment=lambda b: random_crop_flip(b, memory_format=torch.channels_last)
    ),
    "channels_last=True requested": dict(channels_last=True),
    "channels-last data": dict(data_cl=True),
    "channels-last DataLoader": dict(data_cl=True, loader=True),
    "model stored channels-last": dict(model_cl=True),
}


@pytest.mark.parametrize("case", CASES)
def test_every_batch_fit_feeds_a_cpu_model_is_nchw_like_the_model(case):
    options = dict(CASES[case])
    X, y = _data()
    if options.pop("data_cl", False):
        X = X.contiguous(memory_format=torch.channels_last)
    train = (X, y)
    if options.pop("loader", False):
        train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    model = _Recorder()
    if options.pop("model_cl", False):
        model.to(memory_format=torch.channels_last)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cu.fit(
            model, train, val=(X, y), epochs=1, batch_size=16, device="cpu", live_plot=False, progress=False, **options
        )
    assert model.seen and all(batch and weight for batch, weight in model.seen), model.seen
    if "channels_last" in options:
        assert any("channels_last=True is ignored on cpu" in str(w.message) for w in caught)


def test_evaluate_on_a_cpu_feeds_batches_in_the_models_layout():
    X, y = _data()
    cl_model = _Recorder().to(memory_format=torch.channels_last)
    cu.evaluate(cl_model, (X, y), device="cpu")
    assert cl_model.seen == [(False, False)]  # channels-last batches for channels-last weights, never a mixture
    model = _Recorder()
    cu.evaluate(model, (X.contiguous(memory_format=torch.channels_last), y), device="cpu")
    assert model.seen == [(True, True)]
