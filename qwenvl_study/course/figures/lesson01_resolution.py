"""Lesson 01 — dynamic resolution and patching.

The resize rule (multiples of 28, pixel count clamped), the 14x14 patch grid with its 2x2 merge
groups, the order of rows in ``pixel_values``, and an image as two identical frames. Draws from
``resolution.py`` and ``patching.py`` (paper §2.1 "Naive Dynamic Resolution").
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ...patching import open_image, resize_image, to_rgb
from ...resolution import FACTOR, MAX_PIXELS, MERGE_SIZE, MIN_PIXELS, PATCH_SIZE, count_image_tokens
from ._style import MERGE_COLOURS, _plt

__all__ = ["draw_patch_grid", "draw_patch_order", "plot_tokens_vs_resolution", "draw_two_frames",
           "explain_image"]

def draw_patch_grid(image: Image.Image | str | Path, *, min_pixels: int = MIN_PIXELS,
                    max_pixels: int = MAX_PIXELS, ax=None):
    """The resized image with its 14x14 patch grid; each 2x2 merge group (one LLM token) tinted."""
    plt = _plt()
    rgb = to_rgb(open_image(image))
    resized = resize_image(rgb, min_pixels=min_pixels, max_pixels=max_pixels)
    h, w = resized.height, resized.width
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 7 * h / w))
    fig = ax.figure
    ax.imshow(resized, extent=(0, w, h, 0))
    tint = np.zeros((gh // MERGE_SIZE, gw // MERGE_SIZE, 4))
    from matplotlib.colors import to_rgba

    for i in range(gh // MERGE_SIZE):
        for j in range(gw // MERGE_SIZE):
            tint[i, j] = to_rgba(MERGE_COLOURS[(i + 2 * j) % 4], 0.22)
    ax.imshow(tint, extent=(0, w, h, 0), interpolation="nearest")
    for x in range(0, w + 1, PATCH_SIZE):
        ax.axvline(x, color="white", lw=0.4 if x % FACTOR else 1.2, alpha=0.8)
    for y in range(0, h + 1, PATCH_SIZE):
        ax.axhline(y, color="white", lw=0.4 if y % FACTOR else 1.2, alpha=0.8)
    tokens = count_image_tokens(rgb.height, rgb.width, min_pixels=min_pixels, max_pixels=max_pixels,
                                special_tokens=False)
    ax.set_title(f"{rgb.width}x{rgb.height} → resized {w}x{h} → {gh}x{gw} = {gh * gw} patches of 14px\n"
                 f"→ {tokens} merged tokens (one per tinted 2x2 group) + 2 special = {tokens + 2}", fontsize=10)
    ax.set_xlabel("x (pixels, resized)")
    ax.set_ylabel("y (pixels, resized)")
    return fig


def draw_patch_order(grid_h: int = 4, grid_w: int = 6, ax=None):
    """Row index of every patch in ``pixel_values``: 2x2 merge groups are consecutive rows."""
    plt = _plt()
    from ...rope import vision_position_ids

    rc = vision_position_ids([[1, grid_h, grid_w]], spatial_merge_size=MERGE_SIZE).numpy()
    order = np.zeros((grid_h, grid_w), dtype=int)
    order[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 * grid_w, 1.0 * grid_h))
    fig = ax.figure
    groups = (np.arange(grid_h)[:, None] // 2 + np.arange(grid_w)[None, :] // 2 * 2) % 4
    ax.imshow(groups, cmap="Pastel1", vmin=0, vmax=8)
    for (i, j), n in np.ndenumerate(order):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=11)
    ax.set_xticks(range(grid_w))
    ax.set_yticks(range(grid_h))
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    ax.set_title("row of each patch in pixel_values\n(4 consecutive rows = one 2x2 merge group = one token)",
                 fontsize=10)
    return fig


def plot_tokens_vs_resolution(min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                              aspects: Sequence[tuple[str, float]] = (("1:1", 1.0), ("16:9", 16 / 9), ("4:1", 4.0)),
                              ax=None):
    """Merged tokens vs image width for a few aspect ratios, with the min/max pixel clamps marked.

    The clamp lines are labelled on the line, the reference widths (224, 448, 1080p) on a top axis and
    the legend sits in the empty lower right, so no text lies on another or on a curve."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.8))
    fig = ax.figure
    widths = np.unique(np.geomspace(16, 20000, 400).astype(int))
    for label, aspect in aspects:
        toks = [count_image_tokens(max(1, round(wd / aspect)), int(wd), min_pixels=min_pixels, max_pixels=max_pixels,
                                   special_tokens=False) for wd in widths]
        ax.plot(widths, toks, label=f"aspect {label} (W:H)", lw=1.4)
    lo, hi = min_pixels // FACTOR**2, max_pixels // FACTOR**2
    ax.axhline(lo, color="grey", ls="--", lw=1)
    ax.axhline(hi, color="grey", ls="--", lw=1)
    ax.set_ylim(lo / 2.2, hi * 3.5)
    ax.text(widths[-1], lo / 1.25, f"min_pixels = {min_pixels:,} px: at least {lo} merged tokens", fontsize=8,
            color="dimgrey", ha="right", va="top")
    ax.text(widths[0], hi * 1.25, f"max_pixels = {max_pixels:,} px: at most {hi:,} merged tokens", fontsize=8,
            color="dimgrey", ha="left", va="bottom")
    marks = ((224, "224"), (448, "448"), (1920, "1920 (1080p)"))
    for side, _ in marks:
        ax.axvline(side, color="k", lw=0.6, ls=":", alpha=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(widths[0], widths[-1])
    top = ax.secondary_xaxis("top")
    top.set_xticks([side for side, _ in marks], [name for _, name in marks], fontsize=8)
    top.set_xlabel("reference widths (dotted lines)", fontsize=8)
    top.minorticks_off()
    ax.set_xlabel("image width (pixels)")
    ax.set_ylabel("merged visual tokens (without the 2 special)")
    ax.set_title("Naive dynamic resolution: tokens grow with the pixel count, clamped at both ends", fontsize=10)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.12), fontsize=8, framealpha=0.95)
    return fig


