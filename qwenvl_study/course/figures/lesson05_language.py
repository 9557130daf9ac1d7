"""Lesson 05 — the language model and the whole model.

Where the ViT's merged tokens land in the LLM sequence, grouped-query attention, and the
next-token filters (temperature, top-k, top-p). Draws from ``language.py`` and ``model.py``.
Lesson 06 (real weights) reuses ``plot_layer_errors`` from lesson 04 and has no figure of its own.
"""

from __future__ import annotations

import numpy as np

from ...rope import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID
from ._style import _plt

__all__ = ["draw_embedding_merge", "draw_gqa", "plot_next_token_filters"]


def draw_embedding_merge(input_ids, image_token_id: int = IMAGE_TOKEN_ID, video_token_id: int = VIDEO_TOKEN_ID, *,
                         every: int = 1,
                         title: str = "where the ViT's merged tokens go: the <|image_pad|> positions, in order"):
    """ViT outputs (top) scattered into the pad positions of the LLM sequence (bottom), in order."""
    plt = _plt()
    ids = np.asarray(input_ids).reshape(-1)
    pads = np.flatnonzero((ids == image_token_id) | (ids == video_token_id))
    fig, ax = plt.subplots(figsize=(10, 2.8))
    colours = np.where(ids == image_token_id, "#d62728", np.where(ids == video_token_id, "#ff7f0e", "#bbbbbb"))
    ax.bar(np.arange(len(ids)), np.ones(len(ids)), bottom=0, width=1.0, color=colours, edgecolor="white", lw=0.2)
    if len(pads):
        x0 = (len(ids) - len(pads)) / 2  # the ViT outputs, centred above
        ax.bar(x0 + np.arange(len(pads)), np.ones(len(pads)), bottom=2.2, width=1.0, color="#9467bd",
               edgecolor="white", lw=0.2)
        for k in range(0, len(pads), max(1, every)):
            ax.plot([x0 + k, pads[k]], [2.2, 1.0], color="#9467bd", lw=0.4, alpha=0.6)
        ax.text(x0, 3.35, f"ViT output: {len(pads)} merged tokens (row k → pad k)", fontsize=9)
    ax.text(0, -0.55, f"LLM sequence: {len(ids)} tokens (grey: text/special, red: <|image_pad|>, orange: "
                      f"<|video_pad|>)", fontsize=9)
    ax.set_xlim(-1, len(ids) + 1)
    ax.set_ylim(-0.9, 3.8)
    ax.set_yticks([])
    ax.set_xlabel("position in input_ids")
    ax.set_title(title, fontsize=10)
    return fig


def draw_gqa(num_heads: int = 12, num_kv_heads: int = 2, head_dim: int = 128, hidden: int = 1536):
    """Grouped-query attention: each key/value head serves num_heads / num_kv_heads query heads."""
    plt = _plt()
    from matplotlib.patches import FancyBboxPatch

    group = num_heads // num_kv_heads
    fig, ax = plt.subplots(figsize=(10, 3.2))
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for h in range(num_heads):
        g = h // group
        ax.add_patch(FancyBboxPatch((h, 2), 0.8, 0.8, boxstyle="round,pad=0.02", color=colours[g % 8], alpha=0.75))
        ax.text(h + 0.4, 2.4, f"q{h}", ha="center", va="center", fontsize=8, color="white")
        kx = g * group + (group - 1) / 2
        ax.plot([h + 0.4, kx + 0.4], [2.0, 0.8], color=colours[g % 8], lw=0.8)
    for g in range(num_kv_heads):
        kx = g * group + (group - 1) / 2
        ax.add_patch(FancyBboxPatch((kx, 0), 0.8, 0.8, boxstyle="round,pad=0.02", color=colours[g % 8]))
        ax.text(kx + 0.4, 0.4, f"k{g},v{g}", ha="center", va="center", fontsize=8, color="white")
    ax.text(num_heads + 0.3, 2.4, f"q_proj: {hidden} → {num_heads}x{head_dim} = {num_heads * head_dim}", fontsize=9,
            va="center")
    ax.text(num_heads + 0.3, 0.4, f"k_proj, v_proj: {hidden} → {num_kv_heads}x{head_dim} = {num_kv_heads * head_dim}"
                                  f"\n(KV cache {num_heads // num_kv_heads}x smaller than with MHA)", fontsize=9,
            va="center")
    ax.set_xlim(-0.5, num_heads + 7)
    ax.set_ylim(-0.3, 3.2)
    ax.axis("off")
    ax.set_title(f"GQA: {num_heads} query heads share {num_kv_heads} key/value heads ({group} per group)", fontsize=10)
    return fig


def plot_next_token_filters(logits, *, temperature: float = 0.7, top_k: int = 20, top_p: float = 0.9, show: int = 30):
    """The next-token distribution before and after temperature → top-k → top-p (transformers' order)."""
    import torch

    plt = _plt()
    from ...model import filter_logits

    logits = torch.as_tensor(logits, dtype=torch.float32).reshape(-1)
    order = logits.argsort(descending=True)[:show]
    base = logits.softmax(-1)[order]
    after = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p).softmax(-1)[order]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    x = np.arange(len(order))
    ax.bar(x - 0.2, base.numpy(), width=0.4, label="softmax(logits)", color="#bbbbbb")
    ax.bar(x + 0.2, after.numpy(), width=0.4, label=f"T={temperature}, top-k={top_k}, top-p={top_p}", color="#1f77b4")
    ax.set_xticks(x, [str(int(i)) for i in order], rotation=90, fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel(f"token id (the {show} most likely)")
    ax.set_ylabel("probability (log scale)")
    ax.set_title(f"sampling keeps {int((after > 0).sum())} candidates of {logits.numel()}; greedy takes the first",
                 fontsize=10)
    ax.legend(fontsize=8)
    return fig
