"""Code taught in lectures/L02_convolution_arithmetic.ipynb: its cells marked ``# @save``, exported by ``python -m tools.export``.

GENERATED FILE, do not edit: change the notebook cell and run ``python -m tools.export``
(tests/test_export.py fails while this file and the cells differ).
"""

from course_utils.conv_rules import check_conv_args, effective_kernel_size, fit_explanation


# lectures/L02_convolution_arithmetic.ipynb, cell 94a4882e
def conv_output_size(n, f, p=0, s=1, d=1, ceil_mode=False, *, strict=True):
    # Output size along one axis: a window of f taps with dilation d spans k = d (f - 1) + 1 cells; it slides
    # with stride s over n inputs padded with p zeros on each side and fits (n + 2p - k) / s + 1 times.
    # strict=True (the textbook rule): the window must tile the padded input, otherwise a ValueError explains
    # why and suggests a fix. strict=False rounds down, as PyTorch does. ceil_mode=True rounds up, as
    # nn.MaxPool2d(ceil_mode=True) does, keeping a last window only if it starts inside the input or left padding.
    n, f, p, s, d = check_conv_args(n, f, p, s, d)  # whole numbers, sizes >= 1, padding >= 0
    k = effective_kernel_size(f, d)
    if k > n + 2 * p:
        raise ValueError(fit_explanation(n, f, p, s, d))
    if ceil_mode:
        out = -(-(n + 2 * p - k) // s) + 1
        if (out - 1) * s >= n + p:  # the last window would start in the right padding: drop it
            out -= 1
        return out
    if strict and (n + 2 * p - k) % s:
        raise ValueError(
            fit_explanation(n, f, p, s, d)
            + " (Pass strict=False to round down as PyTorch does, or ceil_mode=True to round up.)"
        )
    return (n + 2 * p - k) // s + 1