def draw_two_frames(image: Image.Image | str | Path, *, min_pixels: int = MIN_PIXELS,
                    max_pixels: int = MAX_PIXELS, patch: tuple[int, int] = (12, 6)):
    """An image is two identical frames; one 3D tube (2 frames x 14 x 14) is outlined in both."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    resized = np.asarray(resize_image(image, min_pixels=min_pixels, max_pixels=max_pixels))  # [H', W', 3]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 3, 2]})
    r, c = patch
    for k, ax in enumerate(axes[:2]):
        ax.imshow(resized)
        ax.add_patch(Rectangle((c * PATCH_SIZE, r * PATCH_SIZE), PATCH_SIZE, PATCH_SIZE, fill=False, ec="red", lw=2))
        ax.set_title(f"frame {k} (a copy of the image)", fontsize=10)
        ax.axis("off")
    tube = resized[r * PATCH_SIZE:(r + 1) * PATCH_SIZE, c * PATCH_SIZE:(c + 1) * PATCH_SIZE]
    axes[2].imshow(np.concatenate([tube, np.full((PATCH_SIZE, 2, 3), 255, np.uint8), tube], axis=1))
    axes[2].set_title("one tube: 2 frames x 3 ch x 14 x 14\n= 1176 values = one row of pixel_values", fontsize=10)
    axes[2].axis("off")
    fig.suptitle("Images and videos share one path: temporal patch size 2", fontsize=11)
    return fig


def explain_image(image: Image.Image | str | Path, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                  rule: str = "transformers"):
    """resize → 14x14 patches → merged tokens, for one image (the ``explain`` command)."""
    plt = _plt()
    rgb = to_rgb(open_image(image))
    resized = resize_image(rgb, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    h, w = resized.height, resized.width
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6 * max(0.5, min(1.5, h / w))))
    axes[0].imshow(rgb)
    axes[0].set_title(f"original {rgb.width}x{rgb.height}", fontsize=10)
    axes[1].imshow(resized, extent=(0, w, h, 0))
    for x in range(0, w + 1, PATCH_SIZE):
        axes[1].axvline(x, color="white", lw=0.3 if x % FACTOR else 0.9)
    for y in range(0, h + 1, PATCH_SIZE):
        axes[1].axhline(y, color="white", lw=0.3 if y % FACTOR else 0.9)
    axes[1].set_title(f"resized {w}x{h} (multiples of 28) → {gh}x{gw} = {gh * gw} patches of 14 px", fontsize=10)
    # one cell per merged token: the mean colour of its 28x28 square, numbered in sequence order
    tokens = np.asarray(resized, dtype=np.float32).reshape(h // FACTOR, FACTOR, w // FACTOR, FACTOR, 3).mean((1, 3))
    axes[2].imshow(tokens.astype(np.uint8), extent=(0, w // FACTOR, h // FACTOR, 0), interpolation="nearest")
    th, tw = h // FACTOR, w // FACTOR
    if th * tw <= 150:
        for i in range(th):
            for j in range(tw):
                axes[2].text(j + 0.5, i + 0.5, str(i * tw + j), ha="center", va="center", fontsize=6, color="white")
    axes[2].set_title(f"{th}x{tw} = {th * tw} merged tokens (2x2 patches each)\n+ <|vision_start|>, <|vision_end|> "
                      f"= {th * tw + 2} LLM positions", fontsize=10)
    for ax, (xl, yl) in zip(axes, [("x (px)", "y (px)"), ("x (px, resized)", "y (px, resized)"),
                                   ("token column", "token row")]):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.suptitle("What Qwen2-VL makes of an image: resize → patches → merged tokens", fontsize=11)
    fig.tight_layout()
    return fig
