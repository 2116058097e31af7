"""course_utils: the small helper package behind the course notebooks.

Everything a notebook needs is importable from the top level::

    from course_utils import load_dataset, fit, get_device, seed_everything
"""

from .config import DataDirError, data_dir, fast_or_full, is_fast_mode, is_offline, mode_summary
from .datasets import (
    CIFAR10_CLASSES,
    DATASETS,
    DIGIT_CLASSES,
    FASHION_CLASSES,
    CorruptCacheError,
    ImageData,
    load_dataset,
    train_val_split,
)
from .device import describe_device, get_device, seed_everything
from .gradcheck import numerical_gradient, numerical_gradient_array, relative_error
from .notebook_setup import setup_notebook
from .plotting import LivePlot, in_notebook, plot_decision_regions, plot_history, save_figure, show_images
from .records import load_records, record, record_many, set_notebook
from .standins import SHAPES10_CLASSES, make_shapes10, make_street_digits
from .timing import Timer, one_thread, render, time_call
from .toy_data import make_toy_2d
from .training import Accumulator, History, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "Accumulator",
    "CIFAR10_CLASSES",
    "CorruptCacheError",
    "DATASETS",
    "DataDirError",
    "DIGIT_CLASSES",
    "FASHION_CLASSES",
    "History",
    "ImageData",
    "LivePlot",
    "SHAPES10_CLASSES",
    "Timer",
    "data_dir",
    "describe_device",
    "evaluate",
    "fast_or_full",
    "fit",
    "get_device",
    "in_notebook",
    "is_fast_mode",
    "is_offline",
    "load_dataset",
    "load_records",
    "make_shapes10",
    "make_street_digits",
    "make_toy_2d",
    "mode_summary",
    "numerical_gradient",
    "numerical_gradient_array",
    "one_thread",
    "plot_decision_regions",
    "plot_history",
    "record",
    "record_many",
    "relative_error",
    "render",
    "save_figure",
    "seed_everything",
    "set_notebook",
    "setup_notebook",
    "show_images",
    "time_call",
    "train_val_split",
]
