#!/usr/bin/env python3
"""Author a notebook from a percent-format script: ``python scripts/py2nb.py SRC.py OUT.ipynb``.

Cells start with ``# %%`` (code) or ``# %% [markdown]`` (markdown: each line's leading ``# ``
is stripped). Then run ``scripts/run_notebooks.py OUT.ipynb`` to execute it and store outputs.
"""

import sys
from pathlib import Path

import nbformat


def convert(src: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    kind, lines = None, []

    def flush():
        if kind is None:
            return
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        elif text:
            nb.cells.append(nbformat.v4.new_code_cell(text))

    for line in src.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return nb


if __name__ == "__main__":
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    nbformat.write(convert(src.read_text()), out)
    print("wrote", out)
