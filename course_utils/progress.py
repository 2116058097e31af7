"""``progress(iterable)``: a tqdm.auto bar over a lecture's loop of trainings, where someone watches.

In JupyterLab, Notebook and Colab the bar is a widget that fills in place; in a script or a terminal it is
tqdm's text bar; in a fast-mode test or CI run (:func:`course_utils.plotting.quiet_test_run`) the
iterable is returned unchanged, so executed notebooks stay free of bars. Use it for cells that train several
networks one after another (each ``fit`` inside stays quiet: ``progress=False, live_plot=False``)::

    for name in progress(settings, desc="settings"):
        fit(make_model(name), data, epochs=..., progress=False, live_plot=False)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from .plotting import quiet_test_run

T = TypeVar("T")

__all__ = ["progress"]


def progress(iterable: Iterable[T], desc: str | None = None, total: int | None = None) -> Iterable[T]:
    """``iterable`` wrapped in a ``tqdm.auto`` bar (labelled ``desc``), or unchanged where nobody watches."""
    if quiet_test_run():  # a fast-mode run of the tests or CI (nbval's kernels included)
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total)
