"""The convolution output-size rule's checks and explanations (lecture L2), shared by the lecture and the widget.

``conv_output_size`` itself is written in the lecture (lectures/L02_convolution_arithmetic.ipynb, exported to
:mod:`course_utils.taught.l02_convolution_arithmetic`); it uses these helpers to refuse bad arguments and to
explain, in a sentence, why a window does not tile its input and what would fit.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_conv_args", "effective_kernel_size", "fit_explanation"]


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be a whole number, got {value!r} ({type(value).__name__}). "
            f"Sizes, paddings, strides and dilations count grid cells, so pass e.g. {name}={minimum + 1}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def check_conv_args(n, f, p, s, d) -> tuple[int, int, int, int, int]:
    """Validate the five conv hyper-parameters (sizes >= 1, padding >= 0) and return them as ints."""
    return (
        check_int("n (input size)", n, 1),
        check_int("f (filter size)", f, 1),
        check_int("p (padding)", p, 0),
        check_int("s (stride)", s, 1),
        check_int("d (dilation)", d, 1),
    )


def effective_kernel_size(f: int, d: int = 1) -> int:
    """Span of an ``f``-tap kernel with dilation ``d``: ``d * (f - 1) + 1`` cells (holes included)."""
    f = check_int("f (filter size)", f, 1)
    d = check_int("d (dilation)", d, 1)
    return d * (f - 1) + 1


def _fmt(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.2f}"


def expression(n: int, f: int, p: int, s: int, d: int) -> tuple[str, float]:
    """The output-size formula written out with the numbers filled in, and its value."""
    k = effective_kernel_size(f, d)
    value = (n + 2 * p - k) / s + 1
    return f"({n} + 2*{p} - {k}) / {s} + 1 = {_fmt(value)}", value


def fit_explanation(n: int, f: int, p: int = 0, s: int = 1, d: int = 1) -> str | None:
    """``None`` when the window tiles the padded input exactly, otherwise a sentence saying why not.

    The sentence names the arithmetic that fails and suggests paddings or strides that fit.
    """
    n, f, p, s, d = check_conv_args(n, f, p, s, d)
    k = effective_kernel_size(f, d)
    span = f"{f}x{f} window" if d == 1 else f"{f}x{f} window with dilation {d} (it spans {k}x{k} cells)"
    if k > n + 2 * p:
        need = math.ceil((k - n) / 2)
        return (
            f"The {span} is larger than the padded input ({n} + 2*{p} = {n + 2 * p} cells): "
            f"there is nowhere to put it. Use padding {need} or more, or a smaller filter."
        )
    expr, value = expression(n, f, p, s, d)
    if value.is_integer():
        return None
    left = (n + 2 * p - k) % s
    pads = [q for q in range(p + 1, p + s + 1) if (n + 2 * q - k) % s == 0][:1]
    strides = [t for t in range(1, s) if (n + 2 * p - k) % t == 0]
    fixes = [f"padding {q}" for q in pads]
    if strides:
        fixes.append("stride " + " or ".join(str(t) for t in strides))
    fixes.append(f"an input of size {n + s - left}")
    unvisited = "1 row/column" if left == 1 else f"{left} rows/columns"
    return (
        f"{expr} is not an integer: the window does not tile the input "
        f"(stepping by {s} leaves {unvisited} of the padded input unvisited); "
        + (f"use {fixes[0]}." if len(fixes) == 1 else f"use one of: {'; '.join(fixes)}.")
    )
