"""Save trained models and skip retraining: :func:`fit_or_load`, :func:`save_checkpoint`, :func:`load_checkpoint`.

Training a CNN on the full data set takes minutes on a GPU and hours on a CPU, so a notebook
that is re-run should not train again when nothing has changed. :func:`fit_or_load` is a drop-in
replacement for :func:`~course_utils.training.fit`::

    history = fit_or_load(model, "A6_resnet18", train, epochs=30, val=test, optimizer=opt)

It fingerprints everything that decides the result of the training run (the model's architecture
and its *initial* weights, the training and validation data, the number of epochs and every
training setting such as the optimiser, the learning rate and the schedule) and turns the
fingerprint into a short hash. The trained weights and the :class:`~course_utils.training.History`
are stored in ``data_dir()/"checkpoints"/<name>-<hash>.pt``. On the next run with the same
settings the file is loaded instead of training, and the function prints which of the two happened.
Change anything that matters (one more epoch, another learning rate, another init) and the hash
changes, so the model is trained again.

Only the model's weights and the history are stored, not the optimiser state: a loaded model is
ready for evaluation, not for resuming an interrupted run.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import DataDirError, data_dir, writable_data_subdir
from .device import get_device
from .training import History, fit

FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
# fit() arguments that change how training is displayed or where it runs, not what it computes.
_IGNORED_FIT_KWARGS = {"live_plot", "progress", "title", "callbacks", "device"}


def fit_defaults() -> dict[str, Any]:
    """``fit``'s settings and their defaults, read from its signature: every keyword argument that decides
    what training computes (not ``epochs`` and ``val``, which are fingerprinted on their own, nor the
    display and placement settings in ``_IGNORED_FIT_KWARGS``)."""
    return {
        name: param.default
        for name, param in inspect.signature(fit).parameters.items()
        if param.kind is param.KEYWORD_ONLY
        and param.default is not param.empty
        and name not in _IGNORED_FIT_KWARGS | {"val"}
    }


# --------------------------------------------------------------------------- paths and names
def checkpoint_dir() -> Path:
    """Folder holding the checkpoints: ``data_dir()/"checkpoints"`` (created if missing).

    In a read-only data folder an existing checkpoint folder is still returned (checkpoints can be loaded).
    """
    path = data_dir() / "checkpoints"
    if path.is_dir():
        return path
    return writable_data_subdir("checkpoints")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"Checkpoint name {name!r} is not valid: use letters, digits, '-' and '_' only "
            "(for example 'A6_resnet18'), starting with a letter or digit."
        )
    return name


def _resolve_path(path_or_name: str | os.PathLike) -> Path:
    """A bare name means ``checkpoint_dir()/<name>.pt``; anything with a folder or suffix is a path."""
    if isinstance(path_or_name, os.PathLike):
        return Path(path_or_name)
    if not isinstance(path_or_name, str) or not path_or_name:
        raise TypeError(f"Give a checkpoint name or a file path, not {path_or_name!r}.")
    if "/" in path_or_name or os.sep in path_or_name or path_or_name.endswith(".pt"):
        return Path(path_or_name).expanduser()
    return checkpoint_dir() / f"{_check_name(path_or_name)}.pt"


# --------------------------------------------------------------------------- fingerprints
def _digest(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:16]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().tobytes()


def _tensor_fingerprint(t: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, exact sums and the bytes of a few slices: cheap even for 50,000 images."""
    t = t.detach()
    flat = t.reshape(len(t), -1) if t.ndim > 0 and len(t) else t.reshape(1, -1)
    as64 = flat.to(torch.float64)
    head, tail = flat[:64], flat[-64:]
    return {
        "shape": list(t.shape),
        "dtype": str(t.dtype),
        "sum": float(as64.sum()),
        "sum_sq": float((as64 * as64).sum()),
        "slices": _digest(_tensor_bytes(head), _tensor_bytes(tail)),
    }


def _data_fingerprint(data: Any) -> Any:
    if data is None:
        return None
    if isinstance(data, torch.utils.data.DataLoader):
        return {
            "loader": type(data).__name__,
            "batch_size": data.batch_size,
            "drop_last": data.drop_last,
            "dataset": _data_fingerprint(data.dataset),
        }
    if hasattr(data, "images") and hasattr(data, "labels"):
        out = {"images": _tensor_fingerprint(data.images), "labels": _tensor_fingerprint(data.labels)}
        for attr in ("name", "split", "source"):
            if isinstance(getattr(data, attr, None), str):
                out[attr] = getattr(data, attr)
        if getattr(data, "transform", None) is not None:
            out["transform"] = repr(data.transform)
        return out
    if isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data):
        return [_tensor_fingerprint(t) for t in data]
    if isinstance(data, torch.utils.data.TensorDataset):
        return [_tensor_fingerprint(t) for t in data.tensors]
    if isinstance(data, torch.utils.data.Dataset):
        out = {"dataset": type(data).__qualname__}
        if hasattr(data, "__len__"):
            out["len"] = len(data)
        for attr in ("tensors", "images", "labels", "transform"):
            value = getattr(data, attr, None)
            if isinstance(value, torch.Tensor):
                out[attr] = _tensor_fingerprint(value)
            elif isinstance(value, (tuple, list)) and value and all(isinstance(t, torch.Tensor) for t in value):
                out[attr] = [_tensor_fingerprint(t) for t in value]
            elif value is not None and attr == "transform":
                out[attr] = repr(value)
        return out
    raise TypeError(
        f"fit_or_load cannot fingerprint training data of type {type(data).__name__}. Pass an ImageData, "
        "an (X, y) pair of tensors or a DataLoader (the same things fit() accepts)."
    )


