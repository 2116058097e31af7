"""Code taught in lectures/L04_double_descent.ipynb: its cells marked ``# @save``, exported by ``python -m tools.export``.

GENERATED FILE, do not edit: change the notebook cell and run ``python -m tools.export``
(tests/test_export.py fails while this file and the cells differ).
"""

import numpy as np


# lectures/L04_double_descent.ipynb, cell 0af2ea68
def min_norm_lstsq(F, y, rcond=None):
    # Minimum-norm least-squares solution a of F a ~= y from the thin SVD F = U diag(s) V^T:
    # a = V diag(1/s) U^T y, over the singular values above rcond * s.max(). This is np.linalg.pinv(F) @ y.
    # y is a vector [n], or a matrix [n, k] for k right-hand sides at once.
    F, y = np.asarray(F, dtype=float), np.asarray(y, dtype=float)
    if F.ndim != 2:
        raise ValueError(f"F must be a 2-D matrix [n, p]; got shape {F.shape}.")
    if y.ndim not in (1, 2) or y.shape[0] != F.shape[0]:
        raise ValueError(f"y must have one row per row of F ({F.shape[0]}); got shape {y.shape}.")
    if not (np.isfinite(F).all() and np.isfinite(y).all()):
        raise ValueError("F and y must be finite (no NaN or inf); check the inputs.")
    if rcond is None:
        rcond = np.finfo(float).eps * max(F.shape)  # the same cut-off as np.linalg.pinv
    if rcond < 0:
        raise ValueError(f"rcond must be >= 0, got {rcond}.")
    U, s, Vt = np.linalg.svd(F, full_matrices=False)
    if s.size == 0 or s[0] == 0:  # F is all zeros: the smallest solution is a = 0
        return np.zeros((F.shape[1],) + y.shape[1:])
    keep = s > rcond * s[0]  # drop numerically-zero singular values
    coef = (U[:, keep].T @ y) / (s[keep] if y.ndim == 1 else s[keep, None])
    return Vt[keep].T @ coef


def relu_features(X, W):
    # Random ReLU features relu(X @ W) of inputs X [n, d] through a fixed first layer W [d, p].
    X, W = np.asarray(X, dtype=float), np.asarray(W, dtype=float)
    if X.ndim != 2 or W.ndim != 2:
        raise ValueError(f"relu_features needs 2-D arrays X [n, d] and W [d, p]; got shapes {X.shape} and {W.shape}.")
    if X.shape[1] != W.shape[0]:
        raise ValueError(
            f"X has {X.shape[1]} input columns but W has {W.shape[0]} rows; they must match "
            "(W is [d, p] for inputs with d numbers)."
        )
    return np.maximum(X @ W, 0.0)
