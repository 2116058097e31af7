"""The two networks the training-speed benchmark trains.

They are defined here, on purpose, instead of being imported from the assignments: students
write their own LeNet-5 (A3) and CIFAR networks (A4/A5), and the benchmark must not depend on
(or give away) their solutions.

* :func:`lenet5` - LeNet-5 for 28x28x1 digits, in its modern form (ReLU and max-pooling instead
  of sigmoid and average pooling; same layer sizes, 61,706 parameters). Tiny: on a GPU its speed
  is decided by the training loop, not by arithmetic.
* :func:`resnet18_cifar` - the usual CIFAR variant of ResNet-18 for 32x32x3 images (3x3 stem,
  no initial max-pool, four stages of two basic blocks; 11.2 million parameters at width 64).
  Big enough that a GPU is busy with real work.
"""

from __future__ import annotations

import torch
from torch import nn

NETWORKS = ("lenet5", "resnet18")


def lenet5(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 for ``[N, 1, 28, 28]`` inputs (the first convolution pads by 2, as for 32x32)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 6 x 14 x 14
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 16 x 5 x 5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut; a 1x1 conv on the shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18CIFAR(nn.Module):
    """ResNet-18 for ``[N, 3, 32, 32]`` inputs; ``width`` is the channel count of the first stage."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int (64 is the standard ResNet-18), got {width!r}.")
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        c_in = width
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out)]
            c_in = c_out
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def resnet18_cifar(num_classes: int = 10, width: int = 64) -> ResNet18CIFAR:
    """The CIFAR ResNet-18; ``width < 64`` gives a narrow copy for quick smoke tests."""
    return ResNet18CIFAR(num_classes, width)


def build(name: str, width: int = 64) -> nn.Module:
    """``build("lenet5")`` or ``build("resnet18", width=64)``."""
    if name == "lenet5":
        return lenet5()
    if name == "resnet18":
        return resnet18_cifar(width=width)
    raise ValueError(f"Unknown network {name!r}; choose one of {', '.join(NETWORKS)}.")


def input_shape(name: str) -> tuple[int, int, int]:
    """The ``(C, H, W)`` an image must have for network ``name``."""
    shapes = {"lenet5": (1, 28, 28), "resnet18": (3, 32, 32)}
    if name not in shapes:
        raise ValueError(f"Unknown network {name!r}; choose one of {', '.join(NETWORKS)}.")
    return shapes[name]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