def _model_source(model: nn.Module) -> str | None:
    try:
        return _digest(inspect.getsource(type(model)).encode())
    except (OSError, TypeError):  # classes typed into some consoles have no retrievable source
        return None


def _model_fingerprint(model: nn.Module) -> dict[str, Any]:
    state = model.state_dict()
    weights = hashlib.sha256()
    for key in sorted(state):
        weights.update(key.encode())
        weights.update(_tensor_bytes(state[key]))
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "source": _model_source(model),
        "architecture": _digest(repr(model).encode()),
        "shapes": {k: list(v.shape) for k, v in state.items()},
        "initial_weights": weights.hexdigest()[:16],
    }


def _plain(value: Any) -> Any:
    """Turn a setting into JSON: numbers and strings as they are, objects by type and public settings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)  # repr keeps every digit: 0.1 and 0.1000001 hash differently
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, torch.Tensor):
        return _tensor_fingerprint(value) if value.numel() > 1 else _plain(value.item())
    if isinstance(value, torch.optim.Optimizer):
        groups = [
            {k: _plain(v) for k, v in g.items() if k != "params"} | {"n_params": len(g["params"])}
            for g in value.param_groups
        ]
        return {"optimizer": type(value).__name__, "groups": groups}
    if isinstance(value, torch.optim.lr_scheduler.LRScheduler):
        state = {k: v for k, v in value.state_dict().items() if not k.startswith("_") and not callable(v)}
        return {"scheduler": type(value).__name__, "state": _plain(state)}
    if isinstance(value, nn.Module):
        return {"module": repr(value)}
    if callable(value):
        return {"callable": f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"}
    return {"object": type(value).__qualname__}


def training_config(
    model: nn.Module,
    train: Any,
    *,
    epochs: int,
    val: Any = None,
    extra: dict[str, Any] | None = None,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """The fingerprint :func:`fit_or_load` hashes: everything that decides the trained weights."""
    settings = fit_defaults()  # passing a default explicitly gives the same hash as leaving it out
    settings.update({k: v for k, v in fit_kwargs.items() if k not in _IGNORED_FIT_KWARGS})
    return {
        "format": FORMAT_VERSION,
        "model": _model_fingerprint(model),
        "train": _data_fingerprint(train),
        "val": _data_fingerprint(val),
        "epochs": epochs,
        "fit": _plain(settings),
        "extra": _plain(extra or {}),
    }


def config_hash(config: dict[str, Any]) -> str:
    """Ten hex digits identifying a training configuration."""
    return _digest(json.dumps(config, sort_keys=True).encode())[:10]


# --------------------------------------------------------------------------- save / load
def save_checkpoint(
    model: nn.Module,
    path_or_name: str | os.PathLike,
    history: History | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write the model's weights (moved to the CPU), its history and config to a ``.pt`` file.

    ``path_or_name`` is a file path or a bare name (stored as ``checkpoint_dir()/<name>.pt``).
    The file is written to a temporary name first, so an interrupted save never leaves half a file.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint needs an nn.Module, got {type(model).__name__}.")
    if history is not None and not isinstance(history, History):
        raise TypeError(f"history must be a course_utils History (what fit returns), got {type(history).__name__}.")
    path = _resolve_path(path_or_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataDirError(
            f"Cannot create the folder {path.parent} for checkpoint {path.name}: "
            f"{err.strerror or err}. Choose a writable folder (COURSE_DATA_DIR for bare names)."
        ) from err
    payload = {
        "format": FORMAT_VERSION,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "state_dict": {k: v.detach().to("cpu") for k, v in model.state_dict().items()},
        "history": history.as_dict() if history is not None else None,
        "config": json.dumps(config, sort_keys=True) if config is not None else None,
        "saved_at": _dt.datetime.now().isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise DataDirError(
            f"Cannot write the checkpoint {path}: {err.strerror or err}. Give a path in a folder you "
            "can write to, or (for a bare name) set COURSE_DATA_DIR to such a folder."
        ) from err
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(
            f"No checkpoint at {path}. Train the model first (fit_or_load trains and saves it), or check the name."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise RuntimeError(
            f"Checkpoint {path} cannot be read ({type(err).__name__}: {err}). The file is damaged "
            "or was not written by save_checkpoint; delete it and train again."
        ) from err
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise RuntimeError(
            f"{path} is not a course checkpoint (no 'state_dict' inside). Delete it or pick another file."
        )
    return payload


def _architecture_problems(model: nn.Module, saved: dict[str, torch.Tensor]) -> list[str]:
    current = model.state_dict()
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    shapes = [
        f"{k}: saved {tuple(saved[k].shape)} vs model {tuple(current[k].shape)}"
        for k in current
        if k in saved and tuple(saved[k].shape) != tuple(current[k].shape)
    ]

    def few(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" ... ({len(items)} in all)" if len(items) > 5 else "")

    problems = []
    if missing:
        problems.append(f"the model has entries the checkpoint lacks: {few(missing)}")
    if unexpected:
        problems.append(f"the checkpoint has entries the model lacks: {few(unexpected)}")
    if shapes:
        problems.append(f"shapes differ: {few(shapes)}")
    return problems


def load_checkpoint(
    model: nn.Module, path_or_name: str | os.PathLike, device: torch.device | str | None = None
) -> History | None:
    """Load weights saved by :func:`save_checkpoint` into ``model``; return the stored History (or None).

    Raises a ``ValueError`` that lists the differing layers when the checkpoint was saved from a
    different architecture. ``device`` (default: where the model's parameters are) receives the weights.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"load_checkpoint needs an nn.Module, got {type(model).__name__}.")
    path = _resolve_path(path_or_name)
    payload = _read(path)
    problems = _architecture_problems(model, payload["state_dict"])
    if problems:
        raise ValueError(
            f"Checkpoint {path.name} was saved from a different architecture ({payload.get('model_class')}) "
            f"than this {type(model).__name__}: " + "; ".join(problems) + ". Build the model with the same class "
            "and arguments as when it was saved, or delete the file and train again."
        )
    model.load_state_dict(payload["state_dict"])
    if device is not None:
        model.to(device)
    history = payload.get("history")
    if history is None:
        return None
    known = {k: v for k, v in history.items() if k in History.__dataclass_fields__}
    return History(**known)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [prefix or "(root)"]


def fit_or_load(
    model: nn.Module,
    name: str,
    train: Any,
    *,
    epochs: int,
    val: Any = None,
    retrain: bool = False,
    extra: dict[str, Any] | None = None,
    verbose: bool = True,
    **fit_kwargs: Any,
) -> History:
    """Train with :func:`~course_utils.training.fit` and save, or load the result of an identical earlier run.

    Parameters
    ----------
    model, train, epochs, val, **fit_kwargs : exactly as for ``fit`` (optimizer, scheduler, lr, ...).
        Build the optimiser and scheduler *before* calling, as for ``fit``.
    name : short label for the file, e.g. ``"A3_lenet5"``; the file is ``<name>-<config hash>.pt``.
    retrain : train even when a matching checkpoint exists (and overwrite it).
    extra : anything else that should force retraining when it changes (e.g. ``{"init": "kaiming"}``).
        The initial weights are fingerprinted already, so a different init is noticed without it.
    verbose : print whether the model was trained or loaded, and from/to which file.

    The returned History has an extra attribute ``from_checkpoint`` (True when it was loaded), so a
    notebook can draw the curves with ``plot_history`` only when ``fit`` did not already draw them live.
    """
    _check_name(name)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}.")
    unknown = set(fit_kwargs) - set(inspect.signature(fit).parameters)
    if unknown:
        raise TypeError(f"fit_or_load got arguments that fit() does not take: {', '.join(sorted(unknown))}.")
    config = training_config(model, train, epochs=epochs, val=val, extra=extra, **fit_kwargs)
    path = checkpoint_dir() / f"{name}-{config_hash(config)}.pt"
    device = fit_kwargs.get("device") or get_device()
    if path.exists() and not retrain:
        history = load_checkpoint(model, path, device=device)
        if history is None:
            raise RuntimeError(f"{path} holds weights but no training history; delete it and run again.")
        history.from_checkpoint = True
        if verbose:
            print(
                f"Loaded {path.name} instead of training: same model, data and settings as a previous run "
                f"({history.summary()}). Pass retrain=True (or delete the file) to train again."
            )
        return history
    if verbose and not retrain:
        others = sorted(checkpoint_dir().glob(f"{name}-*.pt"), key=lambda p: p.stat().st_mtime)
        reason = "no checkpoint for this name yet"
        if others:
            try:
                old = json.loads(_read(others[-1]).get("config") or "{}")
                changed = sorted({".".join(key.split(".")[:2]) for key in _diff(old, config)})
                reason = (
                    ("settings differ from the last checkpoint in: " + ", ".join(changed[:8])) if changed else reason
                )
            except (RuntimeError, ValueError):
                pass
        print(f"Training {name} ({reason}).")
    history = fit(model, train, epochs=epochs, val=val, **fit_kwargs)
    save_checkpoint(model, path, history=history, config=config)
    history.from_checkpoint = False
    if verbose:
        print(f"Saved the trained model and its history to {path}.")
    return history


__all__ = [
    "checkpoint_dir",
    "config_hash",
    "fit_defaults",
    "fit_or_load",
    "load_checkpoint",
    "save_checkpoint",
    "training_config",
]
