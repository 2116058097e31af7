"""A small, readable training loop: :func:`fit`, :func:`train_epoch` and :func:`evaluate`.

:func:`fit` is the loop of lecture L09 with the bookkeeping around it::

    for epoch in range(epochs):
        loss_sum, correct, seen = train_epoch(run, batches)  # L09's resident_epoch: one pass, sums on the device
        history.log(train_loss=float(loss_sum) / seen, ...)  # the epoch's host reads
        evaluate(model, val)                                 # validation, in eval mode without gradients
        callback(epoch, history)                             # early stopping, time-to-accuracy, ...

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
  place in Jupyter; outside Jupyter (and in a fast-mode test or CI run) it prints one plain line per
  epoch instead (no bars, no escape sequences: readable in a terminal, a log file or CI). The display
  code lives in :mod:`course_utils.plotting` (:class:`~course_utils.plotting.TrainingProgress`).
* Nothing global is left changed: cuDNN's autotuner, switched on for the fast path, is restored.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .augment import memory_format_of, random_crop_flip
from .device import get_device
from .plotting import TrainingProgress
from .timing import Timer

Batch = tuple[torch.Tensor, torch.Tensor]


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

    def log(self, **metrics: float) -> None:
        """Append one epoch's value to each named list: ``history.log(train_loss=0.4, lr=1e-3)``."""
        for name, value in metrics.items():
            getattr(self, name).append(value)

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


@dataclass
class TrainingRun:
    """Everything one :func:`fit` call trains with, decided once before the first epoch."""

    model: nn.Module
    step_model: Callable[[torch.Tensor], torch.Tensor]  # the model, or torch.compile(model)
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    device: torch.device
    batches: Callable[[], Iterator[Batch]]  # a fresh (shuffled) pass over the training data
    n_batches: int
    fast: bool = False
    amp: bool = False
    memory_format: torch.memory_format = torch.contiguous_format
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    scheduler: Any = None
    scheduler_step: str = "epoch"
    labels: torch.Tensor | None = None  # all training labels, for the one-off label checks
    first_loss: float | None = None  # the very first batch's loss: the reference for "the loss exploded"

    @property
    def autotune(self) -> bool:
        """Let cuDNN pick its fastest convolution algorithms: the fast path on a CUDA GPU."""
        return self.fast and self.device.type == "cuda"

    def describe(self) -> str:
        """Where the run trains, e.g. ``"cuda:0 (fast path)"`` or ``"cpu"``."""
        return str(self.device) + (" (fast path)" if self.fast else "")

    def step_scheduler(self, when: str) -> None:
        """Step the learning-rate scheduler if it is stepped ``when`` ("batch" or "epoch")."""
        if self.scheduler is not None and self.scheduler_step == when:
            self.scheduler.step()


def train_step(run: TrainingRun, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch; returns the loss and the logits (nothing is read to the host)."""
    if run.augment is not None:
        X = _in_format(run.augment(X), run.memory_format)  # whatever layout a user's function returns
    with _autocast(run.device, run.amp):
        logits = run.step_model(X)
        if run.first_loss is None:  # once per fit: label checks before a device-side assert could fire
            _check_label_kind(y, run.loss_fn)
            _check_label_range(logits, run.labels if run.labels is not None else y)
        loss = _loss(run.loss_fn, logits, y)
    if run.first_loss is None:
        run.first_loss = float(loss.detach())
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.step_scheduler("batch")
    return loss, logits


def train_epoch(run: TrainingRun, batches: Iterable[Batch]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One pass over ``batches``, as L09's ``resident_epoch``: the summed loss and number correct, still on
    the device (read them once per epoch), and the number of examples seen."""
    run.model.train()
    total_loss = torch.zeros((), device=run.device)
    total_correct = torch.zeros((), device=run.device)
    seen = 0
    for X, y in batches:
        loss, logits = train_step(run, X, y)
        loss_sum, correct = _batch_stats(logits, y, loss)
        total_loss += loss_sum
        total_correct += correct
        seen += len(y)
    return total_loss, total_correct, seen


def _per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


@contextlib.contextmanager
def cudnn_autotuning(enabled: bool) -> Iterator[None]:
    """Let cuDNN pick the fastest convolution algorithm for the shapes it sees (``enabled``), and put
    ``torch.backends.cudnn.benchmark`` back as it was afterwards, whatever happens."""
    previous = torch.backends.cudnn.benchmark
    if enabled:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _check_fit_arguments(model: nn.Module, epochs: Any, batch_size: int, scheduler_step: str, optimizer: Any) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError("scheduler_step must be 'epoch' or 'batch'.")
    if optimizer is None and not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            "The model has no trainable parameters, so there is nothing to train. Check that its "
            "layers are created in __init__ (as attributes or inside nn.Sequential/nn.ModuleList)."
        )


