"""Device selection and reproducibility."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def as_device(device: str | torch.device, origin: str = "device") -> torch.device:
    """``device`` as a ``torch.device``; a name torch does not know gets an error that lists the right ones.

    ``origin`` names where the value came from in that message (e.g. ``"COURSE_DEVICE"``).
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(
            f"{origin} must be a string such as 'cuda', 'mps' or 'cpu' (or a torch.device), "
            f"not {type(device).__name__}."
        )
    name = device.strip().lower()
    try:
        return torch.device(name)
    except RuntimeError:  # torch's own message lists two dozen device types
        raise ValueError(
            f"Unknown device {origin}={device!r}: PyTorch calls an NVIDIA GPU 'cuda' ('cuda:1' for a "
            "second one), an Apple GPU 'mps' and the processor 'cpu'. Use one of those, or leave "
            f"{origin} unset to pick the best available one."
        ) from None


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick the best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` (or the ``COURSE_DEVICE`` environment variable) forces one, e.g. ``"cpu"``.
    """
    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        device = as_device(choice, "device" if prefer else "COURSE_DEVICE")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "CUDA was requested but no CUDA GPU is visible. On Colab choose "
                "Runtime > Change runtime type > GPU, or unset COURSE_DEVICE to use the CPU."
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("MPS was requested but this machine has no Apple GPU; unset COURSE_DEVICE.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | None = None) -> str:
    """Human-readable name of the device, e.g. ``cuda (NVIDIA H100 80GB HBM3)``."""
    device = device or get_device()
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and all GPUs) in one call.

    ``deterministic=True`` additionally asks cuDNN for deterministic kernels (slower).
    Returns the seed so that it can be printed or stored with results.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed
