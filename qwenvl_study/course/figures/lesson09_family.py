"""Lesson 09 — the VLM family.

Each connector as a chain of shapes, the Q-Former's three masks, InternVL2's tiles, token
grouping (pixel shuffle, concatenation, 2x2 merge), the visual-token budget per model, and which
parts each training stage trains (the table is the lesson's: the papers' facts, passed in). Draws
from ``family/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ...patching import open_image, to_rgb
from ._style import _plt

__all__ = ["draw_connectors", "draw_qformer_masks", "draw_internvl_tiles", "draw_token_grouping",
           "plot_token_budget", "draw_training_stages"]

FAMILY_COLOURS = {"Qwen-VL": "#9467bd", "BLIP-2": "#8c564b", "LLaVA-1.5": "#e377c2", "InternVL2": "#2ca02c",
                  "Qwen2-VL": "#1f77b4", "MiniGPT-4": "#bcbd22", "MiniGPT-v2": "#17becf"}


def _fmt_shape(shape: Sequence[int]) -> str:
    return " x ".join(str(s) for s in shape)


def draw_connectors(chains: dict | None = None):
    """Each connector as a row of boxes (stage, shape) → the LLM, computed by ``connector_chains``."""
    plt = _plt()
    import textwrap

    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from ...family.budget import connector_chains

    chains = chains or connector_chains()
    width = max(len(c) for c in chains.values())
    step, box = 1.3, 1.16  # box centres 1.3 apart, boxes 1.16 wide (data units)
    fig, ax = plt.subplots(figsize=(9.2, 1.02 * len(chains) + 0.9))
    for r, (model, chain) in enumerate(chains.items()):
        y = len(chains) - 1 - r
        colour = next((c for k, c in FAMILY_COLOURS.items() if model.startswith(k)), "grey")
        ax.text(-box / 2 - 0.08, y, "\n".join(textwrap.wrap(model, 11)), ha="right", va="center", fontsize=9,
                fontweight="bold", color=colour)
        for k, (label, shape) in enumerate(chain):
            x = k * step
            ax.add_patch(FancyBboxPatch((x - box / 2, y - 0.42), box, 0.84, boxstyle="round,pad=0.02",
                                        fc=colour, alpha=0.15 if k < len(chain) - 1 else 0.4, ec=colour))
            ax.text(x, y + 0.14, "\n".join(textwrap.wrap(label, 22)), ha="center", va="center", fontsize=8,
                    linespacing=1.0)
            ax.text(x, y - 0.27, _fmt_shape(shape), ha="center", va="center", fontsize=9, family="monospace",
                    fontweight="bold")
            if k:
                ax.add_patch(FancyArrowPatch((x - step + box / 2, y), (x - box / 2, y), arrowstyle="->",
                                             mutation_scale=9))
    ax.set_xlim(-box / 2 - 1.0, (width - 1) * step + box / 2 + 0.03)
    ax.set_ylim(-0.5, len(chains) - 0.5)
    ax.axis("off")
    ax.set_title("Vision encoder → connector → LLM: the shapes at each stage (one image, paper sizes;\n"
                 "the last box is what the LLM receives: visual tokens x LLM width)", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.55 / fig.get_figheight())
    return fig


def draw_qformer_masks(num_query: int = 4, num_text: int = 4):
    """BLIP-2's self-attention masks (and InstructBLIP's) as images: row attends to column."""
    plt = _plt()
    from ...family.blip2 import MASK_KINDS, qformer_mask

    titles = {"itc": "ITC — uni-modal\n(queries and text apart)", "itm": "ITM — bi-directional",
              "itg": "ITG — multi-modal causal",
              "instruct": "InstructBLIP — queries +\ninstruction, bi-directional"}
    labels = [f"Q{i + 1}" for i in range(num_query)] + [f"T{i + 1}" for i in range(num_text)]
    fig, axes = plt.subplots(1, len(MASK_KINDS), figsize=(2.45 * len(MASK_KINDS), 3.3))
    for ax, kind in zip(axes, MASK_KINDS):
        mask = qformer_mask(kind, num_query, num_text).numpy()
        ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.25)
        n = len(labels)
        ax.set_xticks(range(n), labels if kind != "instruct" else [*labels[:num_query],
                                                                   *[f"I{i + 1}" for i in range(num_text)]], fontsize=8)
        ax.set_yticks(range(n), ax.get_xticklabels(), fontsize=8)
        ax.axhline(num_query - 0.5, color="k", lw=1)
        ax.axvline(num_query - 0.5, color="k", lw=1)
        ax.set_title(titles[kind], fontsize=9)
        ax.set_xlabel("key (attended to)", fontsize=8)
    axes[0].set_ylabel("query position (attending)", fontsize=8)
    fig.suptitle(f"Q-Former self-attention masks: {num_query} queries + {num_text} text tokens "
                 f"(blue = may attend, white = masked)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def draw_internvl_tiles(image: Image.Image | str | Path, *, max_num: int = 12, axes=None):
    """InternVL2's dynamic tiling of an image: the resized image cut into numbered 448 tiles, and the
    thumbnail (when there is more than one tile)."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    from ...family.internvl import INTERNVL2_8B, internvl_image_tokens, internvl_tile_boxes

    rgb = to_rgb(open_image(image))
    (tw, th), boxes = internvl_tile_boxes(rgb.width, rgb.height, max_num=max_num)
    cols, rows = tw // INTERNVL2_8B.image_size, th // INTERNVL2_8B.image_size
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [3, 1]})
    fig = axes[0].figure
    # the resize to (cols*448, rows*448) is a stretch: drawing the image over that extent shows the same
    axes[0].imshow(rgb, extent=(0, tw, th, 0))
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        axes[0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.5))
        axes[0].text((x0 + x1) / 2, (y0 + y1) / 2, str(n + 1), color="#b00000", fontsize=11, ha="center",
                     va="center", fontweight="bold",
                     bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#b00000", lw=1, alpha=0.9))
    tokens = internvl_image_tokens(rgb.width, rgb.height, max_num=max_num)
    thumb = len(boxes) > 1
    axes[0].set_title(f"{rgb.width}x{rgb.height} → {cols}x{rows} tiles of 448 (resized to {tw}x{th})\n"
                      f"{len(boxes)} tiles{' + 1 thumbnail' if thumb else ''} x 256 = {tokens:,} tokens",
                      fontsize=9)
    axes[0].set_xlabel("x (resized pixels)")
    axes[0].set_ylabel("y (resized pixels)")
    if thumb:
        axes[1].imshow(rgb, extent=(0, 448, 448, 0))
        axes[1].set_title("thumbnail 448x448", fontsize=9)
    else:
        axes[1].text(0.5, 0.5, "one tile:\nno thumbnail", ha="center", va="center", fontsize=9)
    axes[1].axis("off")
    return fig


def draw_token_grouping(rows: int = 4, cols: int = 8):
    """Which patches become one LLM token: Qwen2-VL's merger, InternVL's pixel shuffle (both 2x2
    squares) and MiniGPT-v2's concatenation (4 consecutive tokens of a row). Computed by running
    each package function on patch indices; the small number is the patch's slot in the token."""
    plt = _plt()
    import torch

    from ...family.internvl import pixel_shuffle
    from ...family.minigpt import concat_adjacent_tokens
    from ...rope import vision_position_ids

    if rows % 2 or cols % 4:
        raise ValueError(f"draw_token_grouping needs an even number of rows and columns divisible by 4, "
                         f"got {rows}x{cols}")
    idx = torch.arange(rows * cols)  # patch p = row * cols + col
    groups = {}
    # Qwen2-VL: pixel_values rows come 2x2 group by group; the merger views 4 consecutive rows as one token
    rc = vision_position_ids([[1, rows, cols]])
    groups["Qwen2-VL merger (2x2)"] = (rc[:, 0] * cols + rc[:, 1]).reshape(-1, 4)
    groups["InternVL2 pixel shuffle (2x2)"] = pixel_shuffle(idx.reshape(1, rows, cols, 1).float()).reshape(-1, 4).long()
    groups["MiniGPT-v2 concat (1x4)"] = concat_adjacent_tokens(idx.reshape(1, -1, 1).float()).reshape(-1, 4).long()
    fig, axes = plt.subplots(1, 3, figsize=(10, 0.5 * rows + 1.4))
    cmap = plt.get_cmap("tab20")
    for ax, (name, g) in zip(axes, groups.items()):
        token = np.zeros(rows * cols, dtype=int)
        slot = np.zeros(rows * cols, dtype=int)
        for t, members in enumerate(g.tolist()):
            for s, p in enumerate(members):
                token[p], slot[p] = t, s
        ax.imshow(token.reshape(rows, cols) % 20, cmap=cmap, vmin=0, vmax=19)
        for p in range(rows * cols):
            ax.text(p % cols, p // cols, f"{token[p]}·{slot[p]}", ha="center", va="center", fontsize=8)
        ax.set_title(f"{name}:\n{rows * cols} patches → {len(g)} tokens of 4C", fontsize=9)
        ax.set_xticks(range(cols), range(cols), fontsize=8)
        ax.set_yticks(range(rows), range(rows), fontsize=8)
        ax.set_xlabel("patch column")
    axes[0].set_ylabel("patch row")
    fig.suptitle("Which patches share an LLM token (token·slot: the slot is the patch's place in the\n"
                 "concatenated channels)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def plot_token_budget(table: dict | None = None, ax=None):
    """Grouped bars (log scale): visual tokens per input for each model; ✗ = not supported."""
    plt = _plt()
    from ...family.budget import token_budget

    table = table or token_budget()
    inputs = list(table)
    models = list(next(iter(table.values())))
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 5.0))
    fig = ax.figure
    w = 0.8 / len(models)
    for k, m in enumerate(models):
        xs = np.arange(len(inputs)) + (k - (len(models) - 1) / 2) * w
        vals = [table[i][m] for i in inputs]
        ax.bar([x for x, v in zip(xs, vals) if v], [v for v in vals if v], width=w, label=m,
               color=FAMILY_COLOURS.get(m, "grey"))
        for x, v in zip(xs, vals):
            ax.text(x, v * 1.08 if v else 12, f"{v:,}" if v else "✗", ha="center", va="bottom", fontsize=8,
                    rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(10, 2e5)
    ax.set_xticks(range(len(inputs)), [i.replace(" (", "\n(") for i in inputs], fontsize=8)
    ax.set_ylabel("visual tokens sent to the LLM (log)")
    ax.set_title("The token budget: same inputs, five architectures (✗ = no video support)", pad=28)
    ax.legend(ncol=len(models), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


# what a part of the model does in a training stage -> (fill colour, hatch, legend label)
STAGE_STATES = {
    "trained": ("#f4a261", None, "trained"),
    "partial": ("#fbd9b8", "..", "partly trained (see the cell)"),
    "lora": ("#fbd9b8", "///", "LoRA adapters trained, weights frozen"),
    "frozen": ("#a8d0e6", None, "frozen"),
    "absent": ("white", None, "not part of this stage"),
}


def draw_training_stages(stages: Sequence[tuple[str, str, Sequence[tuple[str, str]]]], *,
                         columns: Sequence[str] = ("ViT (vision encoder)", "connector", "LLM"),
                         title: str = "Which parts each training stage trains"):
    """One row per (model, stage), one column per part: ``stages`` = [(model, stage, [(state, text) per
    column]), ...] with ``state`` a key of ``STAGE_STATES``; rows of one model are grouped."""
    plt = _plt()
    import textwrap

    from matplotlib.patches import Patch, Rectangle

    for model, stage, cells in stages:
        if len(cells) != len(columns) or any(state not in STAGE_STATES for state, _ in cells):
            raise ValueError(f"{model} / {stage}: need {len(columns)} (state, text) cells with states in "
                             f"{list(STAGE_STATES)}, got {cells!r}")
    n = len(stages)
    row_h = 0.5  # inches per row
    fig, ax = plt.subplots(figsize=(9.4, row_h * n + 1.6))
    for r, (model, stage, cells) in enumerate(stages):
        y = n - 1 - r
        for c, (state, text) in enumerate(cells):
            fc, hatch, _ = STAGE_STATES[state]
            ax.add_patch(Rectangle((c + 0.02, y - 0.45), 0.96, 0.9, fc=fc, hatch=hatch, ec="#555555", lw=0.6,
                                   ls="--" if state == "absent" else "-"))
            ax.text(c + 0.5, y, "\n".join(textwrap.wrap(text, 26)), ha="center", va="center", fontsize=8,
                    linespacing=1.0, color="#555555" if state == "absent" else "black",
                    bbox=dict(fc="white", ec="none", alpha=0.85, pad=1.2) if hatch else None)  # text off the hatch
        ax.text(-0.06, y, "\n".join(textwrap.wrap(stage, 28)), ha="right", va="center", fontsize=8, linespacing=1.0)
    # model names: once per group of consecutive rows, separated by a line
    r = 0
    while r < n:
        model = stages[r][0]
        end = r
        while end + 1 < n and stages[end + 1][0] == model:
            end += 1
        colour = next((col for k, col in FAMILY_COLOURS.items() if model.startswith(k)), "#333333")
        ax.text(-2.02, n - 1 - (r + end) / 2, model, ha="left", va="center", fontsize=9, fontweight="bold",
                color=colour)
        if r:
            ax.axhline(n - 1 - r + 0.5, xmin=0, xmax=1, color="#333333", lw=0.8)
        r = end + 1
    for c, name in enumerate(columns):
        ax.text(c + 0.5, n - 0.35, name, ha="center", va="bottom", fontsize=9, fontweight="bold")
    ax.set_xlim(-2.05, len(columns) + 0.02)
    ax.set_ylim(-0.55, n + 0.05)
    ax.axis("off")
    ax.set_title(title, fontsize=10, pad=6)
    handles = [Patch(fc=fc, hatch=hatch, ec="#555555", ls="--" if key == "absent" else "-", label=label)
               for key, (fc, hatch, label) in STAGE_STATES.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.35 / fig.get_figheight(), bottom=0.55 / fig.get_figheight())
    return fig
