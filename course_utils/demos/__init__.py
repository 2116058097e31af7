"""Interactive figures of the lectures (one module each), kept out of the notebooks so they can be
tested and their redraw time benchmarked (``python benchmarks/widget_redraw.py``).

Every module here exposes ``benchmark_redraw() -> float``: the median milliseconds of one redraw
after a control changes, measured with :func:`course_utils.time_call`.
"""