def _fast_settings(
    device: torch.device, fast: bool | None, amp: bool | None, channels_last: bool | None
) -> tuple[bool, bool, torch.memory_format]:
    """Resolve ``fast``, ``amp`` and ``channels_last`` for ``device``: (fast, amp, memory format)."""
    fast = device.type == "cuda" if fast is None else fast
    amp = fast if amp is None else amp
    amp = bool(amp) and device.type == "cuda" and torch.cuda.is_bf16_supported()
    channels_last = (fast and device.type == "cuda") if channels_last is None else bool(channels_last)
    if channels_last and device.type != "cuda":
        warnings.warn(
            f"channels_last=True is ignored on {device.type}: it only pays off on CUDA GPUs, and on some "
            "CPUs (AVX2 without AVX-512) oneDNN crashes in convolution backward with channels-last "
            "tensors. Training in the ordinary NCHW layout.",
            stacklevel=4,  # the caller of fit()
        )
        channels_last = False
    # One layout for the model and every batch it sees (a mixture crashes oneDNN on some CPUs).
    return fast, amp, torch.channels_last if channels_last else torch.contiguous_format


def _prepare(
    model: nn.Module,
    train: Any,
    *,
    device: torch.device | str | None,
    fast: bool | None,
    amp: bool | None,
    channels_last: bool | None,
    batch_size: int,
    seed: int | None,
    optimizer: torch.optim.Optimizer | None,
    lr: float,
    loss_fn: Callable | None,
    augment: str | Callable | None,
    compile_model: bool,
    scheduler: Any,
    scheduler_step: str,
) -> TrainingRun:
    """Device, layouts, optimiser, loss and batches for :func:`fit` (its arguments, resolved once)."""
    device = get_device(device)  # None: the best available; a name is checked ("gpu" gets a clear message)
    labels = _labels_of(train)
    if labels is not None:
        _check_label_kind(labels, loss_fn)
    fast, amp, memory_format = _fast_settings(device, fast, amp, channels_last)
    if fast and isinstance(train, torch.utils.data.DataLoader) and isinstance(train.dataset, TensorDataset):
        batch_size, train = train.batch_size or batch_size, tuple(train.dataset.tensors)  # batch on the device
    model.to(device)
    _set_memory_format(model, memory_format)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    batches, _, n_batches = _as_batches(train, batch_size, True, device, generator, memory_format)
    return TrainingRun(
        model=model,
        step_model=torch.compile(model) if compile_model else model,
        # fused Adam: one kernel for all parameters instead of several per tensor (CUDA only)
        optimizer=optimizer or torch.optim.Adam(model.parameters(), lr=lr, fused=fast and device.type == "cuda"),
        loss_fn=loss_fn or nn.CrossEntropyLoss(),
        device=device,
        batches=batches,
        n_batches=n_batches,
        fast=fast,
        amp=amp,
        memory_format=memory_format,
        augment=_augmenter(augment, generator),
        scheduler=scheduler,
        scheduler_step=scheduler_step,
        labels=labels,
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
    callbacks: Iterable[Callable[[int, History], bool | None]] = (),
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
    progress, live_plot, title : what is shown while training (nothing changes what is computed).
        ``progress=True`` shows tqdm.auto bars (epochs, and batches within the epoch) in a Jupyter
        notebook; outside Jupyter (a script, a terminal, a CI log) it prints one plain line per epoch
        (:func:`~course_utils.plotting.epoch_line`). ``live_plot=True`` redraws the loss and accuracy
        curves (titled ``title``) in place after every epoch, in Jupyter only. The rule for "in Jupyter"
        is :func:`~course_utils.plotting.live_display`: a Jupyter kernel, except in a fast-mode test or
        CI run (``COURSE_FAST=1`` with ``CI`` or the test-suite's ``COURSE_RECORD_DIR`` set), where a
        notebook executed by nbval gets the plain lines and no live figure, so its output stays clean
        (``COURSE_LIVE_DISPLAY=1`` or ``0`` overrides the rule: always or never in a kernel).
        ``progress=False`` prints nothing; ``live_plot=False`` draws nothing.
    seed : seeds the shuffling order so that runs are reproducible (``None``: do not seed).
    callbacks : functions ``f(epoch, history)`` called after every epoch; one that returns ``True``
        stops training (early stopping, time-to-accuracy).
    fast : switch on the fast path (default: on for CUDA, off elsewhere). It turns ``amp`` and
        ``channels_last`` on unless they are given explicitly, lets cuDNN pick its fastest convolution
        algorithms (restored when ``fit`` returns) and unwraps a ``DataLoader`` over a ``TensorDataset``
        so that the data lives on the device.
    augment : ``"crop_flip"`` (pad 4, random crop, horizontal flip, done on the device for the whole
        batch) or any function ``batch -> batch``; applied to training batches only.
    amp : bf16 autocast (needs a GPU with bf16 support; ignored elsewhere).
    channels_last : store images and conv weights channels-last (NHWC), faster on GPU tensor cores.
        CUDA only: elsewhere the model and all batches are kept NCHW (``True`` there gives a warning).
    compile_model : wrap the model in ``torch.compile`` (first epoch slower, later ones faster).
    """
    _check_fit_arguments(model, epochs, batch_size, scheduler_step, optimizer)
    run = _prepare(
        model,
        train,
        device=device,
        fast=fast,
        amp=amp,
        channels_last=channels_last,
        batch_size=batch_size,
        seed=seed,
        optimizer=optimizer,
        lr=lr,
        loss_fn=loss_fn,
        augment=augment,
        compile_model=compile_model,
        scheduler=scheduler,
        scheduler_step=scheduler_step,
    )
    history = History(device=run.describe())
    shown = TrainingProgress(epochs, progress=progress, live_plot=live_plot, title=title)
    with cudnn_autotuning(run.autotune):
        for epoch in shown.epochs():
            timer = Timer()
            loss_sum, correct, seen = train_epoch(run, shown.batches(run.batches(), run.n_batches, epoch))
            train_loss = float(loss_sum) / seen  # one of the two host reads of the epoch
            _check_divergence(train_loss, run.first_loss, epoch, run.optimizer)
            elapsed = timer.stop()
            history.log(
                train_loss=train_loss,
                train_acc=float(correct) / seen,
                epoch_time=elapsed,
                images_per_s=_per_second(seen, elapsed),
                lr=run.optimizer.param_groups[0]["lr"],
            )
            run.step_scheduler("epoch")
            if val is not None:
                with _autocast(run.device, run.amp):
                    metrics = evaluate(model, val, run.loss_fn, run.device)
                history.log(val_loss=metrics["loss"], val_acc=metrics["acc"])
            shown.update(history)
            if any([callback(epoch, history) is True for callback in callbacks]):  # all run, then any stops
                break
    return history
