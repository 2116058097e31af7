"""The trainer's fast path: batch augmentation on the device, channels-last, same results as the plain loop."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_utils as cu
from course_utils.augment import random_crop_flip


def test_crop_flip_outputs_are_crops_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 8, 8)
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.is_contiguous()  # the input's layout (tests/test_cpu_memory_format.py)
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        candidates = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.equal(out[i], c) for c in candidates)


def test_crop_flip_is_random_per_image_and_reproducible():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6).repeat(50, 1, 1, 1)
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(3))
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert len({bytes(img.contiguous().numpy()) for img in a}) > 20  # many different crops
    flips = [torch.equal(img, x[0].flip(-1)) for img in random_crop_flip(x[:1].repeat(200, 1, 1, 1), padding=0)]
    assert 60 < sum(flips) < 140  # about half are flipped
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)


def test_crop_flip_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        random_crop_flip(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(torch.zeros(1, 1, 8, 8), padding=-1)


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def test_fast_path_matches_plain_loop_within_noise():
    train = cu.load_dataset("digits", "train", source="offline", verbose=False)
    test = cu.load_dataset("digits", "test", source="offline", verbose=False)
    common = dict(epochs=15, lr=1e-2, batch_size=64, device="cpu", live_plot=False, progress=False, val=test)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=64, shuffle=True)
    plain = cu.fit(_cnn(), loader, fast=False, **common)
    fast = cu.fit(_cnn(), loader, fast=True, **common)  # channels-last is CUDA-only
    assert "fast path" in fast.device and "fast path" not in plain.device
    assert plain.val_acc[-1] > 0.8 and fast.val_acc[-1] > 0.8
    assert abs(plain.val_acc[-1] - fast.val_acc[-1]) < 0.08


def test_augmentation_in_fit_and_bad_augment_name():
    X, y = cu.make_shapes10(64)
    X = X.float() / 255
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    hist = cu.fit(model, (X, y), epochs=1, augment="crop_flip", device="cpu", live_plot=False, progress=False)
    assert hist.epochs == 1
    with pytest.raises(ValueError, match="crop_flip"):
        cu.fit(model, (X, y), epochs=1, augment="mixup", device="cpu", live_plot=False, progress=False)
