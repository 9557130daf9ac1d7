"""Sphinx configuration of the course website (staged and built by site/build.py; `make site`)."""

from pathlib import Path

project = "qwenvl-study"
author = "qwenvl-study authors"
copyright = "2026, qwenvl-study authors (Apache-2.0)"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]  # no viewcode: 15 more pages to build and check
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# The site shows the outputs stored in the notebooks (CI executed them under nbval); nothing runs here.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget manager from a CDN: the site builds and reads offline

# MathJax 3 served from _static (build.py copies it from npm's package) so math renders offline.
if (Path(__file__).parent / "_static" / "mathjax" / "tex-mml-chtml.js").exists():
    mathjax_path = "mathjax/tex-mml-chtml.js"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"undoc-members": False}

html_theme = "sphinx_book_theme"
html_title = "qwenvl-study: how Qwen2-VL sees"
html_static_path = ["_static"]
html_favicon = "favicon.svg"  # a 2x2 merge group
html_context = {"default_mode": "auto"}
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": True,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
suppress_warnings = ["myst.header", "misc.highlighting_failure"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_faq"]
