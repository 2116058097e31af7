"""The course website (``make site``): Sphinx + MyST-NB + sphinx-book-theme, built from executed notebooks.

* :mod:`book.executed` keeps the notebooks that the test run executed (conftest.py writes them to
  ``test-artifacts/executed/``) and says whether one is still fresh.
* :mod:`book.build` stages lectures and the student copies of the assignments, turns widgets into
  still images, adds the Colab / download / fast-mode banner, and runs Sphinx.
"""
