"""Sphinx configuration of the course website (used by ``python -m book.build``; see book/build.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import notebooks as nbtool  # noqa: E402

settings = nbtool.course_settings()

project = "Deep Learning from First Principles"
author = "the course team"
copyright = "the course team, MIT licence"
html_title = project

extensions = ["myst_nb", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "_notebooks", "_mathjax", "**.ipynb_checkpoints"]

# Notebooks are executed by the tests (conftest.py) or by book/build.py, never by Sphinx itself.
nb_execution_mode = "off"
nb_output_stderr = "show"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

# MathJax 3 (CommonHTML output) from the django-static-mathjax wheel (pure static files, no Django needed),
# copied by book/build.py into <staging>/_mathjax/mathjax and served as _static/mathjax/: equations render
# offline, with no CDN.
html_static_path = ["_static"]
_mathjax = os.environ.get("COURSE_SITE_MATHJAX")
if _mathjax:
    html_static_path.append(_mathjax)
    mathjax_path = "mathjax/tex-chtml.js"
# (myst-parser sets mathjax3_config to typeset math inside notebook outputs too)
html_css_files = ["course.css"]
# The clean notebooks behind "Download notebook", next to their pages (lectures/L00_....ipynb).
html_extra_path = [os.environ["COURSE_SITE_DOWNLOADS"]] if os.environ.get("COURSE_SITE_DOWNLOADS") else []

repository = nbtool.student_repository(settings)
html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": repository,
    "repository_branch": settings["branch"],
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "search_bar_text": "Search the course...",
    "show_prev_next": True,
}
html_last_updated_fmt = ""
