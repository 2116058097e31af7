"""Numerical gradients by central differences, and the relative error used to compare them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of a scalar function ``f`` at ``x`` by central differences.

    ``x`` is perturbed in place one entry at a time (and restored), so ``f`` must read ``x``
    afresh each call. Costs ``2 * x.size`` evaluations of ``f``: fine for checking, far too slow
    for training (that is why backpropagation exists).
    """
    x = _check_array(x)
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Gradient of ``sum(f(x) * dout)`` with respect to ``x``: checks a layer's backward pass.

    ``dout`` is the upstream gradient, shaped like ``f(x)``.
    """
    x = _check_array(x)
    out = np.asarray(f(x))
    if out.shape != np.shape(dout):
        raise ValueError(f"dout has shape {np.shape(dout)} but f(x) has shape {out.shape}; they must match.")
    return numerical_gradient(lambda z: float(np.sum(np.asarray(f(z)) * dout)), x, h)


def relative_error(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> float:
    """max |a - b| / max(|a| + |b|, eps): about 1e-7 or less means the gradients agree.

    Rules of thumb (float64): < 1e-7 correct; 1e-7 .. 1e-4 suspicious; > 1e-2 wrong.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare gradients of shapes {a.shape} and {b.shape}.")
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps)))


def _check_array(x: np.ndarray) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy array (it is perturbed in place), got {type(x).__name__}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must hold floats to be perturbed, got dtype {x.dtype}; use x.astype(float).")
    if x.dtype != np.float64:
        raise TypeError("Use float64 for gradient checks: float32 round-off swamps the finite difference.")
    return x
