#!/usr/bin/env python3
"""Build the course website into build/site/ from the notebooks' STORED outputs (nothing re-executed).

``python site/build.py [OUT]`` (``make site``). Stages a Sphinx source tree in build/site-src/:
site/*.md + conf.py + calculator/, README.md as the home page (lesson names linked to their pages),
every notebooks/*.ipynb (and notebooks/solutions/*.ipynb) found by glob, an API page generated from
``qwenvl_study.__all__`` (sphinx.ext.autodoc), then runs sphinx-build (myst-nb, nb_execution_mode "off",
sphinx-book-theme). Widget views are dropped from the staged copies: a static page has no kernel,
and each widget cell prints a static fallback next to it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def stage_notebook(src: Path, dst: Path) -> None:
    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
    nbformat.write(nb, dst)


def stage_mathjax(dst: Path) -> None:
    """A local MathJax 3 (npm's, installed by ``npm ci`` in site/check) so that math renders offline.

    Without it conf.py keeps Sphinx's CDN default (pages still build; math needs a network to render).
    """
    es5 = SITE / "check" / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").exists():
        print("note: site/check/node_modules/mathjax missing (run `npm ci` in site/check): MathJax from its CDN")
        return
    dst.mkdir(parents=True)
    shutil.copy(es5 / "tex-mml-chtml.js", dst / "tex-mml-chtml.js")
    shutil.copytree(es5 / "output" / "chtml" / "fonts" / "woff-v2", dst / "output" / "chtml" / "fonts" / "woff-v2")


def home_page(notebooks: list[str]) -> str:
    text = (ROOT / "README.md").read_text()
    for stem in notebooks:  # the lessons table: `01_dynamic_resolution` -> a link to its page
        text = text.replace(f"| `{stem}` |", f"| [{stem}](notebooks/{stem}.ipynb) |")
    toc = ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ":caption: Lessons", ""]
    toc += [f"notebooks/{s}" for s in notebooks]
    toc += ["```", "", "```{toctree}", ":hidden:", ":maxdepth: 1", ":caption: Tools and reference", "",
            "calculator", "faq", "api", "```", ""]
    return text + "\n".join(toc)


def api_page() -> str:
    """api.rst: one autodoc entry per name in ``qwenvl_study.__all__``, grouped by the module that defines it."""
    import inspect

    import qwenvl_study as qs

    title = "API reference"
    lines = [title, "=" * len(title), "",
             "The public API of ``qwenvl_study`` (what ``qwenvl_study.__all__`` exports), from the docstrings,",
             "grouped by the module that defines each object.", ""]
    groups: dict[str, list[str]] = {}
    for name in qs.__all__:
        obj = getattr(qs, name)
        module = getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None
        groups.setdefault(module or "qwenvl_study (constants)", []).append(name)
    for module, names in groups.items():
        lines += [f"``{module}``", "-" * (len(module) + 4), ""]
        for name in names:
            obj = getattr(qs, name)
            if inspect.isclass(obj):
                lines += [f".. autoclass:: qwenvl_study.{name}", "   :members:", ""]
            elif callable(obj):
                lines += [f".. autofunction:: qwenvl_study.{name}", ""]
            else:  # a constant: its type and size (autodata would print the type's own docstring)
                size = f", {len(obj)} entries" if hasattr(obj, "__len__") else ""
                lines += [f".. py:data:: qwenvl_study.{name}", f"   :type: {type(obj).__name__}", "",
                          f"   A ``{type(obj).__name__}``{size}; see the lesson that uses it.", ""]
    return "\n".join(lines)


def stage(src_dir: Path) -> list[str]:
    if src_dir.exists():
        shutil.rmtree(src_dir)
    src_dir.mkdir(parents=True)
    for path in SITE.glob("*.md"):
        shutil.copy(path, src_dir / path.name)
    shutil.copy(SITE / "conf.py", src_dir / "conf.py")
    shutil.copy(SITE / "favicon.svg", src_dir / "favicon.svg")
    shutil.copytree(SITE / "calculator", src_dir / "_static" / "calculator")
    stage_mathjax(src_dir / "_static" / "mathjax")
    (src_dir / "_faq").mkdir()  # the FAQ shows its reproducers (literalinclude)
    shutil.copy(ROOT / "tests" / "test_faq.py", src_dir / "_faq" / "test_faq.py")
    (src_dir / "notebooks").mkdir()
    stems = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        stage_notebook(nb, src_dir / "notebooks" / nb.name)
        stems.append(nb.stem)
    solutions = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
    if solutions:
        (src_dir / "notebooks" / "solutions").mkdir()
        for nb in solutions:
            stage_notebook(nb, src_dir / "notebooks" / "solutions" / nb.name)
        stems += [f"solutions/{nb.stem}" for nb in solutions]
    (src_dir / "index.md").write_text(home_page(stems))
    (src_dir / "api.rst").write_text(api_page())
    return stems


def main(out: Path) -> int:
    start = time.perf_counter()
    src_dir = ROOT / "build" / "site-src"
    stems = stage(src_dir)
    print(f"staged {len(stems)} notebooks + home, calculator, faq, api in {src_dir}", flush=True)
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", "2", "-d", str(ROOT / "build" / "site-doctrees"),
           str(src_dir), str(out)]
    rc = subprocess.call(cmd, cwd=ROOT)
    print(f"site: {out} ({time.perf_counter() - start:.1f} s, rc {rc})", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site"))
