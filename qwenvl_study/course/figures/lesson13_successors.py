"""Figures of lesson 13 "After Qwen2-VL" (qwenvl_study.successors): one function per drawn change.

Every figure is made at ``DPI`` (110) with labelled axes; the data comes from the package, so a
figure shows what the tested code computes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

__all__ = ["draw_windows", "draw_vit_blocks", "plot_temporal_ids", "draw_frequency_bands",
           "draw_deepstack", "plot_token_costs", "draw_three_groundings"]

DPI = 110  # the figures' own dpi (savefig in _style saves at its DPI)
AXIS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")  # t, h, w


def _plt():
    import matplotlib.pyplot as plt

    return plt


def draw_windows(image: Image.Image, grid_hw: tuple[int, int], *, patch_size: int = 14, window_size: int = 112,
                 depth: int = 32, fullatt: Sequence[int] = (7, 15, 23, 31)):
    """Left: the resized image with its 112-px windows (one colour each) over the 28-px merged tokens.
    Right: which of the ViT's blocks attend within windows and which see the whole image."""
    from matplotlib.patches import Rectangle

    from ...successors.qwen2_5_vl import window_index

    plt = _plt()
    h, w = grid_hw
    index, cu = window_index([[1, h, w]], window_size=window_size, patch_size=patch_size)
    sizes = np.diff(cu.numpy()) // 4  # merged tokens per window
    window_of = np.empty(len(index), int)
    window_of[index.numpy()] = np.repeat(np.arange(len(sizes)), sizes)  # merged token -> its window
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=DPI, gridspec_kw={"width_ratios": [3, 1.25]})
    ax.imshow(image)
    cell = 2 * patch_size
    cmap = plt.get_cmap("tab20")
    for k, win in enumerate(window_of):
        r, c = divmod(k, w // 2)
        ax.add_patch(Rectangle((c * cell, r * cell), cell, cell, color=cmap(win % 20), alpha=0.35, lw=0))
    for x in range(0, w * patch_size + 1, window_size):
        ax.axvline(min(x, w * patch_size - 0.5), color="k", lw=1.2)
    for y in range(0, h * patch_size + 1, window_size):
        ax.axhline(min(y, h * patch_size - 0.5), color="k", lw=1.2)
    ax.set_title(f"{w * patch_size}x{h * patch_size} px: {len(sizes)} windows of ≤ {window_size}x{window_size} px "
                 f"(≤ {(window_size // cell) ** 2} tokens)", fontsize=9)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    full = set(fullatt)
    colours = ["#d62728" if i in full else "#9ecae1" for i in range(depth)]
    bx.barh(range(depth), [1] * depth, color=colours, edgecolor="white")
    bx.set_yticks(range(0, depth, 4))
    bx.invert_yaxis()
    bx.set_xticks([])
    bx.set_ylabel("ViT block")
    bx.set_title("red: full attention (7, 15, 23, 31)\nblue: window attention", fontsize=9)
    fig.tight_layout()
    return fig


def _chain(ax, y: float, labels: Sequence[str], colours: Sequence[str], title: str) -> None:
    x = 0.0
    ax.text(-0.2, y + 0.55, title, fontsize=10, weight="bold")
    for i, (label, colour) in enumerate(zip(labels, colours)):
        width = 1.55
        ax.add_patch(_plt().Rectangle((x, y), width, 0.4, facecolor=colour, edgecolor="k"))
        ax.text(x + width / 2, y + 0.2, label, ha="center", va="center", fontsize=7.5)
        if i < len(labels) - 1:
            ax.annotate("", xy=(x + width + 0.25, y + 0.2), xytext=(x + width, y + 0.2),
                        arrowprops=dict(arrowstyle="->"))
        x += width + 0.25


def draw_vit_blocks():
    """One ViT block per model, the parts that changed shaded."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11.5, 3.3), dpi=DPI)
    same, changed = "#eeeeee", "#fdd0a2"
    _chain(ax, 2.0, ["LayerNorm", "attention\n(2D-RoPE)", "+ x", "LayerNorm", "fc1 → QuickGELU\n→ fc2", "+ x"],
           [same] * 6, "Qwen2-VL (32 blocks, all full attention)")
    _chain(ax, 1.0, ["RMSNorm", "attention: window\n(full in 7/15/23/31)", "+ x", "RMSNorm",
                     "down(SiLU(gate)\n· up)", "+ x"], [changed, changed, same, changed, changed, same],
           "Qwen2.5-VL (same attention module, windows in 28 of 32 blocks)")
    _chain(ax, 0.0, ["LayerNorm", "attention\n(2D-RoPE)", "+ x", "LayerNorm", "fc1 → GELU(tanh)\n→ fc2", "+ x"],
           [same, same, same, same, changed, same], "Qwen3-VL (+ learned positions before block 0, DeepStack taps)")
    ax.set_xlim(-0.3, 11)
    ax.set_ylim(-0.2, 2.8)
    ax.axis("off")
    ax.set_title("the ViT block before / after (orange: changed)", fontsize=10)
    return fig


def plot_temporal_ids(videos: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """``videos``: label → (seconds of each temporal patch, Qwen2-VL ids, Qwen2.5-VL ids), offsets from the start."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=DPI, sharey=True)
    for (label, (sec, frame_ids, abs_ids)), marker in zip(videos.items(), "os^"):
        axes[0].plot(sec, frame_ids, marker=marker, label=label)
        axes[1].plot(sec, abs_ids, marker=marker, label=label)
    axes[0].set_title("Qwen2-VL: temporal id = frame-group index", fontsize=10)
    axes[1].set_title("Qwen2.5-VL: id = ⌊seconds × tokens_per_second (2)⌋", fontsize=10)
    for ax in axes:
        ax.set_xlabel("time in the video (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("temporal position id − start")
    fig.tight_layout()
    return fig


def draw_frequency_bands(chunked: Sequence[int], interleaved: Sequence[int], inv_freq: np.ndarray):
    """Two rows of frequency pairs coloured by the axis (t/h/w) that rotates them, over log10 frequency."""
    from matplotlib.patches import Patch

    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(11, 3.6), dpi=DPI, sharex=True)
    for ax, axis, title in ((axes[0], chunked, "Qwen2-VL chunks [16, 24, 24]"),
                            (axes[1], interleaved, "Qwen3-VL interleaved [24, 20, 20]")):
        ax.bar(range(len(axis)), np.log10(inv_freq), color=[AXIS_COLOURS[a] for a in axis], width=0.9)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("log10 frequency")
    axes[1].set_xlabel("frequency pair j (head_dim 128 → 64 pairs; j = 0 rotates fastest)")
    axes[0].legend(handles=[Patch(color=c, label=n) for c, n in zip(AXIS_COLOURS, ("t", "h", "w"))],
                   ncol=3, fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def draw_deepstack(n_patches: int, vit_width: int, llm_width: int, depth: int, taps: Sequence[int]):
    """DeepStack as shapes: the ViT's main path and its taps, each merger's output, the LLM layers they join."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11.5, 4.2), dpi=DPI)
    n_tok = n_patches // 4

    def box(x, y, text, colour="#eeeeee", w=1.9, h=0.55):
        ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, edgecolor="k"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7.5)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", lw=0.9))

    box(0, 3, f"patches + learned pos\n[{n_patches}, {vit_width}]")
    xs = [2.6 + 2.3 * i for i in range(len(taps) + 1)]
    prev = 0
    for i, tap in enumerate(taps):
        box(xs[i], 3, f"blocks {prev}..{tap}\n[{n_patches}, {vit_width}]")
        arrow(xs[i] - 0.7, 3.27, xs[i], 3.27)
        box(xs[i], 1.7, f"DeepStack merger {i}\n(LN over 4·{vit_width})\n[{n_tok}, {llm_width}]", "#fdd0a2", h=0.75)
        arrow(xs[i] + 0.95, 3, xs[i] + 0.95, 2.45)
        box(xs[i], 0.2, f"+ after LLM layer {i}\nat the {n_tok} visual places", "#c6dbef")
        arrow(xs[i] + 0.95, 1.7, xs[i] + 0.95, 0.75)
        prev = tap + 1
    box(xs[-1], 3, f"blocks {prev}..{depth - 1}\n→ merger [{n_tok}, {llm_width}]", "#c7e9c0")
    arrow(xs[-1] - 0.4, 3.27, xs[-1], 3.27)
    box(xs[-1], 0.2, f"input embeddings\n(pads replaced)", "#c6dbef")
    arrow(xs[-1] + 0.95, 3, xs[-1] + 0.95, 0.75)
    ax.set_xlim(-0.2, xs[-1] + 2.1)
    ax.set_ylim(0, 3.8)
    ax.axis("off")
    ax.set_title(f"DeepStack (Qwen3-VL): a 448x448 image → {n_patches} patches → {n_tok} visual tokens; "
                 f"taps after blocks {list(taps)}", fontsize=10)
    return fig


def plot_token_costs(table: dict[str, dict[str, int]]):
    """``table``: item → {model: tokens}. Grouped bars with the counts written on them."""
    plt = _plt()
    items = list(table)
    models = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=DPI)
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        values = [table[i][model] for i in items]
        bars = ax.bar(np.arange(len(items)) + k * width, values, width, label=model)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(np.arange(len(items)) + width * (len(models) - 1) / 2, items, fontsize=9)
    ax.set_ylabel("LLM tokens (visual + wrappers)")
    ax.set_yscale("log")
    ax.set_ylim(top=max(max(v.values()) for v in table.values()) * 4)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("one image and one video costed under the three processors' defaults", fontsize=10)
    fig.tight_layout()
    return fig


def draw_three_groundings(image: Image.Image, truth: tuple[float, ...], drawn: dict[str, tuple[str, tuple[float, ...]]]):
    """One panel per convention: the box text the model writes, drawn back (dashed) over the true box (solid)."""
    from matplotlib.patches import Rectangle

    plt = _plt()
    fig, axes = plt.subplots(1, len(drawn), figsize=(12, 3.9), dpi=DPI)
    for ax, (name, (text, back)) in zip(axes, drawn.items()):
        ax.imshow(image)
        x1, y1, x2, y2 = truth
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="k", lw=2, label="true box"))
        x1, y1, x2, y2 = back
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="#d62728", lw=1.5, ls="--",
                               label="parsed back"))
        ax.set_title(f"{name}\n{text}", fontsize=7.5)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
