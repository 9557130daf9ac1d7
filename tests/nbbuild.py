"""The inline builds of the notebooks: what a lesson writes in the open, loaded so a test can hold it
equal to the package.

A build cell is a code cell whose first line is ``# build: NAME``; it is self-contained (its own
imports: the standard library, numpy, torch, and names from earlier build cells of the same
notebook, which ``notebook_build`` runs first, in notebook order). ``notebook_build("01_dynamic_resolution",
"smart_resize")`` executes those cells in a fresh namespace and returns it, so a test can compare
``ns["smart_resize"]`` with ``qwenvl_study.resolution.smart_resize`` on many inputs.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MARK = "# build:"


def _cells(stem: str) -> list[tuple[str, str]]:
    path = NOTEBOOKS / f"{stem}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        first = src.lstrip().splitlines()[0] if src.strip() else ""
        if first.startswith(MARK):
            out.append((first[len(MARK):].strip(), src))
    return out


def build_names(stem: str) -> list[str]:
    """The build names of a notebook, in order."""
    return [name for name, _ in _cells(stem)]


@lru_cache(maxsize=None)
def _run(stem: str, upto: str) -> dict:
    cells = _cells(stem)
    names = [n for n, _ in cells]
    if upto not in names:
        raise KeyError(f"{stem}.ipynb has no cell starting '# build: {upto}' (it has: {names})")
    ns: dict = {"__name__": f"build_{stem}"}
    for name, src in cells:
        exec(compile(src, f"{stem}.ipynb[build: {name}]", "exec"), ns)
        if name == upto:
            break
    return ns


def notebook_build(stem: str, name: str) -> dict:
    """The namespace after running the build cells of ``notebooks/STEM.ipynb`` up to ``# build: NAME``."""
    return dict(_run(stem, name))
