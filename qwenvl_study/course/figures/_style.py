"""Shared by every lesson's figures: the lazy pyplot import, ``savefig`` (at ``DPI``), the
colours of merge groups and of the t/h/w rows, and the number-in-each-cell helper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DPI", "savefig"]


DPI = 120  # saved figures: the course standard is >= 110 dpi

MERGE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


ROPE_ROW_COLOURS = {"t": "#d62728", "h": "#1f77b4", "w": "#2ca02c"}


def _plt():
    import matplotlib.pyplot as plt  # imported lazily: `import qwenvl_study` stays light

    return plt


def savefig(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Save a figure (creating the folder) and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return path


def _annotate_grid(ax, values: np.ndarray, fontsize: int = 8) -> None:
    lo, hi = float(values.min()), float(values.max())
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=fontsize,
                color="white" if hi > lo and (v - lo) / (hi - lo) < 0.5 else "black")
