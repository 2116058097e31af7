"""How fast do we train? The textbook loop against course_utils' fast path, on whatever device is here.

    python benchmarks/train_speed.py [--device cuda|cpu] [--quick] [--json out.json]

Two loops train the same networks (LeNet-5 on 28x28x1 digits, a CIFAR ResNet-18 on 32x32x3 images)
from the same initial weights on the same images:

* **plain**: the textbook loop written out below (:func:`plain_train_epoch`): a ``DataLoader`` over
  CPU tensors, ``.to(device)`` for every batch, float32, ``.item()`` after every step.
* **fast**: ``course_utils.fit(..., fast=True)``: the data set copied to the device once and batched
  there by indexing, no host sync inside the epoch, bf16 autocast and channels-last on GPUs.

For each pair it reports training images/s (the two loops take turns epoch by epoch; the warm-up epoch
is excluded; ``torch.cuda.synchronize`` around every timed epoch on a GPU), the time of one 50,000-image epoch (extrapolated from images/s,
and measured when the timed epochs hold 50,000 images, the default on a GPU), the speed-up, and
time-to-accuracy on the data that is available (``load_dataset``: offline that is the real MNIST
subset and the *shapes10* stand-in for CIFAR-10; the output says which). Results go to a table on
stdout and, with ``--json``, to a file (layout: :func:`validate_result`).

Targets for an H100/H200 (checked only when a GPU runs the benchmark): fast >= 3x plain for both
networks, LeNet-5 >= 500,000 training images/s, ResNet-18 (batch 512) one 50,000-image epoch < 2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:  # run as a script (python benchmarks/train_speed.py) or imported as benchmarks.train_speed
    from benchmarks.models import NETWORKS, build, count_parameters, input_shape
except ImportError:  # pragma: no cover - depends on how Python was started
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.models import NETWORKS, build, count_parameters, input_shape

import course_utils as cu

SCHEMA = "train_speed/1"
EPOCH_IMAGES = 50_000  # "one epoch" in the table: the size of CIFAR-10's training set
DATASET_OF = {"lenet5": "mnist", "resnet18": "cifar10"}
# Accuracy to reach in the time-to-accuracy race, by data set as it was actually loaded.
DEFAULT_TARGETS = {"mnist": 0.99, "mnist-subset": 0.96, "cifar10": 0.85, "cifar10-standin": 0.95}
GPU_TARGETS = {"speedup_min": 3.0, "lenet5_images_per_s_min": 500_000, "resnet18_epoch_s_max": 2.0}


# --------------------------------------------------------------------------- the textbook loop
def sync(device: torch.device) -> None:
    """Wait until the GPU has finished all queued work (a no-op on the CPU), so a clock reading is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_train_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable,
    device: torch.device,
) -> tuple[float, float]:
    """One epoch of the textbook loop; returns (mean training loss, training accuracy)."""
    model.train()
    total_loss, total_correct, seen = 0.0, 0, 0
    for X, y in loader:  # the DataLoader gathers and stacks a batch on the CPU
        X, y = X.to(device), y.to(device)  # host -> device copy, every batch
        logits = model(X)  # float32 all the way
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)  # .item(): the CPU waits for the GPU, every batch
        total_correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
    return total_loss / seen, total_correct / seen


class PerImageAugment(torch.utils.data.Dataset):
    """The textbook way to augment: torchvision transforms applied to one image at a time on the CPU."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, padding: int = 4) -> None:
        from torchvision.transforms import v2

        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.RandomCrop(images.shape[-1], padding=padding), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


class PlainTrainer:
    """The textbook loop's state (model, DataLoader, optimiser); :meth:`epoch` runs and times one epoch."""

    def __init__(
        self,
        model: nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        device: torch.device,
        lr: float,
        seed: int = 0,
        augment: bool = False,
        workers: int = 0,
        val: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        dataset = PerImageAugment(X, y) if augment else torch.utils.data.TensorDataset(X, y)
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            generator=torch.Generator().manual_seed(seed),
        )
        self.model, self.device, self.val = model.to(device), device, val
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.log: dict[str, list[float]] = {"epoch_time": [], "train_loss": [], "train_acc": [], "val_acc": []}

    def epoch(self) -> None:
        """One training epoch, timed between two synchronisations; validation (if any) is not timed."""
        sync(self.device)
        t0 = time.perf_counter()
        loss, acc = plain_train_epoch(self.model, self.loader, self.optimizer, self.loss_fn, self.device)
        sync(self.device)
        self.log["epoch_time"].append(time.perf_counter() - t0)
        self.log["train_loss"].append(loss)
        self.log["train_acc"].append(acc)
        if self.val is not None:
            self.log["val_acc"].append(cu.evaluate(self.model, self.val, device=self.device)["acc"])


