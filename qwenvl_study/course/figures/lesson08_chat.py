"""Lesson 08 — chat template and grounding.

The prompt with its special tokens highlighted, what the LLM sequence is made of, and boxes
parsed from text drawn on the image. Draws from ``chat.py`` and ``grounding.py`` (paper §2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...patching import open_image, to_rgb
from ._style import MERGE_COLOURS, _plt

__all__ = ["draw_chat_tokens", "plot_input_composition", "draw_grounding"]

TOKEN_COLOURS = {
    "<|im_start|>": "#1f77b4", "<|im_end|>": "#1f77b4", "<|endoftext|>": "#7f7f7f",
    "<|vision_start|>": "#9467bd", "<|vision_end|>": "#9467bd",
    "<|image_pad|>": "#d62728", "<|video_pad|>": "#ff7f0e",
    "<|object_ref_start|>": "#2ca02c", "<|object_ref_end|>": "#2ca02c",
    "<|box_start|>": "#8c564b", "<|box_end|>": "#8c564b",
}


def draw_chat_tokens(text: str, *, columns: int = 84, title: str | None = None):
    """The prompt with each special token highlighted by kind; runs of pads collapsed to '<|image_pad|> x n'."""
    plt = _plt()
    from ...chat import split_special_tokens

    cells: list[tuple[str, str | None]] = []  # (visible text, colour) per line-wrapped chunk
    for piece, special in split_special_tokens(text):
        if special:
            token = piece[: piece.index("|>") + 2]
            n = len(piece) // len(token)
            cells.append((token + (f" x {n}" if n > 1 else ""), TOKEN_COLOURS.get(token, "#17becf")))
        else:
            for k, line in enumerate(piece.split("\n")):
                if k:
                    cells.append(("↵", "newline"))
                if line:
                    cells.append((line, None))
    lines: list[list[tuple[str, str | None]]] = [[]]
    used = 0
    for label, colour in cells:
        if colour == "newline":
            lines[-1].append(("↵", None))
            lines.append([])
            used = 0
            continue
        while label:
            room = columns - used
            if room <= 0 or (colour is not None and len(label) > room and used):
                lines.append([])
                used, room = 0, columns
            chunk, label = (label, "") if colour is not None else (label[:room], label[room:])
            lines[-1].append((chunk, colour))
            used += len(chunk) + (2 if colour else 0)
    fontsize = 9
    char_in = 0.62 * fontsize / 72  # about the monospace advance (measured exactly below)
    width_in = char_in * (columns + 2) / 0.98
    fig = plt.figure(figsize=(width_in, 0.26 * len(lines) + 0.9))
    ax = fig.add_axes((0.01, 0.02, 0.98, 1 - 0.9 / (0.26 * len(lines) + 0.9)))
    for row, line in enumerate(lines):
        x = 0.0
        for chunk, colour in line:
            kw = dict(bbox=dict(boxstyle="round,pad=0.12", fc=colour, ec="none", alpha=0.85)) if colour else {}
            ax.text(x + (0.5 if colour else 0), row, chunk, family="DejaVu Sans Mono", fontsize=fontsize,
                    va="center", color="white" if colour else "black", **kw)
            x += len(chunk) + (1.5 if colour else 0)
    # one data unit = one character: measure the monospace advance with the figure's own renderer
    renderer = fig.canvas.get_renderer()
    probe = ax.text(0, 0, "M" * 40, family="DejaVu Sans Mono", fontsize=fontsize)
    char_px = probe.get_window_extent(renderer).width / 40
    probe.remove()
    ax.set_xlim(-0.5, -0.5 + ax.get_window_extent(renderer).width / char_px)
    ax.set_ylim(len(lines) - 0.4, -0.6)
    ax.axis("off")
    from matplotlib.patches import Patch

    kinds = [("<|im_start|> / <|im_end|>", "#1f77b4"), ("<|vision_start|> / <|vision_end|>", "#9467bd"),
             ("<|image_pad|>", "#d62728"), ("<|video_pad|>", "#ff7f0e"),
             ("<|object_ref_*|>", "#2ca02c"), ("<|box_*|>", "#8c564b")]
    present = [(k, c) for k, c in kinds if any(col == c for line in lines for _, col in line)]
    if present:
        ax.legend(handles=[Patch(color=c, label=k) for k, c in present], loc="lower center", ncol=min(3, len(present)),
                  fontsize=8, bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle(title or "the chat template, special tokens highlighted", fontsize=10, y=0.995)
    return fig


def plot_input_composition(input_ids, *, ax=None, title: str = "what the LLM sequence is made of"):
    """A horizontal bar: text tokens vs special tokens vs image pads vs video pads in ``input_ids``."""
    plt = _plt()
    from ...chat import IMAGE_PAD, SPECIAL_TOKENS, VIDEO_PAD

    ids = np.asarray(input_ids).reshape(-1)
    image, video = SPECIAL_TOKENS[IMAGE_PAD], SPECIAL_TOKENS[VIDEO_PAD]
    special = np.isin(ids, list(SPECIAL_TOKENS.values())) & ~np.isin(ids, [image, video])
    parts = [("text", int((~np.isin(ids, list(SPECIAL_TOKENS.values()))).sum()), "#bbbbbb"),
             ("special (ChatML, vision start/end)", int(special.sum()), "#1f77b4"),
             ("<|image_pad|>", int((ids == image).sum()), "#d62728"),
             ("<|video_pad|>", int((ids == video).sum()), "#ff7f0e")]
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 1.9))
    fig = ax.figure
    left = 0
    for label, n, colour in parts:
        if n:
            ax.barh(0, n, left=left, color=colour, label=f"{label}: {n}")
            left += n
    ax.set_yticks([])
    ax.set_xlabel(f"position in input_ids (length {len(ids)})")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.55), frameon=False)
    return fig


def draw_grounding(image: Image.Image | str | Path, items, *, truth: dict | None = None, ax=None,
                   title: str = "grounding: boxes in [0, 1000) drawn on the image"):
    """Parsed (phrase, [0,1000) box) items on the image; optional true pixel boxes dashed for comparison."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    from ...grounding import from_normalized

    rgb = to_rgb(open_image(image))
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 7 * rgb.height / rgb.width))
    fig = ax.figure
    ax.imshow(rgb)
    for k, item in enumerate(items):
        x1, y1, x2, y2 = from_normalized(item.box, rgb.size)
        colour = MERGE_COLOURS[k % len(MERGE_COLOURS)]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=2.5))
        right = x1 > rgb.width / 2  # a label on the right half ends at the box's right edge: it stays on the image
        ax.text(x2 if right else x1, y1 - 4, f"{item.phrase or '?'}\n{item.box}", color="white", fontsize=8,
                ha="right" if right else "left", va="bottom", linespacing=1.1, bbox=dict(fc=colour, ec="none", pad=1.5))
    for name, box in (truth or {}).items():
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="black", lw=1, ls="--"))
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title + ("\n(dashed: the true boxes)" if truth else ""), fontsize=10)
    return fig
