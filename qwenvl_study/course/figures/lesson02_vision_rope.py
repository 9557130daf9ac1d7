"""Lesson 02 — the ViT's 2D-RoPE.

The (row, column) id of every patch, the rotary angles over the head (half by row, half by
column), and attention scores that depend only on the relative offset. Draws from ``rope.py``
(paper §2.1, 2D-RoPE in the ViT).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...resolution import MERGE_SIZE
from ._style import ROPE_ROW_COLOURS, _plt, _annotate_grid

__all__ = ["draw_vision_position_ids", "plot_vision_rotary_angles", "plot_relative_scores"]

def draw_vision_position_ids(grid_h: int = 6, grid_w: int = 8, spatial_merge_size: int = MERGE_SIZE):
    """Row and column id of every patch (heatmaps), and both ids in the order ``pixel_values`` lists them."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    from ...rope import vision_position_ids

    rc = vision_position_ids([[1, grid_h, grid_w]], spatial_merge_size).numpy()  # [N, 2] processor order
    rows = np.zeros((grid_h, grid_w), dtype=int)
    cols = np.zeros((grid_h, grid_w), dtype=int)
    rows[rc[:, 0], rc[:, 1]] = rc[:, 0]
    cols[rc[:, 0], rc[:, 1]] = rc[:, 1]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    for ax, img, what in ((axes[0], rows, "row id → first half of the rotary pairs"),
                          (axes[1], cols, "column id → second half of the rotary pairs")):
        ax.imshow(img, cmap="viridis")
        _annotate_grid(ax, img, fontsize=9)
        for i in range(0, grid_h, spatial_merge_size):
            for j in range(0, grid_w, spatial_merge_size):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), spatial_merge_size, spatial_merge_size, fill=False,
                                       ec="white", lw=1.5))
        ax.set_xlabel("patch column")
        ax.set_ylabel("patch row")
        ax.set_title(what, fontsize=10)
    k = np.arange(len(rc))
    ax = axes[2]
    ax.step(k, rc[:, 0], where="mid", label="row id", color=ROPE_ROW_COLOURS["h"])
    ax.step(k, rc[:, 1], where="mid", label="column id", color=ROPE_ROW_COLOURS["w"])
    group = spatial_merge_size**2
    for start in range(0, len(rc), 2 * group):
        ax.axvspan(start - 0.5, start + group - 0.5, color="grey", alpha=0.12, lw=0)
    ax.set_xlabel("row of pixel_values (the ViT's sequence order)")
    ax.set_ylabel("id")
    ax.set_title(f"in sequence order: each {spatial_merge_size}x{spatial_merge_size} merge group\n"
                 f"({group} consecutive rows, every other one shaded)", fontsize=10)
    ax.set_ylim(-0.5, max(grid_h, grid_w) + 1.8)  # head room: the legend sits above the data
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle(f"Vision 2D-RoPE ids of a {grid_h}x{grid_w} patch grid (white squares: merge groups)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_vision_rotary_angles(grid_h: int = 8, grid_w: int = 8, head_dim: int = 80, theta: float = 10000.0):
    """cos(angle) per rotary pair for every patch of a grid (raster order), and the frequencies."""
    plt = _plt()
    import torch

    from ...rope import inverse_frequencies, vision_rotary_angles

    r, c = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    pos = torch.from_numpy(np.stack([r.ravel(), c.ravel()], axis=1))  # [N, 2] raster order
    angles = vision_rotary_angles(pos, head_dim, theta).numpy()  # [N, head_dim/2]
    quarter = head_dim // 4
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
    ax = axes[0]
    im = ax.imshow(np.cos(angles), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
    ax.axvline(quarter - 0.5, color="k", lw=1.5)
    ax.set_xlabel(f"rotary pair (frequency index), {head_dim // 2} pairs for head_dim {head_dim}")
    ax.set_ylabel(f"patch (raster order, row-major, {grid_w} per row)")
    ax.set_title(f"cos(angle): pairs 0–{quarter - 1} follow the row (change every {grid_w} patches),\n"
                 f"pairs {quarter}–{2 * quarter - 1} the column (black line: the boundary)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04, label="cos(angle)")
    ax = axes[1]
    inv = inverse_frequencies(head_dim // 2, theta).numpy()  # [head_dim/4]
    ax.semilogy(np.arange(quarter), inv, "o-", color=ROPE_ROW_COLOURS["h"], label="row pairs 0…")
    ax.semilogy(np.arange(quarter, 2 * quarter), inv, "s-", color=ROPE_ROW_COLOURS["w"], label=f"column pairs {quarter}…")
    ax.set_xlabel("rotary pair")
    ax.set_ylabel("radians per patch step")
    ax.set_title(f"frequencies theta^(-2i/{head_dim // 2}), theta = {theta:g}:\nthe same ladder on both axes",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_relative_scores(scores: np.ndarray, grid_h: int, grid_w: int,
                         anchors: Sequence[tuple[int, int]] = ((3, 3), (6, 8))):
    """q·k after 2D-RoPE for queries at two anchors against keys everywhere, re-centred on the offset.

    ``scores[i, j]``: query rotated at patch i, key at patch j (raster order of a grid_h x grid_w grid).
    Plotted against (Δrow, Δcol) the two maps coincide where both are defined.
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(anchors) + 1, figsize=(3.9 * (len(anchors) + 1), 3.9), layout="constrained")
    lo, hi = float(scores.min()), float(scores.max())
    extent = (-grid_w + 0.5, grid_w - 0.5, grid_h - 0.5, -grid_h + 0.5)  # Δcol, Δrow in [-(n-1), n-1]
    centred = []
    for ax, (ar, ac) in zip(axes, anchors):
        s = scores[ar * grid_w + ac].reshape(grid_h, grid_w)
        canvas = np.full((2 * grid_h - 1, 2 * grid_w - 1), np.nan)
        canvas[grid_h - 1 - ar:2 * grid_h - 1 - ar, grid_w - 1 - ac:2 * grid_w - 1 - ac] = s
        centred.append(canvas)
        im = ax.imshow(canvas, cmap="viridis", vmin=lo, vmax=hi, extent=extent)
        ax.set_title(f"query at (row {ar}, col {ac}): q·k per key", fontsize=10)
    fig.colorbar(im, ax=list(axes[:len(anchors)]), fraction=0.04, shrink=0.75, label="q·k (same colour scale)")
    diff = np.abs(centred[0] - centred[1])
    ax = axes[-1]
    im = ax.imshow(diff, cmap="magma", extent=extent)
    ax.set_title(f"|difference| where both exist:\nmax {np.nanmax(diff):.1e}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, shrink=0.75, label="|q·k difference|")
    for ax in axes:
        ax.set_xlabel("Δcol = key col − query col")
        ax.set_ylabel("Δrow = key row − query row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("RoPE is relative: after rotation q·k depends only on the (Δrow, Δcol) offset", fontsize=11)
    return fig
