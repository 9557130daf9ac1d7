"""Lesson 03 — M-RoPE in the LLM.

The (t, h, w) ids along a sequence (the paper's Figure 3), the position budget of long inputs,
where our ids and transformers 5.x's drift apart after a long video, and the t/h/w sections over
the head. Draws from ``rope.py`` (paper §2.1 "Multimodal Rotary Position Embedding").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...rope import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID
from ._style import ROPE_ROW_COLOURS, _plt, _annotate_grid

__all__ = ["plot_mrope_ids", "plot_position_budget", "plot_rope_drift", "plot_mrope_sections"]

SEGMENT_COLOURS = {"image": "#1f77b4", "video": "#ff7f0e"}


def _token_kinds(input_ids) -> list[str]:
    return ["image" if t == IMAGE_TOKEN_ID else "video" if t == VIDEO_TOKEN_ID else "text" for t in input_ids]


def _shade_segments(ax, kinds: Sequence[str], x0: int = 0, alpha: float = 0.12) -> None:
    """Shade the image / video runs of ``kinds`` (token ``x0 + i`` has kind ``kinds[i]``)."""
    start = 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start]:
            if kinds[start] in SEGMENT_COLOURS:
                ax.axvspan(x0 + start - 0.5, x0 + i - 0.5, color=SEGMENT_COLOURS[kinds[start]], alpha=alpha, lw=0,
                           label=kinds[start])
            start = i


def plot_mrope_ids(position_ids, input_ids, title: str = "M-RoPE ids along a sequence"):
    """The paper's Figure 3: the (t, h, w) ids of every token of one sequence, as numbers and as lines.

    ``position_ids [3, L]`` and ``input_ids [L]`` of one row (real tokens only).
    """
    plt = _plt()
    ids = np.asarray(position_ids)
    kinds = _token_kinds(list(np.asarray(input_ids)))
    L = ids.shape[1]
    fig, axes = plt.subplots(2, 1, figsize=(min(12, max(9, 0.42 * L)), 5.6), gridspec_kw={"height_ratios": [1, 1.6]},
                             sharex=True)
    ax = axes[0]
    ax.imshow(ids, aspect="auto", cmap="viridis", interpolation="nearest")
    _annotate_grid(ax, ids, fontsize=8)
    ax.set_yticks([0, 1, 2], ["t", "h", "w"])
    ax.set_title(title, fontsize=11)
    ax = axes[1]
    _shade_segments(ax, kinds)
    x = np.arange(L)
    for row, (name, dx) in enumerate((("t", -0.15), ("h", 0.0), ("w", 0.15))):
        ax.plot(x + dx, ids[row], "o-", ms=3.5, lw=1, color=ROPE_ROW_COLOURS[name], label=f"{name} id")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", fontsize=8, ncol=5)
    ax.set_xlabel("token index (shaded: image / video pad tokens; the rest is text incl. vision_start/end)")
    ax.set_ylabel("position id")
    ax.set_xticks(x[:: max(1, L // 40)])
    fig.tight_layout()
    return fig


def plot_position_budget(items: dict[str, tuple[int, int]]):
    """Position ids consumed per item: 1D RoPE (one per token) vs M-RoPE (max(t, h', w') + specials)."""
    plt = _plt()
    import textwrap

    names = list(items)
    one_d = [items[n][0] for n in names]
    mrope = [items[n][1] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    b1 = ax.bar(x - 0.2, one_d, 0.4, label="1D RoPE (one id per token)", color="#7f7f7f")
    b2 = ax.bar(x + 0.2, mrope, 0.4, label="M-RoPE (max(t, h', w') per segment)", color="#2ca02c")
    for bars in (b1, b2):
        for bar in bars:
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() * 1.08, f"{int(bar.get_height()):,}",
                    ha="center", fontsize=9)
    ax.set_yscale("log")
    ax.set_xticks(x, [textwrap.fill(n, 22) for n in names], fontsize=9)
    ax.set_ylabel("position ids consumed (log scale)")
    ax.set_ylim(1, max(one_d) * 4)
    ax.set_title("M-RoPE reduces position ids: the next text token's id after the item", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_rope_drift(ours, theirs, input_ids, zoom: int = 40):
    """Temporal id of every token, paper rule vs transformers 5.x, after a long low-resolution video.

    ``ours, theirs [3, L]`` and ``input_ids [L]`` of one row. Left: the whole sequence, the video's pad tokens
    shaded. Right: the tokens around the video's end; the band (drawn over the text after the video only, so it
    never overlaps the video's shading) is the video's range of t ids, where 5.x resumes. One legend, below the
    panels, off the data.
    """
    plt = _plt()
    from matplotlib.patches import Patch

    ours, theirs = np.asarray(ours), np.asarray(theirs)
    kinds = _token_kinds(list(np.asarray(input_ids)))
    L = ours.shape[1]
    x = np.arange(L)
    pads = np.array([k == "video" for k in kinds])
    last_pad = int(np.flatnonzero(pads).max())
    lo, hi = int(ours[0, pads].min()), int(ours[0, pads].max())
    resume_ours, resume_theirs = int(ours[0, last_pad + 1]), int(theirs[0, last_pad + 1])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.15, 1]})
    for ax, sl, marker in ((axes[0], slice(0, L), None),
                           (axes[1], slice(max(0, last_pad - zoom), min(L, last_pad + zoom // 2)), ".")):
        _shade_segments(ax, kinds[sl], x0=sl.start, alpha=0.18)
        ax.plot(x[sl], ours[0, sl], "-", marker=marker, ms=4, color=ROPE_ROW_COLOURS["t"], lw=1.4)
        ax.plot(x[sl], theirs[0, sl], "--", marker=marker, ms=4, color="k", lw=1.1)
        ax.set_xlabel("token index", fontsize=9)
        ax.set_ylabel("t id", fontsize=9)
        ax.tick_params(labelsize=9)
    ax = axes[1]
    ax.fill_between([last_pad + 0.5, x[sl][-1] + 0.5], lo, hi, color="#9467bd", alpha=0.2, lw=0)
    ax.set_xlim(sl.start - 0.5, x[sl][-1] + 0.5)
    ax.annotate(f"paper: {resume_ours}", (last_pad + 1, resume_ours), xytext=(-70, 12), textcoords="offset points",
                fontsize=9, color=ROPE_ROW_COLOURS["t"], arrowprops=dict(arrowstyle="->", color=ROPE_ROW_COLOURS["t"]))
    ax.annotate(f"5.x: {resume_theirs}", (last_pad + 1, resume_theirs), xytext=(-70, -4), textcoords="offset points",
                fontsize=9, arrowprops=dict(arrowstyle="->", color="k"))
    axes[0].set_title("whole sequence: text – long low-res video – text", fontsize=10)
    axes[1].set_title("around the video's end: the next t id", fontsize=10)
    handles = [plt.Line2D([], [], color=ROPE_ROW_COLOURS["t"], lw=1.4, label="paper rule = transformers 4.45 (ours)"),
               plt.Line2D([], [], color="k", ls="--", lw=1.1, label="transformers 5.x"),
               Patch(color=SEGMENT_COLOURS["video"], alpha=0.3, label="video pad tokens"),
               Patch(color="#9467bd", alpha=0.3, label=f"the video's t ids {lo}–{hi}, after its end")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("The drift: transformers 5.x advances by max(h', w') after a video, ignoring its t", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_mrope_sections(mrope_section: Sequence[int] = (16, 24, 24), head_dim: int = 128, theta: float = 1e6):
    """Which id row (t / h / w) each rotary pair reads, and the pair's frequency."""
    plt = _plt()
    from ...rope import inverse_frequencies

    pairs = head_dim // 2
    owner = np.repeat(np.arange(3), mrope_section)  # [pairs]
    inv = inverse_frequencies(head_dim, theta).numpy()  # [pairs]
    fig, axes = plt.subplots(2, 1, figsize=(11, 4.8), gridspec_kw={"height_ratios": [2.2, 1]}, sharex=False)
    ax = axes[0]
    names = ("t", "h", "w")
    for s, name in enumerate(names):
        sel = owner == s
        ax.bar(np.arange(pairs)[sel], inv[sel], color=ROPE_ROW_COLOURS[name], width=0.85,
               label=f"{name}: {mrope_section[s]} pairs")
    ax.set_yscale("log")
    ax.set_xlim(-1, pairs)
    ax.set_xlabel(f"rotary pair j (frequency theta^(-2j/{head_dim}), theta = {theta:g})")
    ax.set_ylabel("radians per position step")
    ax.set_title(f"mrope_section {list(mrope_section)}: pair j rotates by the t, h or w id "
                 "(high frequencies for time, low ones for space)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    dims = np.concatenate([owner, owner])  # [head_dim] the angle vector is duplicated (rotate_half layout)
    from matplotlib.colors import ListedColormap

    ax.imshow(dims[None, :], aspect="auto", cmap=ListedColormap([ROPE_ROW_COLOURS[n] for n in names]),
              interpolation="nearest")
    ax.set_yticks([])
    ax.set_xlabel(f"head dimension (0–{head_dim - 1}): dims d and d + {pairs} rotate together")
    ax.set_title("over the head: [t h w | t h w]", fontsize=10)
    fig.tight_layout()
    return fig
