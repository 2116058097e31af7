"""A small, readable training loop: :func:`fit` and :func:`evaluate`.

Design choices a student can read off the code:

* Data given as tensors (an :class:`~course_utils.datasets.ImageData` or an ``(X, y)`` pair)
  is moved to the device **once** and batched there by indexing with a random permutation,
  with no ``DataLoader`` and no per-batch host-to-device copy. A ``DataLoader`` works too.
* The loop never calls ``.item()`` per step: losses and correct counts are summed on the
  device and read once per epoch, so the GPU is never forced to wait for the CPU.
* ``fast=True`` (automatic on CUDA) adds what makes GPUs fly: bf16 autocast, channels-last memory
  layout, optional ``torch.compile``; ``augment=`` runs batch augmentation on the device.
  bf16 autocast and channels-last are CUDA-only: on a CPU the model and every batch it sees are kept
  in the ordinary NCHW layout (oneDNN's convolution backward crashes on some CPUs, e.g. AVX2-only
  AMD EPYC, when the layouts are channels-last or differ between model and batch).
* Progress is shown with ``tqdm.auto`` bars and a live loss/accuracy figure that redraws in
  place in Jupyter; outside Jupyter it prints one plain line per epoch instead (no bars, no escape
  sequences: readable in a terminal, a log file or CI).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .augment import memory_format_of, random_crop_flip
from .device import get_device

Batch = tuple[torch.Tensor, torch.Tensor]


class Timer:
    """Stopwatch that records laps: ``t = Timer(); ...; t.stop()``; ``t.sum()``, ``t.avg()``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.start()

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        self.times.append(time.perf_counter() - self._t0)
        return self.times[-1]

    def sum(self) -> float:
        return sum(self.times)

    def avg(self) -> float:
        return self.sum() / len(self.times) if self.times else 0.0


