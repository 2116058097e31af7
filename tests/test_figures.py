"""Every lecture shows its figures, also when it runs headless (``MPLBACKEND=Agg``, as under nbval and CI).

The counts come from the outputs nbval really produced in this session (``conftest.py`` counts the images of
every executed cell); a notebook that did not run in this session is executed here. A lecture that loses a
figure, or gains one without this table being updated, fails: look at the new figure, then update the number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import count_figures, figures_file

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_FIGURES = {
    "L00_learning_recipe": 13,
    "L01_backprop_by_hand": 6,
    "L02_convolution_arithmetic": 7,
    "L03_initialisation_variance": 8,
    "L04_double_descent": 11,
    "L05_optimisers": 13,
    "L06_generalisation_regularisation": 10,
    "L07_batch_normalisation": 6,
    "L08_cnn_architectures": 2,
    "L09_fast_training_loops": 2,
    "L10_understanding_and_breaking_cnns": 9,
    "L11_support_vector_machines": 6,
    "L12_babysitting_mnist_to_svhn": 9,
}


def figures_shown(stem: str) -> int:
    """Images in the outputs of lectures/<stem>.ipynb, executed headless with the Agg backend."""
    relative = f"lectures/{stem}.ipynb"
    counted = figures_file(relative)
    if counted.exists():
        return json.loads(counted.read_text())["figures"]
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / relative, as_version=4)
    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # what a headless run uses; the notebook must still show figures
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str((ROOT / relative).parent)}}
        ).execute()
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backend
    return sum(count_figures(cell.get("outputs")) for cell in nb.cells if cell.cell_type == "code")


def test_every_lecture_is_in_the_table():
    assert sorted(EXPECTED_FIGURES) == sorted(p.stem for p in (ROOT / "lectures").glob("L*.ipynb"))


@pytest.mark.parametrize("stem", sorted(EXPECTED_FIGURES))
def test_lecture_shows_its_figures(stem):
    shown = figures_shown(stem)
    assert shown == EXPECTED_FIGURES[stem], f"{stem} showed {shown} figures, expected {EXPECTED_FIGURES[stem]}"


def test_count_figures_counts_images_only():
    outputs = [
        {"output_type": "stream", "text": "hi"},
        {"output_type": "display_data", "data": {"image/png": "...", "text/plain": "<Figure>"}},
        {"output_type": "execute_result", "data": {"text/plain": "3"}},
    ]
    assert count_figures(outputs) == 1 and count_figures(None) == 0