def plain_loop(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    device: torch.device,
    lr: float,
    seed: int = 0,
    augment: bool = False,
    workers: int = 0,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    stop: Callable[[int, dict], bool] | None = None,
) -> dict[str, list[float]]:
    """Train with :func:`plain_train_epoch` for ``epochs`` epochs; per-epoch times exclude validation."""
    trainer = PlainTrainer(
        model, X, y, batch_size=batch_size, device=device, lr=lr, seed=seed, augment=augment, workers=workers, val=val
    )
    for epoch in range(epochs):
        trainer.epoch()
        if stop is not None and stop(epoch, trainer.log):
            break
    return trainer.log


# --------------------------------------------------------------------------- the fast path
class _Stop(Exception):
    """Raised by a fit() callback to end training early (fit has no early-stopping hook)."""


def fast_loop(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    device: torch.device,
    lr: float,
    seed: int = 0,
    augment: bool = False,
    compile_model: bool = False,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    stop: Callable[[int, dict], bool] | None = None,
    between_epochs: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train with ``course_utils.fit(fast=True)``; same log layout as :func:`plain_loop`.

    ``between_epochs()`` runs after every epoch, outside fit's epoch clock (used to interleave the loops).
    """
    seen: list[cu.History] = []

    def watch(epoch: int, history: cu.History) -> None:
        seen[:] = [history]
        if between_epochs is not None:
            between_epochs()
        if stop is not None and stop(epoch, _log(history)):
            raise _Stop

    sync(device)
    t0 = time.perf_counter()
    X_dev, y_dev = X.to(device), y.to(device)  # the one upload of the data set, timed on its own
    sync(device)
    upload_s = time.perf_counter() - t0
    try:
        cu.fit(
            model,
            (X_dev, y_dev),
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            device=device,
            fast=True,
            augment="crop_flip" if augment else None,
            compile_model=compile_model,
            val=val,
            seed=seed,
            live_plot=False,
            progress=False,
            callbacks=[watch],
        )
    except _Stop:
        pass
    log = _log(seen[0])
    log["upload_s"] = upload_s
    return log


def _log(history: cu.History) -> dict[str, Any]:
    return {
        "epoch_time": list(history.epoch_time),
        "train_loss": list(history.train_loss),
        "train_acc": list(history.train_acc),
        "val_acc": list(history.val_acc),
    }


# --------------------------------------------------------------------------- data and settings
def sizes(device: torch.device, quick: bool) -> dict[str, dict[str, int]]:
    """Batch size and images per timed epoch for each network on this device."""
    if device.type == "cuda":
        n = 10_240 if quick else EPOCH_IMAGES
        return {"lenet5": {"batch": 512, "images": n}, "resnet18": {"batch": 512, "images": n}}
    if quick:
        return {"lenet5": {"batch": 128, "images": 1024}, "resnet18": {"batch": 16, "images": 32}}
    return {"lenet5": {"batch": 128, "images": 4096}, "resnet18": {"batch": 32, "images": 128}}


def load(net: str, split: str, limit: int | None = None) -> cu.ImageData:
    data = cu.load_dataset(DATASET_OF[net], split, limit=limit, verbose=False)
    if data.shape != input_shape(net):
        raise ValueError(f"{data.name} images are {data.shape}, but {net} needs {input_shape(net)}.")
    return data


def data_label(data: cu.ImageData) -> str:
    """Short honest label: which data this really is."""
    if data.is_standin:
        return f"{data.name}: STAND-IN ({data.source}), {len(data):,} images"
    return f"{data.name}: {data.source}, {len(data):,} images"


def target_key(data: cu.ImageData) -> str:
    if data.is_standin:
        return f"{data.name}-standin"
    if data.name == "mnist" and len(data) < 60_000:
        return "mnist-subset"
    return data.name


def repeat_to(X: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images, cycling through the data set as often as needed (for timing only)."""
    reps = math.ceil(n / len(X))
    if reps > 1:
        X, y = X.repeat(reps, 1, 1, 1), y.repeat(reps)
    return X[:n].contiguous(), y[:n].contiguous()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"CPU {cpu}, {threads} thread{'' if threads == 1 else 's'}"


# --------------------------------------------------------------------------- measurements
def measure_throughput(
    net: str,
    *,
    device: torch.device,
    batch: int,
    images: int,
    timed_epochs: int,
    lr: float,
    seed: int,
    width: int,
    augment: bool,
    compile_model: bool,
    workers: int,
) -> list[dict]:
    """Images/s of both loops for one network: one warm-up epoch, then ``timed_epochs`` timed ones.

    The loops take turns, epoch by epoch (a ``fit`` callback runs one plain epoch after every fast
    epoch), so that a busy moment of a shared machine slows both alike.
    """
    data = load(net, "train")
    X, y = repeat_to(data.images, data.labels, images)
    augment = augment and net == "resnet18"
    models = {}
    for loop in ("plain", "fast"):
        torch.manual_seed(seed)
        models[loop] = build(net, width)  # identical initial weights
    plain = PlainTrainer(
        models["plain"], X, y, batch_size=batch, device=device, lr=lr, seed=seed, augment=augment, workers=workers
    )
    logs = {
        "fast": fast_loop(
            models["fast"],
            X,
            y,
            epochs=1 + timed_epochs,
            batch_size=batch,
            device=device,
            lr=lr,
            seed=seed,
            augment=augment,
            compile_model=compile_model,
            between_epochs=plain.epoch,
        ),
        "plain": plain.log,
    }
    rows = []
    for loop in ("plain", "fast"):
        log, model = logs[loop], models[loop]
        timed = log["epoch_time"][1:]
        epoch_s = statistics.median(timed)
        ips = images / epoch_s
        fast_gpu = loop == "fast" and device.type == "cuda"
        rows.append(
            {
                "net": net,
                "loop": loop,
                "params": count_parameters(model),
                "batch_size": batch,
                "images_per_epoch": images,
                "warmup_epochs": 1,
                "timed_epochs": timed_epochs,
                "epoch_times_s": log["epoch_time"],
                "images_per_s": ips,
                "epoch_50k_s_extrapolated": EPOCH_IMAGES / ips,
                "epoch_50k_s_measured": epoch_s if images == EPOCH_IMAGES else None,
                "train_loss": log["train_loss"],
                "upload_s": log.get("upload_s"),
                "amp_bf16": fast_gpu and torch.cuda.is_bf16_supported(),
                "channels_last": fast_gpu,
                "compile": loop == "fast" and compile_model,
                "augment": augment,
                "data": data_label(data),
            }
        )
    del models, plain
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def time_to_accuracy(
    net: str,
    *,
    device: torch.device,
    batch: int,
    lr: float,
    seed: int,
    width: int,
    augment: bool,
    max_epochs: int,
    target: float | None,
    limit: int | None,
    workers: int,
) -> list[dict]:
    """Train each loop until test accuracy reaches the target; training time only (evaluation excluded)."""
    train, test = load(net, "train", limit), load(net, "test", limit)
    mean, std = train.images.mean(dim=(0, 2, 3)), train.images.std(dim=(0, 2, 3))
    train, test = train.normalized(mean, std), test.normalized(mean, std)
    target = DEFAULT_TARGETS[target_key(train)] if target is None else target
    val = (test.images, test.labels)
    rows = []
    for loop in ("plain", "fast"):
        torch.manual_seed(seed)
        model = build(net, width)

        def reached(epoch: int, log: dict) -> bool:
            return bool(log["val_acc"]) and log["val_acc"][-1] >= target

        kwargs = dict(
            epochs=max_epochs,
            batch_size=batch,
            device=device,
            lr=lr,
            seed=seed,
            val=val,
            stop=reached,
            augment=augment and net == "resnet18",
        )
        log = (
            plain_loop(model, train.images, train.labels, workers=workers, **kwargs)
            if loop == "plain"
            else fast_loop(model, train.images, train.labels, **kwargs)
        )
        hit = next((i for i, a in enumerate(log["val_acc"]) if a >= target), None)
        rows.append(
            {
                "net": net,
                "loop": loop,
                "dataset": train.name,
                "data": data_label(train),
                "is_standin": train.is_standin,
                "train_images": len(train),
                "test_images": len(test),
                "batch_size": batch,
                "target_acc": target,
                "max_epochs": max_epochs,
                "reached": hit is not None,
                "epochs": None if hit is None else hit + 1,
                "train_time_s": None if hit is None else sum(log["epoch_time"][: hit + 1]),
                "best_val_acc": max(log["val_acc"]),
                "val_acc": log["val_acc"],
                "train_loss": log["train_loss"],
            }
        )
    return rows


def check_gpu_targets(throughput: list[dict], speedups: dict[str, float]) -> list[dict]:
    """The issue's H100/H200 targets, each with the measured value and whether it is met."""
    fast = {r["net"]: r for r in throughput if r["loop"] == "fast"}
    checks = []
    for net, ratio in speedups.items():
        checks.append(
            {
                "target": f"{net}: fast >= {GPU_TARGETS['speedup_min']:g}x plain",
                "value": ratio,
                "met": ratio >= GPU_TARGETS["speedup_min"],
            }
        )
    if "lenet5" in fast:
        v = fast["lenet5"]["images_per_s"]
        checks.append(
            {
                "target": f"lenet5 fast >= {GPU_TARGETS['lenet5_images_per_s_min']:,} images/s",
                "value": v,
                "met": v >= GPU_TARGETS["lenet5_images_per_s_min"],
            }
        )
    if "resnet18" in fast:
        r = fast["resnet18"]
        v = r["epoch_50k_s_measured"] if r["epoch_50k_s_measured"] is not None else r["epoch_50k_s_extrapolated"]
        checks.append(
            {
                "target": f"resnet18 fast (batch {r['batch_size']}) 50,000-image epoch < "
                f"{GPU_TARGETS['resnet18_epoch_s_max']:g} s",
                "value": v,
                "met": v < GPU_TARGETS["resnet18_epoch_s_max"],
            }
        )
    return checks


def run_benchmark(
    *,
    device: str | torch.device | None = None,
    quick: bool = False,
    nets: Sequence[str] = NETWORKS,
    batch: int | None = None,
    images: int | None = None,
    timed_epochs: int = 2,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 64,
    augment: bool = False,
    compile_model: bool = False,
    workers: int = 0,
    tta: str = "auto",
    tta_max_epochs: int | None = None,
    tta_limit: int | None = None,
    target: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every measurement and return the result dictionary (the JSON the CLI writes)."""
    device = cu.get_device(str(device) if device else None)
    unknown = [n for n in nets if n not in NETWORKS]
    if unknown or not nets:
        raise ValueError(f"Unknown network(s) {unknown}; choose from {', '.join(NETWORKS)}.")
    for name, value in (
        ("batch", batch),
        ("images", images),
        ("tta_max_epochs", tta_max_epochs),
        ("tta_limit", tta_limit),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive number, got {value}.")
    if timed_epochs < 1:
        raise ValueError(f"timed_epochs must be at least 1, got {timed_epochs}.")
    if tta not in ("auto", "on", "off"):
        raise ValueError(f"tta must be 'auto', 'on' or 'off', got {tta!r}.")
    if target is not None and not 0 < target <= 1:
        raise ValueError(f"target is an accuracy in (0, 1], got {target}.")
    plan = sizes(device, quick)
    for net in nets:
        plan[net] = {"batch": batch or plan[net]["batch"], "images": images or plan[net]["images"]}
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "device": {
            "type": device.type,
            "name": device_name(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "settings": {
            "quick": quick,
            "nets": list(nets),
            "sizes": {n: plan[n] for n in nets},
            "timed_epochs": timed_epochs,
            "warmup_epochs": 1,
            "lr": lr,
            "seed": seed,
            "resnet_width": width,
            "augment": augment,
            "compile": compile_model,
            "workers": workers,
            "epoch_images": EPOCH_IMAGES,
        },
        "throughput": [],
        "speedup": {},
        "time_to_accuracy": [],
        "tta_skipped": {},
        "gpu_targets": None,
    }
    for net in nets:
        log(
            f"timing {net} (batch {plan[net]['batch']}, {plan[net]['images']:,} images per epoch, "
            f"1 warm-up + {timed_epochs} timed epochs) ..."
        )
        rows = measure_throughput(
            net,
            device=device,
            batch=plan[net]["batch"],
            images=plan[net]["images"],
            timed_epochs=timed_epochs,
            lr=lr,
            seed=seed,
            width=width,
            augment=augment,
            compile_model=compile_model,
            workers=workers,
        )
        result["throughput"] += rows
        by_loop = {r["loop"]: r for r in rows}
        result["speedup"][net] = by_loop["fast"]["images_per_s"] / by_loop["plain"]["images_per_s"]
    for net in nets:
        run_it = tta == "on" or (tta == "auto" and not quick and (device.type == "cuda" or net == "lenet5"))
        if not run_it:
            result["tta_skipped"][net] = (
                "--tta off" if tta == "off" else "--quick" if quick else "too slow on a CPU; --tta on forces it"
            )
            continue
        max_epochs = tta_max_epochs or (20 if net == "lenet5" else 30)
        log(f"time-to-accuracy for {net} (at most {max_epochs} epochs) ...")
        result["time_to_accuracy"] += time_to_accuracy(
            net,
            device=device,
            batch=plan[net]["batch"],
            lr=lr,
            seed=seed,
            width=width,
            augment=augment,
            max_epochs=max_epochs,
            target=target,
            limit=tta_limit,
            workers=workers,
        )
    if device.type == "cuda":
        result["gpu_targets"] = check_gpu_targets(result["throughput"], result["speedup"])
    validate_result(result)
    return result


# --------------------------------------------------------------------------- output
_THROUGHPUT_KEYS = {
    "net": str,
    "loop": str,
    "params": int,
    "batch_size": int,
    "images_per_epoch": int,
    "warmup_epochs": int,
    "timed_epochs": int,
    "epoch_times_s": list,
    "images_per_s": float,
    "epoch_50k_s_extrapolated": float,
    "epoch_50k_s_measured": (float, type(None)),
    "train_loss": list,
    "upload_s": (float, type(None)),
    "amp_bf16": bool,
    "channels_last": bool,
    "compile": bool,
    "augment": bool,
    "data": str,
}
_TTA_KEYS = {
    "net": str,
    "loop": str,
    "dataset": str,
    "data": str,
    "is_standin": bool,
    "train_images": int,
    "test_images": int,
    "batch_size": int,
    "target_acc": float,
    "max_epochs": int,
    "reached": bool,
    "epochs": (int, type(None)),
    "train_time_s": (float, type(None)),
    "best_val_acc": float,
    "val_acc": list,
    "train_loss": list,
}


def validate_result(result: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first field that does not fit the ``train_speed/1`` layout."""

    def check(obj: dict, keys: dict, where: str) -> None:
        for key, kind in keys.items():
            if key not in obj:
                raise ValueError(f"{where}: missing field {key!r}")
            kinds = kind if isinstance(kind, tuple) else (kind,)
            value = obj[key]
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                continue  # an int is a fine float
            if not isinstance(value, kinds):
                raise ValueError(f"{where}: field {key!r} should be {kinds}, got {type(value).__name__}")

    if result.get("schema") != SCHEMA:
        raise ValueError(f"schema should be {SCHEMA!r}, got {result.get('schema')!r}")
    check(
        result,
        {
            "device": dict,
            "settings": dict,
            "throughput": list,
            "speedup": dict,
            "time_to_accuracy": list,
            "tta_skipped": dict,
            "gpu_targets": (list, type(None)),
        },
        "result",
    )
    check(result["device"], {"type": str, "name": str, "torch": str, "threads": int}, "device")
    for i, row in enumerate(result["throughput"]):
        check(row, _THROUGHPUT_KEYS, f"throughput[{i}]")
        if row["loop"] not in ("plain", "fast") or not row["images_per_s"] > 0:
            raise ValueError(f"throughput[{i}]: loop must be plain/fast and images_per_s positive")
    for net, ratio in result["speedup"].items():
        if not (isinstance(ratio, (int, float)) and ratio > 0):
            raise ValueError(f"speedup[{net!r}] should be a positive number, got {ratio!r}")
    for i, row in enumerate(result["time_to_accuracy"]):
        check(row, _TTA_KEYS, f"time_to_accuracy[{i}]")


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "not run"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:,.0f} s"


def format_tables(result: dict[str, Any]) -> str:
    dev = result["device"]
    lines = [f"device: {dev['type']} ({dev['name']}) | torch {dev['torch']}", ""]
    head = (
        f"{'network':9s} {'loop':5s} {'batch':>5s} {'images/s':>11s} {'50k epoch (extrap.)':>20s} "
        f"{'50k epoch (measured)':>21s} {'speed-up':>9s}"
    )
    lines += [head, "-" * len(head)]
    for row in result["throughput"]:
        ratio = f"{result['speedup'][row['net']]:.2f}x" if row["loop"] == "fast" else ""
        lines.append(
            f"{row['net']:9s} {row['loop']:5s} {row['batch_size']:5d} {row['images_per_s']:11,.0f} "
            f"{_fmt_s(row['epoch_50k_s_extrapolated']):>20s} {_fmt_s(row['epoch_50k_s_measured']):>21s} "
            f"{ratio:>9s}"
        )
    seen_data = {}
    for row in result["throughput"]:
        seen_data.setdefault(row["net"], row["data"])
    lines.append("")
    for net, label in seen_data.items():
        row = next(r for r in result["throughput"] if r["net"] == net and r["loop"] == "fast")
        extras = [
            name
            for name, on in (
                ("bf16 autocast", row["amp_bf16"]),
                ("channels_last", row["channels_last"]),
                ("torch.compile", row["compile"]),
                ("crop+flip augmentation", row["augment"]),
            )
            if on
        ]
        lines.append(
            f"{net}: timed on {row['images_per_epoch']:,} images per epoch drawn from {label}; "
            f"fast path adds: {', '.join(extras) or 'no GPU-only extras (not on a GPU)'}"
        )
    if result["time_to_accuracy"]:
        lines += ["", "time to accuracy (training time only; test accuracy checked after every epoch)"]
        head = f"{'network':9s} {'loop':5s} {'target':>7s} {'epochs':>7s} {'time':>9s} {'best acc':>9s}  data"
        lines += [head, "-" * (len(head) + 30)]
        for row in result["time_to_accuracy"]:
            epochs = str(row["epochs"]) if row["reached"] else f">{row['max_epochs']}"
            time_s = _fmt_s(row["train_time_s"]) if row["reached"] else "not reached"
            lines.append(
                f"{row['net']:9s} {row['loop']:5s} {row['target_acc']:7.1%} {epochs:>7s} {time_s:>9s} "
                f"{row['best_val_acc']:9.2%}  {row['data']}"
            )
    for net, why in result["tta_skipped"].items():
        lines.append(f"time to accuracy for {net}: skipped ({why})")
    if result["gpu_targets"] is not None:
        lines += ["", "GPU targets (H100/H200):"]
        for check in result["gpu_targets"]:
            lines.append(f"  [{'met' if check['met'] else 'MISSED'}] {check['target']}: {check['value']:,.2f}")
    else:
        lines.append(
            "GPU targets (fast >= 3x plain, LeNet-5 >= 500k images/s, ResNet-18 epoch < 2 s): not checked, no GPU here"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu", "mps"], help="default: the best one present")
    parser.add_argument("--quick", action="store_true", help="small sizes, no time-to-accuracy (a smoke run)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--nets", default=",".join(NETWORKS), help="comma-separated subset of: " + ", ".join(NETWORKS))
    parser.add_argument("--batch", type=int, help="batch size for every network (default: per device)")
    parser.add_argument("--images", type=int, help="images per timed epoch (default: 50,000 on a GPU, small on a CPU)")
    parser.add_argument("--timed-epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate for both loops")
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 width (64 is the real one)")
    parser.add_argument(
        "--augment",
        action="store_true",
        help="ResNet-18 only: per-image torchvision crop+flip (plain) vs batch crop_flip (fast)",
    )
    parser.add_argument("--compile", action="store_true", help="fast path with torch.compile")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for PyTorch (default: PyTorch's choice; 1 is steadier on a busy machine)",
    )
    parser.add_argument(
        "--tta",
        choices=["auto", "on", "off"],
        default="auto",
        help="time-to-accuracy: auto = on a GPU for both nets, on a CPU for LeNet-5 only",
    )
    parser.add_argument("--tta-max-epochs", type=int, help="give up after this many epochs")
    parser.add_argument("--tta-limit", type=int, help="use at most this many train/test images")
    parser.add_argument("--target", type=float, help="accuracy to reach (default depends on the data found)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    result = run_benchmark(
        device=args.device,
        quick=args.quick,
        nets=nets,
        batch=args.batch,
        images=args.images,
        timed_epochs=args.timed_epochs,
        lr=args.lr,
        width=args.width,
        augment=args.augment,
        compile_model=args.compile,
        workers=args.workers,
        tta=args.tta,
        tta_max_epochs=args.tta_max_epochs,
        tta_limit=args.tta_limit,
        target=args.target,
    )
    print()
    print(format_tables(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