class Accumulator:
    """Running sums of ``n`` quantities: ``acc.add(loss_sum, correct, count)``."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *values: float) -> None:
        if len(values) != len(self.data):
            raise ValueError(f"Accumulator holds {len(self.data)} values, got {len(values)}.")
        self.data = [a + float(b) for a, b in zip(self.data, values)]

    def reset(self) -> None:
        self.data = [0.0] * len(self.data)

    def __getitem__(self, i: int) -> float:
        return self.data[i]


@dataclass
class History:
    """Per-epoch metrics returned by :func:`fit`."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    device: str = ""

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def summary(self) -> str:
        if not self.epochs:
            return "no epochs run"
        parts = [
            f"{self.epochs} epochs on {self.device}",
            f"train loss {self.train_loss[-1]:.4f}",
            f"train acc {self.train_acc[-1]:.2%}",
        ]
        if self.val_acc:
            parts.append(f"val acc {self.val_acc[-1]:.2%} (best {max(self.val_acc):.2%})")
        parts.append(f"{sum(self.epoch_time):.1f} s, {sum(self.images_per_s) / self.epochs:,.0f} img/s")
        return " | ".join(parts)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures can be redrawn in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LivePlot:
    """Loss and accuracy curves that redraw in place in Jupyter (d2l's ``Animator`` idea).

    Outside a notebook it draws nothing; call :func:`~course_utils.plotting.plot_history`
    afterwards to get the figure.
    """

    def __init__(self, title: str = "", enabled: bool = True) -> None:
        self.enabled = enabled and in_notebook()
        self._handle = None
        if self.enabled:
            import matplotlib.pyplot as plt

            self.fig, (self.ax_loss, self.ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
            self.fig.suptitle(title)
            plt.close(self.fig)  # we display it ourselves, once, and then update in place

    def update(self, history: History) -> None:
        if not self.enabled:
            return
        from IPython.display import display

        from .plotting import draw_history

        draw_history(history, self.ax_loss, self.ax_acc)
        self.fig.tight_layout()
        if self._handle is None:
            self._handle = display(self.fig, display_id=True)
        else:
            self._handle.update(self.fig)


def _model_memory_format(model: nn.Module) -> torch.memory_format:
    """The layout of the model's 4-D (convolution) weights: channels-last or the ordinary one."""
    for param in model.parameters():
        if param.ndim == 4:
            return memory_format_of(param)
    return torch.contiguous_format


def _set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> None:
    """Store the model's 4-D weights in ``memory_format`` (a no-op when they already are)."""
    if any(p.ndim == 4 and not p.is_contiguous(memory_format=memory_format) for p in model.parameters()):
        model.to(memory_format=memory_format)


def _in_format(X: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``X`` in ``memory_format`` if it is a batch of images (no copy when it already is)."""
    return X.contiguous(memory_format=memory_format) if X.ndim == 4 else X


def _as_batches(
    data: Any,
    batch_size: int,
    shuffle: bool,
    device: torch.device,
    generator: torch.Generator | None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[Callable[[], Iterator[Batch]], int, int]:
    """Normalise the accepted data formats to (make_iterator, n_examples, n_batches).

    Every batch of images comes out in ``memory_format`` (the model's layout).
    """
    if isinstance(data, torch.utils.data.DataLoader):
        n = len(data.dataset) if hasattr(data.dataset, "__len__") else 0

        def loader_batches() -> Iterator[Batch]:
            for X, y in data:
                yield _in_format(X.to(device, non_blocking=True), memory_format), y.to(device, non_blocking=True)

        return loader_batches, n, len(data)
    if (isinstance(data, (tuple, list)) and len(data) == 2) or hasattr(data, "images"):
        X, y = (data.images, data.labels) if hasattr(data, "images") else data
        if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
            raise TypeError("Data given as a pair must be two tensors (X, y); use torch.as_tensor first.")
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} examples but y has {len(y)}.")
        if len(X) == 0:
            raise ValueError("The data set is empty; check the limit/subset you asked for.")
        X, y = _in_format(X.to(device), memory_format), y.to(device)  # once: batches X[idx] keep the layout
        n = len(X)

        def tensor_batches() -> Iterator[Batch]:
            order = torch.randperm(n, device=device, generator=generator) if shuffle else torch.arange(n, device=device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                yield X[idx], y[idx]

        return tensor_batches, n, math.ceil(n / batch_size)
    raise TypeError(
        f"fit/evaluate take an ImageData, an (X, y) pair of tensors or a DataLoader, not {type(data).__name__}."
    )


def _labels_of(data: Any) -> torch.Tensor | None:
    """All labels of tensor data (an ImageData or an (X, y) pair); None for a DataLoader."""
    if hasattr(data, "labels") and isinstance(data.labels, torch.Tensor):
        return data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], torch.Tensor):
        return data[1]
    return None


def _is_classification_loss(loss_fn: Callable | None) -> bool:
    """True for the losses that take integer class labels (the default cross-entropy among them)."""
    import torch.nn.functional as F

    return (
        loss_fn is None
        or isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss))
        or loss_fn in (F.cross_entropy, F.nll_loss)
    )


def _check_label_kind(y: torch.Tensor, loss_fn: Callable | None) -> None:
    """Integer class labels ``[N]`` for a classification loss: one-hot or float labels get a clear error."""
    if not _is_classification_loss(loss_fn):
        return  # a custom loss may take any target (regression, soft labels, ...)
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        one_hot = " (one-hot rows?)" if y.ndim == 2 else ""
        raise ValueError(
            f"fit/evaluate expect integer class labels: a 1-D tensor of class indices 0..C-1 (dtype int64). "
            f"Got {str(y.dtype).removeprefix('torch.')} labels of shape {tuple(y.shape)}{one_hot}. "
            "Turn one-hot rows into indices with y.argmax(dim=1), float labels with y.long(); "
            "for another kind of target pass your own loss_fn."
        )


def _check_label_range(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Class indices must be < the number of model outputs (checked once; reads two numbers from the device)."""
    if logits.ndim != 2 or labels.ndim != 1 or labels.is_floating_point() or not len(labels):
        return
    low, high = (int(v) for v in torch.stack([labels.min(), labels.max()]).tolist())
    outputs = logits.shape[1]
    if high >= outputs:
        raise ValueError(
            f"The model has {outputs} outputs but the labels go up to {high}: a classifier for "
            f"{high + 1} classes needs (at least) {high + 1} outputs. Give its last layer "
            f"{high + 1} outputs (e.g. nn.Linear(..., {high + 1})) or check the labels."
        )
    if low < 0:
        raise ValueError(f"Labels must be class indices 0..{outputs - 1}, but one is {low}.")


def _model_device(model: nn.Module, data: Any) -> torch.device:
    """Where the model lives; for a model without parameters or buffers, where the data lives (else the CPU)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    X = data.images if hasattr(data, "images") else data[0] if isinstance(data, (tuple, list)) and data else None
    return X.device if isinstance(X, torch.Tensor) else torch.device("cpu")


def _batch_stats(logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of losses and number correct in a batch, kept on the device."""
    correct = (
        (logits.argmax(dim=1) == y).sum() if logits.ndim == 2 and y.ndim == 1 else torch.zeros((), device=y.device)
    )
    return loss.detach() * len(y), correct


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _augmenter(
    augment: str | Callable | None, generator: torch.Generator | None
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if augment is None or callable(augment):
        return augment
    if augment == "crop_flip":
        return lambda batch: random_crop_flip(batch, generator=generator)
    raise ValueError(f"Unknown augment {augment!r}: use 'crop_flip', a function batch -> batch, or None.")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    loss_fn: Callable | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``data`` (in eval mode, no gradients).

    ``device`` defaults to where the model is (for a model without parameters: where the data is).
    """
    device = get_device(device) if device else _model_device(model, data)
    labels = _labels_of(data)
    if labels is not None:
        _check_label_kind(labels, loss_fn)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    make_iter, n, _ = _as_batches(data, batch_size, False, device, None, _model_memory_format(model))
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device)
    count = 0
    for X, y in make_iter():
        logits = model(X)
        if count == 0:
            _check_label_kind(y, loss_fn)
            _check_label_range(logits, labels if labels is not None else y)
        loss_sum, correct = _batch_stats(logits, y, _loss(loss_fn, logits, y))
        total_loss += loss_sum
        total_correct += correct
        count += len(y)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got no examples: the data (or its DataLoader) is empty.")
    return {"loss": float(total_loss) / count, "acc": float(total_correct) / count}


def _loss(loss_fn: Callable, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss_fn(logits, y)``, with a clear message for a label beyond the model's outputs in a later batch."""
    try:
        return loss_fn(logits, y)
    except IndexError as err:
        if "out of bounds" not in str(err):
            raise
        _check_label_range(logits, y)
        raise


def epoch_line(history: History, epochs: int) -> str:
    """The plain progress line of the latest epoch, e.g.
    ``epoch 3/10 | train loss 0.4120, acc 87.50% | val loss 0.3981, acc 88.10% | 1.2 s, 5,120 img/s``."""
    i = history.epochs
    parts = [f"epoch {i}/{epochs}", f"train loss {history.train_loss[-1]:.4f}, acc {history.train_acc[-1]:.2%}"]
    if history.val_loss:
        parts.append(f"val loss {history.val_loss[-1]:.4f}, acc {history.val_acc[-1]:.2%}")
    parts.append(f"{history.epoch_time[-1]:.1f} s, {history.images_per_s[-1]:,.0f} img/s")
    return " | ".join(parts)


def _check_divergence(
    train_loss: float, first_loss: float | None, epoch: int, optimizer: torch.optim.Optimizer
) -> None:
    """Stop a run whose loss is no longer finite or has exploded (ten-fold, and by more than 10, above the
    first batch's loss), with a hint: nothing useful is learned after that."""
    lr = optimizer.param_groups[0].get("lr", "?")
    hint = (
        f"The learning rate (lr={lr}) is probably too high: try 10x smaller. Also check that the inputs are normalised."
    )
    if not math.isfinite(train_loss):
        raise FloatingPointError(f"Training loss became {train_loss} in epoch {epoch + 1}. {hint}")
    if first_loss is not None and math.isfinite(first_loss) and train_loss > max(10 * first_loss, first_loss + 10):
        raise FloatingPointError(
            f"Training diverged: the loss rose from {first_loss:.4g} (first batch) to "
            f"{train_loss:.4g} (epoch {epoch + 1}). {hint}"
        )


def fit(
    model: nn.Module,
    train: Any,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable | None = None,
    val: Any = None,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    scheduler: Any = None,
    scheduler_step: str = "epoch",
    live_plot: bool = True,
    progress: bool = True,
    seed: int | None = 0,
    title: str = "",
    callbacks: Iterable[Callable[[int, History], None]] = (),
    fast: bool | None = None,
    augment: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    compile_model: bool = False,
) -> History:
    """Train ``model`` and return a :class:`History` of per-epoch metrics.

    Parameters
    ----------
    train, val : an ``ImageData``, an ``(X, y)`` pair of tensors, or a ``DataLoader``.
    optimizer : any ``torch.optim`` optimiser; default Adam with learning rate ``lr``.
    loss_fn : default ``nn.CrossEntropyLoss()``.
    scheduler : a learning-rate scheduler, stepped once per epoch (``scheduler_step="epoch"``)
        or once per batch (``"batch"``, e.g. for OneCycleLR).
    progress : in Jupyter, tqdm bars for epochs and batches; elsewhere one plain line per epoch
        (:func:`epoch_line`). ``False``: print nothing.
    seed : seeds the shuffling order so that runs are reproducible (``None``: do not seed).
    callbacks : functions ``f(epoch, history)`` called after every epoch; one that returns ``True``
        stops training (early stopping, time-to-accuracy).
    fast : switch on the fast path (default: on for CUDA, off elsewhere). It turns ``amp`` and
        ``channels_last`` on unless they are given explicitly, and unwraps a ``DataLoader`` over a
        ``TensorDataset`` so that the data lives on the device.
    augment : ``"crop_flip"`` (pad 4, random crop, horizontal flip, done on the device for the whole
        batch) or any function ``batch -> batch``; applied to training batches only.
    amp : bf16 autocast (needs a GPU with bf16 support; ignored elsewhere).
    channels_last : store images and conv weights channels-last (NHWC), faster on GPU tensor cores.
        CUDA only: elsewhere the model and all batches are kept NCHW (``True`` there gives a warning).
    compile_model : wrap the model in ``torch.compile`` (first epoch slower, later ones faster).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError("scheduler_step must be 'epoch' or 'batch'.")
    device = get_device(device)  # None: the best available; a name is checked ("gpu" gets a clear message)
    if optimizer is None and not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            "The model has no trainable parameters, so there is nothing to train. Check that its "
            "layers are created in __init__ (as attributes or inside nn.Sequential/nn.ModuleList)."
        )
    labels = _labels_of(train)
    if labels is not None:
        _check_label_kind(labels, loss_fn)
    fast = device.type == "cuda" if fast is None else fast
    amp = fast if amp is None else amp
    amp = bool(amp) and device.type == "cuda" and torch.cuda.is_bf16_supported()
    channels_last = (fast and device.type == "cuda") if channels_last is None else bool(channels_last)
    if channels_last and device.type != "cuda":
        warnings.warn(
            f"channels_last=True is ignored on {device.type}: it only pays off on CUDA GPUs, and on some "
            "CPUs (AVX2 without AVX-512) oneDNN crashes in convolution backward with channels-last "
            "tensors. Training in the ordinary NCHW layout.",
            stacklevel=2,
        )
        channels_last = False
    # One layout for the model and every batch it sees (a mixture crashes oneDNN on some CPUs).
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if fast and device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithm for these shapes once
    if (
        fast
        and isinstance(train, torch.utils.data.DataLoader)
        and isinstance(train.dataset, torch.utils.data.TensorDataset)
    ):
        batch_size = train.batch_size or batch_size
        train = tuple(train.dataset.tensors)
    model.to(device)
    _set_memory_format(model, memory_format)
    step_model = torch.compile(model) if compile_model else model
    # fused Adam: one kernel for all parameters instead of several per tensor (CUDA only)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr, fused=fast and device.type == "cuda")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    augment_fn = _augmenter(augment, generator)
    make_iter, n_train, n_batches = _as_batches(train, batch_size, True, device, generator, memory_format)
    history = History(device=str(device) + (" (fast path)" if fast else ""))
    plot = LivePlot(title, enabled=live_plot)
    # Jupyter: tqdm bars (epochs, and batches within the epoch). Elsewhere (a script, CI log, terminal IPython):
    # one plain line per epoch, since nested bars turn into escape sequences and carriage returns there.
    bars = progress and in_notebook()
    if bars:
        from tqdm.auto import tqdm

        epoch_bar = tqdm(range(epochs), desc="epochs", leave=True)
    else:
        epoch_bar = range(epochs)
    first_loss: float | None = None  # loss of the very first batch: the reference for "the loss exploded"
    for epoch in epoch_bar:
        model.train()
        timer = Timer()
        total_loss = torch.zeros((), device=device)
        total_correct = torch.zeros((), device=device)
        seen = 0
        batches = make_iter()
        if bars:
            batches = tqdm(batches, total=n_batches, desc=f"epoch {epoch + 1}", leave=False)
        for X, y in batches:
            if augment_fn is not None:
                X = _in_format(augment_fn(X), memory_format)  # whatever layout a user's function returns
            with _autocast(device, amp):
                logits = step_model(X)
                if first_loss is None:  # once per fit: label checks before a device-side assert could fire
                    _check_label_kind(y, loss_fn)
                    _check_label_range(logits, labels if labels is not None else y)
                loss = _loss(loss_fn, logits, y)
            if first_loss is None:
                first_loss = float(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            loss_sum, correct = _batch_stats(logits, y, loss)
            total_loss += loss_sum
            total_correct += correct
            seen += len(y)
        train_loss = float(total_loss) / seen  # the one host sync of the epoch
        _check_divergence(train_loss, first_loss, epoch, optimizer)
        elapsed = timer.stop()
        history.train_loss.append(train_loss)
        history.train_acc.append(float(total_correct) / seen)
        history.epoch_time.append(elapsed)
        history.images_per_s.append(seen / elapsed if elapsed > 0 else float("inf"))
        history.lr.append(optimizer.param_groups[0]["lr"])
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        if val is not None:
            with _autocast(device, amp):
                metrics = evaluate(model, val, loss_fn, device)
            history.val_loss.append(metrics["loss"])
            history.val_acc.append(metrics["acc"])
        if bars:
            postfix = {"loss": f"{train_loss:.4f}"}
            if history.val_acc:
                postfix["val_acc"] = f"{history.val_acc[-1]:.3f}"
            epoch_bar.set_postfix(postfix)
        elif progress:
            print(epoch_line(history, epochs), flush=True)
        plot.update(history)
        stop = [callback(epoch, history) for callback in callbacks]
        if any(flag is True for flag in stop):
            break
    return history
